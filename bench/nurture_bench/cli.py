"""Ingest benchmark: website traffic at 10,000 leads' rate replayed through the
real track handler (functions/track/app.py), in-process, in each shape.

    python bench/ingest.py [--events 10000] [--shape browser] [--shape batched] [--seed 7]

Prints ONE JSON object on stdout (progress goes to stderr):

- per shape (browser: one event per request, SQS batches as template.yaml's
  event source forms them; batched: 10 events per request, 100 per
  invocation): DynamoDB write request units per event, table and each index
  (AWS sizing rules), AWS API calls per event, from a replay under moto with
  the table template.yaml declares; handler CPU per event versus a baseline
  that batch-writes the same events, both with AWS answered in-process at the
  HTTP layer; whether the in-process run made the moto replay's calls;
- every function's cold start (import + first invocation against the local
  emulator over HTTP) versus `import boto3` + one DynamoDB call;
- the sweep benchmark (bench/sweep.py);
- the goals and whether each is met, and the shape of each stream.

bench/README.md explains every figure. Timing figures belong here, never in
tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from .capacity import CallCounter, table_indexes
from .cold_start import measure_cold_starts, start_emulator
from .common import CONFIG_DIR, REGION, ROOT, TRACK_APP, load_handler, log
from .cpu import measure_cpu
from .replay import measure_aws
from .traffic import Shape, Stream, build_stream, build_traffic

# The figures: 10,000 active leads send about 300,000 events a month.
EVENTS_PER_LEAD_MONTH = 30
TEN_K_LEADS_RATE = 10_000 * EVENTS_PER_LEAD_MONTH / (30 * 86400)  # events per second
SECRETS = {"admin": "x", "website": "x", "product_app": "x", "forms_signing": "x", "forms_key": "x"}

GOALS = {
    "browser": {"dynamodb_write_units_per_event": 1.5, "aws_calls_per_event": 1.0, "cpu_ratio": 2.5},
    "batched": {"dynamodb_write_units_per_event": 0.8, "aws_calls_per_event": 0.2},
    "cold_start_ratio": 1.8,
}


def _goal(value: float, target: float) -> dict[str, Any]:
    return {"goal": f"<= {target}", "value": value, "met": value <= target}


def track_batching() -> tuple[int, float]:
    """BatchSize and MaximumBatchingWindowInSeconds of the track function's SQS event in template.yaml."""
    from nurture_tools.local.template import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"]
    for resource in resources.values():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function" and properties.get("CodeUri") == "functions/track":
            for event in (properties.get("Events") or {}).values():
                if event["Type"] == "SQS":
                    spec = event["Properties"]
                    return int(spec.get("BatchSize", 10)), float(spec.get("MaximumBatchingWindowInSeconds", 0))
    raise LookupError("template.yaml has no SQS event for functions/track")


def _lambda_environment(stack: Any) -> dict[str, str]:
    lambda_env = stack.function_environment()
    lambda_env.update(
        {
            "NURTURE_CONFIG_DIR": str(CONFIG_DIR),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    return lambda_env


def _replay(stream: Stream, replay: bool = True, keep_puts: bool = False) -> dict[str, Any]:
    """The stream through the track handler under moto, on a table of its own
    (with `replay` false: only the Lambda environment set, for the CPU run)."""
    import boto3
    from moto import mock_aws

    from nurture import wiring
    from nurture_tools.local.moto_runtime import MOTO_CONFIG
    from nurture_tools.local.template import LocalStack

    with mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(region_name=REGION)
        stack = LocalStack(ROOT, session, prefix="nurture-bench")
        stack.provision(SECRETS, overrides={"NurtureHttpApi": "https://api.bench.invalid"})
        os.environ.update(_lambda_environment(stack))
        wiring.reset()
        track = load_handler(TRACK_APP, "bench_track_app")
        if not replay:
            return {}
        indexes = table_indexes(stack.resources["LeadsTable"]["Properties"])
        counter = CallCounter()
        try:
            return measure_aws(track, stream, counter, session.client("dynamodb"), indexes, keep_puts)
        finally:
            counter.restore()
            wiring.reset()


def _first_difference(a: list[str], b: list[str]) -> dict[str, Any] | None:
    for position, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return {"call": position, "moto": x, "in_process": y}
    if len(a) != len(b):
        return {"call": min(len(a), len(b)), "moto_calls": len(a), "in_process_calls": len(b)}
    return None


def measure_shape(stream: Stream, args: argparse.Namespace) -> dict[str, Any]:
    name = stream.shape["shape"]
    if not args.skip_moto:
        log(f"{name}: replaying {stream.shape['events']} events in {len(stream.batches)} invocations under moto")
    aws = _replay(stream, replay=not args.skip_moto)
    track = sys.modules.get("bench_track_app") or load_handler(TRACK_APP, "bench_track_app")
    # Outside mock_aws: moto's botocore hook would otherwise also run (and bill
    # its CPU to the handler) for every request the in-process fake answers.
    log(f"{name}: measuring CPU ({args.cpu_repeats} runs of handler and baseline)")
    cpu = measure_cpu(track, stream, args.cpu_repeats, args.profile)
    in_process_log = cpu.pop("handler_call_log")
    figures: dict[str, Any] = {
        "dynamodb_write_units_per_event": aws.get("dynamodb_write_units_per_event"),
        "wru_per_event": aws.get("wru_per_event"),
        "aws_calls_per_event": aws.get("aws_calls_per_event"),
        "handler_cpu_us_per_event": cpu["handler_cpu_us_per_event"],
        "baseline_cpu_us_per_event": cpu["baseline_cpu_us_per_event"],
        "cpu_ratio": cpu["cpu_ratio"],
        "messages_per_invocation_mean": stream.shape["messages_per_invocation_mean"],
    }
    if aws:
        moto_log = aws.pop("call_log")
        difference = _first_difference(moto_log, in_process_log)
        figures["stub_and_moto_calls_match"] = difference is None
        if difference:
            figures["first_call_difference"] = difference
            log(f"{name}: the in-process run and the moto replay differ: {difference}")
    figures["stream"] = stream.shape
    figures["details"] = {
        **{k: v for k, v in aws.items() if k not in figures},
        **{k: v for k, v in cpu.items() if k not in figures},
    }
    return figures


def _sweep(leads: int, due: int) -> dict[str, Any]:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sweep.py"), "--leads", str(leads), "--due", str(due)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if finished.returncode:
        raise RuntimeError(f"bench/sweep.py failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10000, help="events in the stream (default 10000)")
    parser.add_argument(
        "--leads",
        type=int,
        default=None,
        help=f"people visiting the site (default events / {EVENTS_PER_LEAD_MONTH}, a lead-month's events)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=TEN_K_LEADS_RATE,
        help=f"mean events per second, i.e. the period is events / rate (default {TEN_K_LEADS_RATE:.4f}: "
        "10,000 leads' month)",
    )
    parser.add_argument("--days", type=float, default=None, help="simulated days (overrides --rate)")
    parser.add_argument(
        "--shape",
        action="append",
        choices=("browser", "batched"),
        help="how calls reach the handler; repeat for several, the first gives the headline figures "
        "(default: browser, then batched)",
    )
    parser.add_argument("--batch", type=int, default=100, help="batched shape: events per invocation (default 100)")
    parser.add_argument(
        "--record-events", type=int, default=10, help="batched shape: events per SQS record / request (default 10)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--cpu-repeats", type=int, default=3, help="CPU runs, the median is reported (default 3)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per function (default 5)")
    parser.add_argument("--sweep-leads", type=int, default=10000, help="leads in the sweep benchmark (default 10000)")
    parser.add_argument("--sweep-due", type=int, default=100, help="due leads in the sweep benchmark (default 100)")
    parser.add_argument("--skip-moto", action="store_true", help="skip the moto replay (no WRU / call figures)")
    parser.add_argument("--skip-cold-start", action="store_true", help="skip the cold start figures")
    parser.add_argument("--skip-sweep", action="store_true", help="skip the sweep benchmark")
    parser.add_argument("--skip-cost", action="store_true", help="skip the monthly bill (nurture cost)")
    parser.add_argument(
        "--cost-leads", type=int, action="append", help="leads to bill for, repeatable (default 10000 and 1000000)"
    )
    parser.add_argument("--cost-sample-leads", type=int, default=200, help="leads the bill replays (default 200)")
    parser.add_argument("--profile", action="store_true", help="print the handler's cProfile (first CPU run) to stderr")
    args = parser.parse_args(argv)
    if args.batch % args.record_events:
        parser.error("--batch must be a multiple of --record-events")
    shapes = list(dict.fromkeys(args.shape or ["browser", "batched"]))
    leads = args.leads or max(1, args.events // EVENTS_PER_LEAD_MONTH)
    days = args.days if args.days else args.events / args.rate / 86400

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
    batch_size, window = track_batching()
    log(f"building the traffic: {args.events} events, {leads} people over {days:.2f} days, seed {args.seed}")
    traffic = build_traffic(args.events, leads, args.seed, days)

    report: dict[str, Any] = {"shape": shapes[0]}
    measured: dict[str, Any] = {}
    for name in shapes:
        shape = Shape(name, batch_size, window, args.record_events, args.batch)
        stream = build_stream(traffic, shape, args.seed)
        log(f"{name}: " + json.dumps({k: v for k, v in stream.shape.items() if not isinstance(v, dict)}))
        measured[name] = measure_shape(stream, args)
    headline = measured[shapes[0]]
    for figure in (
        "dynamodb_write_units_per_event",
        "wru_per_event",
        "aws_calls_per_event",
        "handler_cpu_us_per_event",
        "baseline_cpu_us_per_event",
        "cpu_ratio",
        "messages_per_invocation_mean",
        "stub_and_moto_calls_match",
    ):
        report[figure] = headline.get(figure)
    report["shapes"] = measured

    if not args.skip_cold_start:
        log(f"measuring cold starts ({args.cold_runs} fresh processes per function, interleaved)")
        server, stack, endpoint = start_emulator(SECRETS)
        try:
            report["cold_start"] = measure_cold_starts(stack, endpoint, SECRETS, args.cold_runs)
        finally:
            server.stop()
    if not args.skip_sweep:
        log(f"sweep benchmark: {args.sweep_leads} leads, {args.sweep_due} due")
        report["sweep"] = _sweep(args.sweep_leads, args.sweep_due)

    if not args.skip_cost:
        import logging

        from nurture_tools.cost import DEFAULT_LEADS, run

        log("the monthly bill: replaying a month of traffic (nurture cost)")
        logging.getLogger("nurture_tools.cost").setLevel(logging.WARNING)
        _, report["cost"], _ = run(ROOT, args.cost_leads or list(DEFAULT_LEADS), args.cost_sample_leads, args.seed)

    goals: dict[str, Any] = {}
    for name, figures in measured.items():
        for figure, target in GOALS[name].items():
            if figures.get(figure) is not None:
                goals[f"{name}.{figure}"] = _goal(figures[figure], target)
    for function, figures in report.get("cold_start", {}).get("functions", {}).items():
        goals[f"cold_start.{function}"] = _goal(figures["ratio"], GOALS["cold_start_ratio"])
    for name, goal in (report.get("cost") or {}).get("goals", {}).items():
        goals[f"cost.{name}"] = goal
    report["goals"] = goals
    report["all_goals_met"] = all(g["met"] for g in goals.values())
    report["details"] = {
        "args": vars(args),
        "leads": leads,
        "days": round(days, 3),
        "python": sys.version.split()[0],
        "bench_seconds": round(time.perf_counter() - bench_started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0
