"""The per-lead quantities of the bill, measured: a sample of leads' month of
browser traffic replayed through the real handlers under moto, with the
stack template.yaml declares.

The traffic is the ingest benchmark's (`nurture_bench.traffic`: the demo's
market of people, one Segment call per HTTP request, SQS batches formed as
the template's event source mapping forms them) at the arrival rate of the
leads the bill is for, so the batches are that site's. Each request goes
through the API function, each batch through the track function, each
lifecycle event the track function publishes through the enroll function
when its rule takes it; the timeline's month comes from
`nurture_tools.cost_timeline`, per execution the enroll function started.

What is counted, per lead of the sample: API requests, every AWS call
(`nurture_bench.capacity.CallCounter`), DynamoDB write units by AWS's rules,
table and indexes (`nurture_bench.capacity.WriteMeter`), read units from the
items each read returned (`ReadMeter`), custom events put on the bus, the
bytes each invocation writes to its log (lines, business records, EMF
documents, and Lambda's own START/END/REPORT lines), each invocation's
duration in-process (the emulator's work stands where the network would be),
and the table's bytes at the end.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nurture_tools.cost import DAYS_PER_MONTH, SECONDS_PER_MONTH, Inventory, Usage
from nurture_tools.cost_timeline import UnsupportedStateError, Walk, load_definition, run_execution, timeline_usage

EVENTS_PER_LEAD_MONTH = 30  # the synthetic market's lead-month (bench/README.md)
SECRETS = {"admin": "x", "website": "x", "product_app": "x", "forms_signing": "x", "forms_key": "x"}
REGION = "us-east-1"
# DynamoDB stores 100 bytes of overhead with every item and index entry
# (Developer Guide, "Item sizes and formats").
ITEM_OVERHEAD_BYTES = 100
# Lambda's own lines per invocation, text format (START, END, REPORT with
# an init duration on cold starts left out: they are rare at steady load).
PLATFORM_LOG_LINES = (
    "START RequestId: 8f5e3c1a-4b6d-4e2f-9a1b-2c3d4e5f6a7b Version: $LATEST\n"
    "END RequestId: 8f5e3c1a-4b6d-4e2f-9a1b-2c3d4e5f6a7b\n"
    "REPORT RequestId: 8f5e3c1a-4b6d-4e2f-9a1b-2c3d4e5f6a7b\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 98 MB\t\n"
)
log = logging.getLogger("nurture_tools.cost")


class ByteCount(io.TextIOBase):
    """A text stream that keeps only the number of UTF-8 bytes written."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)

    def writable(self) -> bool:
        return True


class ReadMeter:
    """DynamoDB read request units of one botocore client's requests, from
    the items each returned (on-demand: 1 unit per 4 KB read strongly
    consistent, half eventually consistent; a Query's items summed per page,
    a batch's and a transaction's item by item, transactions twice; an item
    not found still costs the minimum)."""

    def __init__(self, client: Any) -> None:
        self.units: Counter[str] = Counter()
        self.active = False
        client.meta.events.register("before-parameter-build.dynamodb", self._capture)
        client.meta.events.register("after-call.dynamodb", self._bill)

    @staticmethod
    def _capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["cost_params"] = params

    @staticmethod
    def units_for(size: int, consistent: bool) -> float:
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    def _bill(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        from nurture_bench.capacity import item_size

        if not self.active or http_response.status_code >= 300:
            return
        params = context.get("cost_params") or {}
        operation = model.name
        consistent = bool(params.get("ConsistentRead"))
        if operation == "GetItem":
            self.units[operation] += self.units_for(item_size(parsed.get("Item")), consistent)
        elif operation == "Query":
            size = sum(item_size(item) for item in parsed.get("Items") or [])
            self.units[operation] += self.units_for(size, consistent)
        elif operation == "BatchGetItem":
            for table, request in params.get("RequestItems", {}).items():
                found = parsed.get("Responses", {}).get(table) or []
                unprocessed = len((parsed.get("UnprocessedKeys", {}).get(table) or {}).get("Keys") or [])
                table_consistent = bool(request.get("ConsistentRead"))
                self.units[operation] += sum(self.units_for(item_size(item), table_consistent) for item in found)
                missing = max(0, len(request.get("Keys") or []) - len(found) - unprocessed)
                self.units[operation] += missing * self.units_for(0, table_consistent)
        elif operation == "TransactGetItems":
            for response in parsed.get("Responses") or []:
                self.units[operation] += 2 * self.units_for(item_size(response.get("Item")), True)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _logs_into(sink: ByteCount) -> Iterator[None]:
    """The invocation's log: what it prints (business records, EMF) and what
    the Powertools Logger writes, whose handler holds the stream it was
    created with."""
    from nurture.core.observability import get_logger

    handler = get_logger().registered_handler
    previous = handler.setStream(sink)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


class FunctionMeter:
    """Invocations, in-process duration and log bytes of one function. The
    duration leaves the first invocation out: it pays the process's imports
    and configuration, which a container pays once (its init) while the bill
    is for a month of warm invocations."""

    def __init__(self) -> None:
        self.invocations = 0
        self.seconds = 0.0
        self.first_seconds = 0.0
        self.log_bytes = 0

    def invoke(self, handler: Any, event: Any, context: Any) -> Any:
        sink = ByteCount()
        with _logs_into(sink):
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                elapsed = time.perf_counter() - started
                if self.invocations:
                    self.seconds += elapsed
                else:
                    self.first_seconds = elapsed
                self.invocations += 1
                self.log_bytes += sink.bytes + len(PLATFORM_LOG_LINES)

    def mean_ms(self) -> float:
        """Mean warm duration (the first invocation's when there is no other)."""
        if self.invocations > 1:
            return 1000 * self.seconds / (self.invocations - 1)
        return 1000 * self.first_seconds


def _api_event(body: bytes, call: str) -> dict[str, Any]:
    """The HTTP API's event for a browser's call (a text/plain beacon body arrives as text)."""
    from nurture_tools.local.apigw import call_event

    key = base64.b64encode(f"{SECRETS['website']}:".encode()).decode()
    return call_event(call, body, "text/plain", f"Basic {key}", "cost")


def _rule_detail_types(stack: Any, logical_id: str) -> set[str]:
    """Detail-types the function's rules on the Nurture bus take."""
    properties = stack.resources[logical_id]["Properties"]
    types: set[str] = set()
    for event in (properties.get("Events") or {}).values():
        spec = event.get("Properties") or {}
        if event["Type"] == "EventBridgeRule" and spec.get("EventBusName") != "default":
            types.update((spec.get("Pattern") or {}).get("detail-type") or [])
    return types


def _bus_entries(client: Any, published: list[dict[str, Any]]) -> None:
    def keep(params: dict[str, Any], **_: Any) -> None:
        published.extend(params.get("Entries") or [])

    client.meta.events.register("provide-client-params.events.PutEvents", keep)


def _started_executions(client: Any, started: list[dict[str, Any]], clock: Any) -> None:
    def keep(params: dict[str, Any], **_: Any) -> None:
        started.append({"input": json.loads(params.get("input") or "{}"), "at": clock.timestamp()})

    client.meta.events.register("provide-client-params.stepfunctions.StartExecution", keep)


def measure_usage(
    project_dir: Path,
    inventory: Inventory,
    leads: int,
    sample_leads: int = 200,
    seed: int = 7,
    api_requests: int = 600,
) -> Usage:
    """Per-lead quantities of a month for a site of `leads` leads, from
    `sample_leads` of them replayed at that site's arrival rate (or as close
    as their sessions allow). The API function, whose work per request does
    not depend on what came before, is measured on the first `api_requests`
    requests and scaled to all of them."""
    import boto3
    from moto import mock_aws

    from nurture_bench.capacity import CallCounter, WriteMeter, item_size, table_indexes
    from nurture_bench.cli import track_batching
    from nurture_bench.common import load_handler
    from nurture_bench.traffic import Shape, _requests, build_stream, build_traffic

    batch_size, window = track_batching()
    rate = leads * EVENTS_PER_LEAD_MONTH / SECONDS_PER_MONTH
    events = sample_leads * EVENTS_PER_LEAD_MONTH
    # A few hundred people cannot send a large site's calls per second (their
    # sessions keep their pace): they are replayed over as short a period as
    # their sessions allow, and the site's batches are then estimated.
    days = events / rate / 86400
    for _ in range(20):
        try:
            traffic = build_traffic(events, sample_leads, seed, days)
            break
        except ValueError:
            days *= 1.5
    else:
        raise ValueError(f"{sample_leads} leads cannot make a month of traffic; replay more leads")
    replayed_rate = events / (days * 86400)
    shape = Shape("browser", batch_size, window)
    stream = build_stream(traffic, shape, seed)
    requests = sorted(_requests(traffic.calls, shape, random.Random(f"{seed}-cost")), key=lambda r: r[0])

    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n in ("AWS_PROFILE",)]:
        credentials[name] = ""  # never a real endpoint or account
    config = {"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
    log_level = str((inventory_parameters(project_dir).get("LogLevel") or {}).get("Default") or "INFO")
    with _environment(credentials), mock_aws(config=config):
        from nurture import wiring
        from nurture.adapters.aws import aws_client
        from nurture.core.clock import FixedClock, set_clock
        from nurture.store.schema import EventItem
        from nurture_tools.local.apigw import lambda_context
        from nurture_tools.local.template import LocalStack

        session = boto3.session.Session(region_name=REGION)
        stack = LocalStack(project_dir, session, prefix="nurture-cost")
        stack.provision(SECRETS, overrides={"NurtureHttpApi": "https://api.cost.invalid"})
        lambda_env = {
            **stack.function_environment(),
            "NURTURE_CONFIG_DIR": str(project_dir / "config"),
            "POWERTOOLS_METRICS_DISABLED": "false",
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
        with _environment(lambda_env):
            wiring.reset()
            counter = CallCounter()
            try:
                indexes = table_indexes(stack.resources["LeadsTable"]["Properties"])
                meter = WriteMeter(aws_client("dynamodb"), session.client("dynamodb"), counter, indexes)
                reads = ReadMeter(aws_client("dynamodb"))
                published: list[dict[str, Any]] = []
                started: list[dict[str, Any]] = []
                _bus_entries(aws_client("events"), published)
                clock = FixedClock(stream.invoke_at[0] if stream.invoke_at else 0.0)
                _started_executions(aws_client("stepfunctions"), started, clock)
                set_clock(clock)
                api = load_handler(project_dir / "functions" / "api" / "app.py", "cost_api_app")
                track = load_handler(project_dir / "functions" / "track" / "app.py", "cost_track_app")
                enroll = load_handler(project_dir / "functions" / "enroll" / "app.py", "cost_enroll_app")
                meters = {
                    "functions/api": FunctionMeter(),
                    "functions/track": FunctionMeter(),
                    "functions/enroll": FunctionMeter(),
                }
                counter.active = reads.active = True

                log.info(
                    "cost: %d of %d API requests for %d leads' month at %d leads' rate",
                    min(api_requests, len(requests)),
                    len(requests),
                    sample_leads,
                    leads,
                )
                statuses: Counter[int] = Counter()
                for received, body, call, _people in requests[:api_requests]:
                    clock._t = received
                    answer = meters["functions/api"].invoke(api.handler, _api_event(body, call), lambda_context("api"))
                    statuses[answer["statusCode"]] += 1
                api_calls = Counter(counter.calls)

                log.info("cost: %d track invocations, %d events", len(stream.batches), len(traffic.calls))
                failures = 0
                enroll_types = _rule_detail_types(stack, "EnrollFunction")
                context = lambda_context("track")
                for records, at in zip(stream.batches, stream.invoke_at, strict=True):
                    clock._t = at
                    before = len(published)
                    result = meters["functions/track"].invoke(track.handler, {"Records": records}, context)
                    failures += len(result.get("batchItemFailures") or [])
                    for entry in published[before:]:
                        if entry.get("DetailType") in enroll_types:
                            event = {
                                "detail-type": entry["DetailType"],
                                "source": entry.get("Source"),
                                "detail": json.loads(entry.get("Detail") or "{}"),
                            }
                            meters["functions/enroll"].invoke(enroll.handler, event, lambda_context("enroll"))

                log.info("cost: %d timelines, a month each", len(started))
                before_timelines = Counter(counter.calls)
                runs, unsupported = _run_timelines(project_dir, stack, started, clock, meters)
                timeline_calls = Counter(counter.calls) - before_timelines
            finally:
                counter.active = reads.active = False
                counter.restore()
                wiring.reset()
            items = dict(meter.items)
            log.info("cost: replay done (%d enroll invocations)", meters["functions/enroll"].invocations)

    event_bytes = other_bytes = 0
    for (_pk, sk), item in items.items():
        size = item_size(item) + ITEM_OVERHEAD_BYTES
        size += sum(item_size(i.entry(item)) + ITEM_OVERHEAD_BYTES for i in indexes if i.entry(item) is not None)
        if sk.startswith(EventItem.EVENT):
            event_bytes += size
        else:
            other_bytes += size
    retention_months = inventory.event_retention_days / DAYS_PER_MONTH

    calls = Counter(counter.calls)
    track_calls = calls - api_calls
    executions = len(started)
    if unsupported is None:
        timeline = _timeline_figures(runs, timeline_calls)
    else:  # the definition uses what the in-process run cannot interpret: the configuration's months instead
        timeline = timeline_usage(project_dir, [execution["input"] for execution in started])
        timeline["unsupported"] = unsupported
    per_enrolled = timeline["per_execution"]
    n = sample_leads
    invocations = {uri: m for uri, m in meters.items()}
    enroll_ms = meters["functions/enroll"].mean_ms() or meters["functions/track"].mean_ms()
    enroll_log = (
        meters["functions/enroll"].log_bytes / meters["functions/enroll"].invocations
        if meters["functions/enroll"].invocations
        else len(PLATFORM_LOG_LINES)
    )
    lambda_per_lead = {
        uri: {"invocations": m.invocations / n, "mean_ms": m.mean_ms(), "log_bytes": m.log_bytes / n}
        for uri, m in invocations.items()
    }
    api_meter = meters["functions/api"]
    api_scale = len(requests) / max(1, api_meter.invocations)  # measured on the first requests
    lambda_per_lead["functions/api"] = {
        "invocations": len(requests) / n,
        "mean_ms": api_meter.mean_ms(),
        "log_bytes": api_meter.log_bytes * api_scale / n,
    }
    # The consumers of the timeline's queued touches (and, when the timeline
    # could not run, its tasks): counted by the walk, their duration and log
    # taken as the enroll function's (the same few table reads and writes).
    estimated = [
        ("functions/audience_sync", executions * per_enrolled["audience_messages"]),
        ("functions/sales_tasks", executions * per_enrolled["sales_messages"]),
    ]
    if unsupported is not None:
        estimated += [
            ("functions/timeline", executions * per_enrolled["advance"]),
        ]
    for uri, count in estimated:
        lambda_per_lead[uri] = {"invocations": count / n, "mean_ms": enroll_ms, "log_bytes": count * enroll_log / n}
    # The track function at the site's rate: its duration and its own log
    # lines follow the events, the invocations (and Lambda's lines, the
    # event source mapping's receive and delete) follow the batches.
    track_meter = meters["functions/track"]
    if math.isclose(replayed_rate, rate, rel_tol=0.01):
        messages_per_invocation = stream.shape["messages_per_invocation_mean"]
    else:
        messages_per_invocation = expected_batch(rate, window, batch_size)
    track_events = len(traffic.calls)
    track_batches = track_events / messages_per_invocation
    handler_log = track_meter.log_bytes - track_meter.invocations * len(PLATFORM_LOG_LINES)
    lambda_per_lead["functions/track"] = {
        "invocations": track_batches / n,
        "mean_ms": track_meter.mean_ms() / stream.shape["messages_per_invocation_mean"] * messages_per_invocation,
        "log_bytes": (handler_log + track_batches * len(PLATFORM_LOG_LINES)) / n,
    }
    queued_touches = executions * (per_enrolled["audience_messages"] + per_enrolled["sales_messages"])
    sqs_requests = (
        api_scale * sum(v for k, v in api_calls.items() if k.startswith("sqs."))  # the API's sends
        + 2 * track_batches  # the event source mapping: a receive and a delete per batch
        + 3 * queued_touches  # the timeline's sends, and their consumers' receive and delete
    )
    wru = sum(meter.wru.values())
    table_bytes = other_bytes + event_bytes * retention_months
    per_lead = {
        "api_requests": len(requests) / n,
        "sqs_requests": sqs_requests / n,
        "dynamodb_wru": wru / n,
        "dynamodb_rru": sum(reads.units.values()) / n,
        "table_bytes": table_bytes / n,
        "bus_events": len(published) / n,
        "transitions": executions * per_enrolled["transitions"] / n,
        "emails": executions * per_enrolled["emails"] / n,
        "secret_calls": sum(v for k, v in calls.items() if k.startswith("secretsmanager.")) / n,
        # what the bill for another number of leads needs (`at_rate`)
        "track_events": len(traffic.calls) / n,
        "track_ms_per_event": track_meter.mean_ms() / stream.shape["messages_per_invocation_mean"],
        "track_handler_log_bytes": handler_log / n,
        "sqs_requests_but_track_polls": (sqs_requests - 2 * track_batches) / n,
    }
    measured = {
        "sample_leads": n,
        "events": len(traffic.calls),
        "api_requests": len(requests),
        "api_requests_replayed": api_meter.invocations,
        "api_statuses": dict(statuses),
        "replayed_events_per_second": round(replayed_rate, 4),
        "site_events_per_second": round(rate, 4),
        "track_invocations_replayed": len(stream.batches),
        "messages_per_invocation_replayed": stream.shape["messages_per_invocation_mean"],
        "messages_per_invocation_at_site_rate": round(messages_per_invocation, 3),
        "failed_records": failures,
        "dynamodb_wru_per_event": round(wru / max(1, len(traffic.calls)), 3),
        "dynamodb_wru_by_kind": dict(meter.wru.most_common()),
        "dynamodb_rru_by_operation": {k: round(v, 1) for k, v in reads.units.most_common()},
        "aws_calls_per_event": {
            "api": round(sum(api_calls.values()) / max(1, len(traffic.calls)), 3),
            "track_and_enroll": round(sum(track_calls.values()) / max(1, len(traffic.calls)), 3),
        },
        "aws_calls": dict(calls.most_common()),
        "bus_events_by_type": dict(Counter(e.get("DetailType") for e in published).most_common()),
        "timeline_executions": executions,
        "enrolled_leads_per_lead": round(executions / n, 4),
        "timeline": timeline,
        "table_bytes_per_lead": {
            "events_month": round(event_bytes / n),
            "other": round(other_bytes / n),
            "steady_state": round(table_bytes / n),
        },
        "lambda": {
            uri: {
                "invocations": m.invocations,
                "mean_ms": round(m.mean_ms(), 2),
                "log_bytes_per_invocation": round(m.log_bytes / max(1, m.invocations)),
            }
            for uri, m in meters.items()
        },
    }
    assumptions = [
        f"Per-lead quantities measured on {n} leads' month ({len(traffic.calls)} browser calls, "
        f"{len(stream.batches)} track invocations, the API's first {api_meter.invocations} requests) replayed at "
        f"{replayed_rate:.3g} events/s, and scaled linearly.",
        "Lambda durations measured in-process under the emulator (warm invocations); the consumers of queued "
        f"touches are billed at the enroll function's mean ({enroll_ms:.0f} ms), their table units not counted.",
        f"Step Functions: {timeline['transitions_per_execution']:.1f} transitions per execution the enroll function "
        f"started ({executions} for {n} leads), "
        + (
            "each run a month through the state machine with the real Advance function (which sends the emails)."
            if unsupported is None
            else f"from each track's month of touches ({unsupported})."
        ),
        f"DynamoDB storage at steady state: a lead's items plus {inventory.event_retention_days} days of its events, "
        f"{ITEM_OVERHEAD_BYTES} bytes of overhead per item and index entry.",
        "SES feedback (opens, clicks) reaches the default bus as AWS service events, free; the SES events "
        "function's invocations are not counted.",
    ]
    measured["batching"] = {
        "window_s": window,
        "batch_size": batch_size,
        "replayed_rate": replayed_rate,
        "replayed_messages_per_invocation": stream.shape["messages_per_invocation_mean"],
    }
    return Usage(per_lead, lambda_per_lead, measured, assumptions)


def at_rate(usage: Usage, leads: int) -> Usage:
    """The same measurement billed for a site of `leads` leads: the track
    function's invocations (and Lambda's lines per invocation, the event
    source mapping's receive and delete) follow that site's batches; every
    other quantity is per lead already."""
    batching = usage.measured["batching"]
    rate = leads * EVENTS_PER_LEAD_MONTH / SECONDS_PER_MONTH
    if math.isclose(batching["replayed_rate"], rate, rel_tol=0.01):
        per_invocation = batching["replayed_messages_per_invocation"]
    else:
        per_invocation = expected_batch(rate, batching["window_s"], batching["batch_size"])
    u = dict(usage.per_lead)
    invocations = u["track_events"] / per_invocation
    u["sqs_requests"] = u["sqs_requests_but_track_polls"] + 2 * invocations
    lambda_per_lead = dict(usage.lambda_per_lead)
    lambda_per_lead["functions/track"] = {
        "invocations": invocations,
        "mean_ms": u["track_ms_per_event"] * per_invocation,
        "log_bytes": u["track_handler_log_bytes"] + invocations * len(PLATFORM_LOG_LINES),
    }
    measured = {
        **usage.measured,
        "site_events_per_second": round(rate, 4),
        "messages_per_invocation_at_site_rate": round(per_invocation, 3),
    }
    assumptions = [
        f"{leads:,} leads send {rate:.3g} events/s: {per_invocation:.2f} messages per track invocation"
        + (
            " (as replayed)."
            if math.isclose(batching["replayed_rate"], rate, rel_tol=0.01)
            else " (expected for Poisson arrivals at the template's batch size and window; the table units are "
            "the replay's, at its own batches)."
        ),
        *usage.assumptions[1:],
    ]
    return Usage(u, lambda_per_lead, measured, [usage.assumptions[0], *assumptions])


def _timeline_tasks(project_dir: Path, stack: Any) -> dict[str, tuple[str, Any]]:
    """The state machine's function substitutions -> (code uri, handler)."""
    from nurture_bench.common import load_handler

    tasks = {}
    for resource in stack.resources.values():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        for name, value in (resource["Properties"].get("DefinitionSubstitutions") or {}).items():
            target = value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None
            function = stack.resources.get(target or "", {})
            if function.get("Type") != "AWS::Serverless::Function":
                continue
            code_uri = function["Properties"]["CodeUri"]
            module, attribute = function["Properties"]["Handler"].rsplit(".", 1)
            app = load_handler(project_dir / code_uri / f"{module}.py", f"cost_{target}_{module}")
            tasks[name] = (code_uri, getattr(app, attribute))
    return tasks


def _run_timelines(
    project_dir: Path, stack: Any, started: list[dict[str, Any]], clock: Any, meters: dict[str, FunctionMeter]
) -> tuple[list[tuple[dict[str, Any], Walk]], str | None]:
    """Each started execution run a month in-process (`run_execution`) with
    the real task functions; None, or why the definition could not be run."""
    from nurture_tools.local.apigw import lambda_context

    definition = load_definition(project_dir)
    tasks = _timeline_tasks(project_dir, stack)

    def invoke(name: str, payload: Any) -> Any:
        code_uri, handler = tasks[name]
        return meters.setdefault(code_uri, FunctionMeter()).invoke(handler, payload, lambda_context(name))

    runs = []
    try:
        for execution in sorted(started, key=lambda e: e["at"]):
            clock._t = execution["at"]
            walked = run_execution(definition, execution["input"], invoke, clock, execution["at"] + SECONDS_PER_MONTH)
            runs.append((execution["input"], walked))
    except (UnsupportedStateError, KeyError) as error:
        return [], str(error)
    return runs, None


def _timeline_figures(runs: list[tuple[dict[str, Any], Walk]], calls: Counter[str]) -> dict[str, Any]:
    count = max(1, len(runs))
    total: Counter[str] = Counter()
    by_track: dict[str, list[int]] = {}
    for execution_input, walked in runs:
        total["transitions"] += walked.transitions
        total["advance"] += walked.lambda_invocations.get("AdvanceFunctionArn", 0)
        total["audience_messages"] += walked.sqs_messages.get("AudienceQueueUrl", 0)
        total["sales_messages"] += walked.sqs_messages.get("SalesTaskQueueUrl", 0)
        by_track.setdefault(str(execution_input.get("track_id")), []).append(walked.transitions)
    total["emails"] = sum(v for k, v in calls.items() if k in ("sesv2.SendEmail", "ses.SendEmail", "ses.SendRawEmail"))
    # Advance queues the hand-offs itself: its SendMessage calls, whichever queue
    # (counted as the audience consumer's, the one with most touches)
    if not total["audience_messages"] and not total["sales_messages"]:
        total["audience_messages"] = calls.get("sqs.SendMessage", 0)
    per_execution = {
        k: total[k] / count for k in ("transitions", "advance", "audience_messages", "sales_messages", "emails")
    }
    return {
        "per_execution": per_execution,
        "transitions_per_execution": per_execution["transitions"],
        "transitions_per_enrolled_lead_month": per_execution["transitions"],
        "executions_by_track": {track: len(runs) for track, runs in by_track.items()},
        "transitions_by_track": {track: round(sum(t) / len(t), 2) for track, t in by_track.items()},
        "aws_calls": dict(calls.most_common()),
    }


def expected_batch(rate: float, window: float, batch_size: int) -> float:
    """Messages per invocation when arrivals are Poisson at `rate`: a batch
    opens at its first message and closes at `batch_size` messages or after
    `window` seconds, so it holds 1 + min(arrivals in the window, size - 1)."""
    mean = rate * window
    term = math.exp(-mean)  # P(X = 0)
    at_least = 1.0
    expected = 1.0
    for k in range(1, batch_size):
        at_least -= term  # P(X >= k)
        expected += at_least
        term *= mean / k
    return expected


def inventory_parameters(project_dir: Path) -> dict[str, Any]:
    from nurture_tools.local.template import load_template

    return load_template(project_dir / "template.yaml").get("Parameters") or {}
