"""Cold start of every function in template.yaml: a fresh process imports the
handler (functions/<name>/app.py, its folder first on sys.path, as Lambda
does) and makes its first invocation against the local emulator over HTTP
(moto's server, the one `nurture serve` runs), next to a fresh process that
runs `import boto3` and makes one DynamoDB call against the same server.

Medians of `runs` fresh processes per function, interleaved (every function
and the baseline once per round, the starting point rotating); a first round
warms the bytecode cache and is dropped. One more, untimed, process per
function counts the AWS calls its first invocation made and checks it
answered (bench/README.md, "Cold start")."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .common import CONFIG_DIR, REGION, ROOT, log

COLD_LEAD = "p-cold-start"  # no such lead: each handler goes as far as its first reads

_PRELUDE = """
import json, sys, time
from types import SimpleNamespace
event = json.loads({event!r})
context = SimpleNamespace(
    function_name={name!r}, function_version="$LATEST", memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:" + {name!r},
    aws_request_id="cold-start", log_group_name="/aws/lambda/" + {name!r}, log_stream_name="bench",
    get_remaining_time_in_millis=lambda: 30_000,
)
"""
_FUNCTION = """
started = time.perf_counter()
import importlib.util
sys.path.insert(0, {folder!r})
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
imported = time.perf_counter()
result = getattr(module, {attribute!r})(event, context)
called = time.perf_counter()
"""
_BASELINE = """
started = time.perf_counter()
import boto3
imported = time.perf_counter()
boto3.client("dynamodb").get_item(TableName={table!r}, Key={{"pk": {{"S": "x"}}, "sk": {{"S": "y"}}}})
result = None
called = time.perf_counter()
"""
_REPORT = """
timings = {"import_ms": (imported - started) * 1000, "first_call_ms": (called - imported) * 1000}
print("BENCH_COLD " + json.dumps(timings))
"""
# The untimed check: every AWS call counted (botocore patched before the import).
_COUNTING = """
import botocore.client
calls = []
_original = botocore.client.BaseClient._make_api_call
def _counting(client, operation, params):
    calls.append(client.meta.service_model.service_name + "." + operation)
    return _original(client, operation, params)
botocore.client.BaseClient._make_api_call = _counting
"""
_CHECK_REPORT = """
answer = result if isinstance(result, dict) else {}
print("BENCH_CHECK " + json.dumps({
    "calls": calls, "status": answer.get("statusCode"), "failures": len(answer.get("batchItemFailures") or []),
}))
"""


def first_invocations(stack: Any, secret_values: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The event each function's first invocation gets, by logical id: what
    its trigger in template.yaml sends, about a lead that is not stored."""
    import base64

    first_track = _first_track_id()
    website_key = secret_values["website"]
    page = {
        "type": "page",
        "messageId": "cold-start-page-1",
        "anonymousId": "cold-start-device",
        "timestamp": "2025-03-03T10:00:00.000Z",
        "sentAt": "2025-03-03T10:00:00.100Z",
        "properties": {"path": "/pricing", "url": "https://www.revlytics.example/pricing", "title": "Pricing"},
        "context": {"page": {"path": "/pricing"}, "library": {"name": "analytics.js", "version": "npm:next-1.70.0"}},
    }
    from nurture.adapters.aws import _message_bodies
    from nurture.ingest.segment import parse_request
    from nurture_tools.local.apigw import call_event

    body = json.dumps(page).encode()
    (message,) = _message_bodies(parse_request(body, "page", "website", 1741000000.0).events)
    sqs = {
        "messageId": "cold-start-1",
        "receiptHandle": "cold-start",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1741000000000"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "awsRegion": REGION,
    }
    lead = {"lead_id": COLD_LEAD, "event_id": "cold-start-event"}
    ses_event = json.loads((ROOT / "tests" / "events" / "ses" / "bounce.json").read_text())
    return {
        "TrackFunction": {"Records": [{**sqs, "body": message}]},
        "ApiFunction": call_event(
            "page",
            body,
            "application/json",
            "Basic " + base64.b64encode(f"{website_key}:".encode()).decode(),
            "cold-start",
        ),
        "EnrollFunction": {"detail-type": "lead.became_warm", "source": "nurture", "detail": lead},
        "AdvanceFunction": {"lead_id": COLD_LEAD, "track_id": first_track, "seq": 1},
        "SesEventsFunction": ses_event,
        "AudienceSyncFunction": {"detail-type": "lead.unsubscribed", "source": "nurture", "detail": lead},
        "ResponsesFunction": {
            "detail-type": "lead.form_submitted",
            "source": "nurture",
            "detail": {**lead, "form_source": "website", "message_id": "cold-start-form"},
        },
        "SalesTaskFunction": {
            "Records": [
                {
                    **sqs,
                    "body": json.dumps(
                        {"lead_id": COLD_LEAD, "enrollment_id": "e-cold", "track_id": first_track, "step_id": "call"}
                    ),
                }
            ]
        },
        "HandoffFunction": {"detail-type": "lead.became_hot", "source": "nurture", "detail": lead},
        "SalesTimerFunction": {
            "timer": "handoff_sla",
            "lead_id": COLD_LEAD,
            "handed_off_at": 1741000000.0,
            "handoff_id": "handoff-cold",
        },
        "SweepFunction": {"sweep": "due"},
    }


def _first_track_id() -> str:
    import yaml

    tracks = yaml.safe_load((CONFIG_DIR / "tracks.yaml").read_text())
    return str(tracks["tracks"][0]["id"])


def function_environment(stack: Any, logical_id: str) -> dict[str, str]:
    """What Lambda gives this function: the template's Globals and its own variables."""
    variables = dict(stack.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = (stack.resources[logical_id]["Properties"].get("Environment") or {}).get("Variables") or {}
    variables.update(own)
    return {name: str(stack.resolve(value)) for name, value in variables.items()}


def _process_env(lambda_env: dict[str, str], endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_", "NURTURE_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(lambda_env)
    env.update(
        {
            "NURTURE_CONFIG_DIR": str(CONFIG_DIR),  # /opt in Lambda: the config layer
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    return env


def _run(code: str, cwd: Path, env: dict[str, str], marker: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"cold start process failed:\n{out.stderr[-3000:]}")
    line = next((ln for ln in reversed(out.stdout.splitlines()) if ln.startswith(marker)), None)
    if line is None:
        raise RuntimeError(f"cold start process printed no {marker}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(line[len(marker) + 1 :])


def _import_breakdown(code: str, cwd: Path, env: dict[str, str], top: int = 6) -> dict[str, float]:
    """Top-level packages by cumulative import time (python -X importtime) in the whole cold start."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    totals: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if match and len(match.group(3)) == 1:  # first level below the script
            totals[match.group(4).split(".")[0]] += int(match.group(2))
    return {name: round(us / 1000, 1) for name, us in totals.most_common(top)}


def measure_cold_starts(stack: Any, endpoint: str, secret_values: dict[str, str], runs: int) -> dict[str, Any]:
    events = first_invocations(stack, secret_values)
    table = str(stack.resolve({"Ref": "LeadsTable"}))
    targets: dict[str, tuple[str, Path, dict[str, str]]] = {}
    checks: dict[str, str] = {}
    for logical_id, function in stack.functions().items():
        module_name, _, attribute = function.handler.rpartition(".")
        path = function.code_dir / f"{module_name}.py"
        env = _process_env(function_environment(stack, logical_id), endpoint)
        prelude = _PRELUDE.format(event=json.dumps(events[logical_id]), name=function.physical_name)
        body = _FUNCTION.format(folder=str(function.code_dir), path=str(path), attribute=attribute)
        targets[logical_id] = (prelude + body + _REPORT, function.code_dir, env)
        checks[logical_id] = prelude + _COUNTING + body + _CHECK_REPORT
    baseline_env = _process_env(function_environment(stack, "TrackFunction"), endpoint)
    baseline_code = _PRELUDE.format(event="{}", name="baseline") + _BASELINE.format(table=table) + _REPORT
    targets["baseline"] = (baseline_code, ROOT, baseline_env)

    samples: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    names = list(targets)
    for round_number in range(runs + 1):  # round 0 warms the bytecode cache and is dropped
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            code, cwd, env = targets[name]
            sample = _run(code, cwd, env, "BENCH_COLD")
            if round_number:
                samples[name].append(sample)
        if round_number:
            log(f"cold start round {round_number}/{runs} done")

    def summary(values: list[dict[str, float]]) -> dict[str, float]:
        return {
            "import_ms": round(statistics.median(v["import_ms"] for v in values), 1),
            "first_call_ms": round(statistics.median(v["first_call_ms"] for v in values), 1),
            "total_ms": round(statistics.median(v["import_ms"] + v["first_call_ms"] for v in values), 1),
        }

    baseline = summary(samples.pop("baseline"))
    functions: dict[str, Any] = {}
    for logical_id, values in samples.items():
        figures = summary(values)
        figures["ratio"] = round(figures["total_ms"] / baseline["total_ms"], 2)
        code, cwd, env = targets[logical_id]
        check = _run(checks[logical_id], cwd, env, "BENCH_CHECK")
        figures["first_call_aws_calls"] = dict(Counter(check["calls"]))
        if check["status"] is not None:
            figures["first_call_status"] = check["status"]
        if check["failures"]:
            figures["first_call_failed_records"] = check["failures"]
        functions[logical_id] = figures
        log(f"cold start {logical_id}: {figures['total_ms']} ms, {figures['ratio']}x the baseline")
    breakdown = {
        name: _import_breakdown(targets[name][0], targets[name][1], targets[name][2])
        for name in ("TrackFunction", "ApiFunction")
        if name in targets
    }
    return {
        "runs": runs,
        "baseline": {"what": "import boto3 + one DynamoDB GetItem", **baseline},
        "functions": functions,
        "worst_ratio": max(f["ratio"] for f in functions.values()),
        "import_breakdown_ms": breakdown,
    }


def start_emulator(secret_values: dict[str, str]) -> tuple[Any, Any, str]:
    """moto's HTTP server on a free local port, with the stack template.yaml
    declares provisioned through it: (server, stack, endpoint)."""
    import logging
    import urllib.request

    import boto3
    from moto.server import ThreadedMotoServer

    from nurture_tools.local.template import LocalStack

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # stderr carries the progress log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")

    class _EndpointSession:
        """The session, its clients pointed at the emulator."""

        def client(self, service: str, **kwargs: Any) -> Any:
            return session.client(service, endpoint_url=endpoint, **kwargs)

    stack = LocalStack(ROOT, _EndpointSession(), prefix="nurture-cold")
    stack.provision(secret_values, overrides={"NurtureHttpApi": "https://api.bench.invalid"})
    return server, stack, endpoint
