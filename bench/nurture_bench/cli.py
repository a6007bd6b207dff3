"""Ingest benchmark: a synthetic month of website traffic replayed through the
real track handler (functions/track/app.py), in-process.

    python bench/ingest.py [--events 20000] [--leads 2000] [--batch 100] [--seed 7]

Prints ONE JSON object on stdout (progress goes to stderr):

- DynamoDB write request units per event (AWS sizing rules, GSI included) and
  AWS API calls per event, from a replay under moto with the table that
  template.yaml declares;
- handler CPU per event versus a minimal "store each event" baseline handler,
  both with AWS answered in-process at the HTTP layer (so botocore's real
  client-side work is paid by both, the network and the service by neither);
- cold import time of each handler module versus `import boto3`;
- the goals and whether each is met, and the shape of the stream.

bench/README.md explains every figure. Timing figures belong here, never in
tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .capacity import CallCounter
from .cold_start import measure_imports
from .common import CONFIG_DIR, REGION, ROOT, TRACK_APP, load_handler, log
from .cpu import measure_cpu
from .replay import measure_aws
from .traffic import build_stream

GOALS = {
    "dynamodb_write_units_per_event": ("<=", 1.3),
    "aws_calls_per_event": ("<=", 0.3),
    "cpu_ratio": ("<=", 2.0),
    "import_ratio": ("<=", 1.3),
}


def _goal(value: float, goal: tuple[str, float]) -> dict[str, Any]:
    op, target = goal
    return {"goal": f"{op} {target}", "value": value, "met": value <= target if op == "<=" else value >= target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000, help="events in the stream (default 20000)")
    parser.add_argument("--leads", type=int, default=2000, help="people visiting the site (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="events per handler invocation (default 100)")
    parser.add_argument(
        "--record-events", type=int, default=10, help="events per SQS record, i.e. per API request (default 10)"
    )
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--cpu-repeats", type=int, default=3, help="CPU runs, the median is reported (default 3)")
    parser.add_argument("--import-runs", type=int, default=5, help="import timing runs (default 5)")
    parser.add_argument("--skip-moto", action="store_true", help="skip the moto replay (no WRU / call figures)")
    parser.add_argument("--profile", action="store_true", help="print the handler's cProfile (first CPU run) to stderr")
    args = parser.parse_args(argv)
    if args.batch % args.record_events:
        parser.error("--batch must be a multiple of --record-events")

    # AWS: fake credentials, no endpoint override, so nothing can reach a real account.
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    bench_started = time.perf_counter()

    log(f"building the stream: {args.events} events, {args.leads} people, seed {args.seed}")
    stream = build_stream(args.events, args.leads, args.batch, args.record_events, args.seed, args.days)
    log("stream: " + json.dumps({k: v for k, v in stream.shape.items() if not isinstance(v, dict)}))

    import boto3
    from moto import mock_aws

    from nurture import wiring
    from nurture_tools.local.moto_runtime import MOTO_CONFIG
    from nurture_tools.local.template import LocalStack

    report: dict[str, Any] = {}
    aws: dict[str, Any] = {}
    with mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(region_name=REGION)
        stack = LocalStack(ROOT, session, prefix="nurture-bench")
        stack.provision(
            {"admin": "x", "website": "x", "product_app": "x", "forms_signing": "x", "forms_key": "x"},
            overrides={"NurtureApi": "https://api.bench.invalid"},
        )
        lambda_env = stack.function_environment()
        lambda_env.update(
            {
                "NURTURE_CONFIG_DIR": str(CONFIG_DIR),
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        os.environ.update(lambda_env)
        wiring.reset()
        track = load_handler(TRACK_APP, "bench_track_app")
        if not args.skip_moto:
            log(f"replaying {stream.shape['events']} events through the handler under moto")
            counter = CallCounter()
            try:
                aws = measure_aws(track, stream, counter, session.client("dynamodb"))
            finally:
                counter.restore()
        wiring.reset()

    # Outside mock_aws: moto's botocore hook would otherwise also run (and bill
    # its CPU to the handler) for every request the in-process fake answers.
    log(f"measuring CPU ({args.cpu_repeats} runs of handler and baseline)")
    cpu = measure_cpu(track, stream, args.cpu_repeats, args.profile)
    if aws:
        aws["stub_and_moto_calls_match"] = aws["aws_calls_total"] == cpu["cpu_stub_calls"]["handler"]

    log("measuring import times")
    imports = measure_imports(lambda_env, args.import_runs)

    report["dynamodb_write_units_per_event"] = aws.get("dynamodb_write_units_per_event")
    report["aws_calls_per_event"] = aws.get("aws_calls_per_event")
    report["handler_cpu_us_per_event"] = cpu["handler_cpu_us_per_event"]
    report["baseline_cpu_us_per_event"] = cpu["baseline_cpu_us_per_event"]
    report["cpu_ratio"] = cpu["cpu_ratio"]
    report["handler_import_ms"] = imports["handler_import_ms"]
    report["boto3_import_ms"] = imports["boto3_import_ms"]
    report["import_ratio"] = imports["import_ratio"]
    goals = {}
    if aws:
        goals["dynamodb_write_units_per_event"] = _goal(
            aws["dynamodb_write_units_per_event"], GOALS["dynamodb_write_units_per_event"]
        )
        goals["aws_calls_per_event"] = _goal(aws["aws_calls_per_event"], GOALS["aws_calls_per_event"])
    goals["cpu_ratio"] = _goal(cpu["cpu_ratio"], GOALS["cpu_ratio"])
    for name, ratio in imports["import_ratio"].items():
        goals[f"import_ratio_{name}"] = _goal(ratio, GOALS["import_ratio"])
    report["goals"] = goals
    report["all_goals_met"] = all(g["met"] for g in goals.values())
    report["stream"] = stream.shape
    report["details"] = {
        **{k: v for k, v in aws.items() if k not in ("dynamodb_write_units_per_event", "aws_calls_per_event")},
        **{
            k: v
            for k, v in cpu.items()
            if k not in ("handler_cpu_us_per_event", "baseline_cpu_us_per_event", "cpu_ratio")
        },
        "cold_start_to_first_call_ms": imports["cold_start_to_first_call_ms"],
        "import_breakdown_ms": imports["import_breakdown_ms"],
        "args": vars(args),
        "python": sys.version.split()[0],
        "bench_seconds": round(time.perf_counter() - bench_started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0
