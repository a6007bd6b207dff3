"""CPU per event of a warm track handler, versus the minimal useful consumer
(the baseline), both with AWS answered in-process at botocore's HTTP layer:
each pays botocore's real client-side work, neither the network nor the service."""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from typing import Any

from .common import DEVNULL, ROOT, log
from .fake_aws import FakeAws, NoopPublisher
from .traffic import START, Stream


def _baseline_item(message: dict[str, Any]) -> dict[str, Any]:
    """The event as one item of the store's event layout, nothing more."""
    from nurture.core.domain import StoredEvent
    from nurture.store.repository import event_to_item

    event = StoredEvent("baseline", message["id"], message["k"], message["n"], message["ts"], message["src"])
    event.properties = message.get("pr") or {}
    return event_to_item(event)


BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem request


def baseline_factory(client: Any, table: str):
    """The minimal SQS -> DynamoDB Lambda the handler is compared with: the
    invocation's events as plain items, written 25 to a BatchWriteItem
    request (what was left unprocessed is sent again)."""
    from nurture.store.values import to_item

    def baseline_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        requests = [
            {"PutRequest": {"Item": to_item(_baseline_item(message))}}
            for record in event["Records"]
            for message in json.loads(record["body"])["events"]
        ]
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending = {table: requests[start : start + BATCH_WRITE_LIMIT]}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        return {"batchItemFailures": []}

    return baseline_handler


def baseline_dict_factory(items: dict[tuple[str, str], dict[str, Any]]):
    def baseline_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            for message in json.loads(record["body"])["events"]:
                item = _baseline_item(message)
                items[(item["pk"], item["sk"])] = item
        return {"batchItemFailures": []}

    return baseline_handler


def _replay_cpu(
    handler: Any, stream: Stream, context: Any, fake: FakeAws | None, profile: cProfile.Profile | None = None
) -> float:
    """CPU seconds the handler spent on the whole stream, the fake service's share removed."""
    from nurture.core.clock import FixedClock, set_clock

    clock = FixedClock(stream.invoke_at[0] if stream.invoke_at else START)
    set_clock(clock)
    total = 0.0
    for records, at in zip(stream.batches, stream.invoke_at, strict=True):
        clock._t = at
        event = {"Records": records}
        if profile:
            profile.enable()
        started = time.process_time()
        with contextlib.redirect_stdout(DEVNULL):
            result = handler(event, context)
        total += time.process_time() - started
        if profile:
            profile.disable()
        if result.get("batchItemFailures"):
            raise RuntimeError(f"handler reported failures: {result['batchItemFailures'][:3]}")
    return total - (fake.cpu if fake else 0.0)


def _stubbed_handler_run(
    track: Any, stream: Stream, context: Any, profiler: cProfile.Profile | None = None
) -> tuple[float, list[str]]:
    """The real handler in a warm container (config loaded, clients built and
    used once), its DynamoDB and EventBridge clients answered by FakeAws."""
    from nurture import wiring
    from nurture.adapters.aws import aws_client

    wiring.reset()
    wiring.get_tracker()
    fake = FakeAws()
    dynamodb, events_client = aws_client("dynamodb"), aws_client("events")
    fake.attach(dynamodb)
    fake.attach(events_client)
    dynamodb.batch_get_item(RequestItems={os.environ["TABLE_NAME"]: {"Keys": [{"pk": {"S": "w"}, "sk": {"S": "u"}}]}})
    events_client.put_events(
        Entries=[
            {"Source": "bench", "DetailType": "warm-up", "Detail": "{}", "EventBusName": os.environ["EVENT_BUS_NAME"]}
        ]
    )
    fake.reset_counts()
    cpu = _replay_cpu(track.handler, stream, context, fake, profiler)
    return cpu, list(fake.log)


def _stubbed_baseline_run(stream: Stream, context: Any) -> tuple[float, list[str]]:
    import boto3

    table = os.environ["TABLE_NAME"]
    client = boto3.session.Session().client("dynamodb")
    fake = FakeAws()
    fake.attach(client)
    client.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": "w"}, "sk": {"S": "u"}}}}]})
    fake.reset_counts()
    cpu = _replay_cpu(baseline_factory(client, table), stream, context, fake)
    return cpu, list(fake.log)


def _in_memory_handler_run(track: Any, stream: Stream, context: Any) -> float:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the in-memory store is a test double (tests/fakes.py)
    from nurture import wiring
    from tests.fakes import InMemoryLeadStore

    wiring.reset()
    tracker = wiring.get_tracker()
    tracker.store, tracker.publisher = InMemoryLeadStore(), NoopPublisher()
    return _replay_cpu(track.handler, stream, context, None)


def _cold_setup_ms() -> dict[str, float]:
    """What the first invocation pays before any event: config, then clients."""
    from nurture import wiring

    wiring.reset()
    started = time.perf_counter()
    wiring.get_config()
    loaded = time.perf_counter()
    wiring.get_tracker()
    done = time.perf_counter()
    wiring.reset()
    return {
        "config_load_ms": round((loaded - started) * 1000, 1),
        "clients_and_tracker_ms": round((done - loaded) * 1000, 1),
    }


def measure_cpu(track: Any, stream: Stream, repeats: int, profile: bool) -> dict[str, Any]:
    from nurture import wiring
    from nurture_tools.local.apigw import lambda_context

    context = lambda_context("TrackFunction")
    events = stream.shape["events"]
    setup = _cold_setup_ms()
    runs: dict[str, list[float]] = {"handler": [], "baseline": [], "handler_in_memory": [], "baseline_dict": []}
    calls: dict[str, list[str]] = {}
    for repeat in range(repeats):  # interleaved, so drift hits both alike
        cpu, calls["handler"] = _stubbed_handler_run(track, stream, context)
        runs["handler"].append(cpu)
        cpu, calls["baseline"] = _stubbed_baseline_run(stream, context)
        runs["baseline"].append(cpu)
        runs["handler_in_memory"].append(_in_memory_handler_run(track, stream, context))
        runs["baseline_dict"].append(_replay_cpu(baseline_dict_factory({}), stream, context, None))
        log(
            f"cpu run {repeat + 1}/{repeats}: handler {runs['handler'][-1]:.2f}s, "
            f"baseline {runs['baseline'][-1]:.2f}s, handler/in-memory store {runs['handler_in_memory'][-1]:.2f}s, "
            f"baseline/dict {runs['baseline_dict'][-1]:.2f}s"
        )
    if profile:  # an extra, untimed run
        profiler = cProfile.Profile()
        _stubbed_handler_run(track, stream, context, profiler)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(35)
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(45)
        print(out.getvalue(), file=sys.stderr)
    wiring.reset()
    per_event = {name: statistics.median(values) / max(1, events) * 1e6 for name, values in runs.items()}
    return {
        "handler_cpu_us_per_event": round(per_event["handler"], 1),
        "baseline_cpu_us_per_event": round(per_event["baseline"], 1),
        "cpu_ratio": round(per_event["handler"] / per_event["baseline"], 2),
        "cpu_runs": repeats,
        "cpu_runs_us_per_event": {
            name: [round(v / max(1, events) * 1e6, 1) for v in values] for name, values in runs.items()
        },
        "cpu_stub_calls": {name: len(log) for name, log in calls.items()},
        "cpu_stub_calls_per_event": {name: round(len(log) / max(1, events), 3) for name, log in calls.items()},
        "handler_call_log": calls["handler"],  # the operations in order, to compare with the moto replay
        "first_invocation_setup": setup,
        "cpu_without_botocore": {
            "handler_in_memory_store_us_per_event": round(per_event["handler_in_memory"], 1),
            "baseline_dict_us_per_event": round(per_event["baseline_dict"], 1),
            "ratio": round(per_event["handler_in_memory"] / per_event["baseline_dict"], 2),
        },
    }
