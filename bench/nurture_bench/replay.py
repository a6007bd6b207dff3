"""The stream replayed through the track handler under moto, with the table,
queues, bus and secret template.yaml declares: write units and AWS calls per event."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections import Counter
from typing import Any

from nurture.store.schema import LeadItem

from .capacity import CallCounter, Index, WriteMeter
from .common import DEVNULL, log
from .traffic import START, Stream


def measure_aws(
    track: Any, stream: Stream, counter: CallCounter, reader: Any, indexes: list[Index], keep_puts: bool = False
) -> dict[str, Any]:
    from nurture import wiring
    from nurture.adapters.aws import aws_client
    from nurture.core.clock import FixedClock, set_clock
    from nurture_tools.local.apigw import lambda_context

    wiring.reset()
    meter = WriteMeter(aws_client("dynamodb"), reader, counter, indexes)
    meter.keep_puts = keep_puts
    wiring.get_tracker()
    context = lambda_context("TrackFunction")
    clock = FixedClock(START)
    set_clock(clock)
    failures = 0
    started = time.perf_counter()
    n = len(stream.batches)
    step = max(1, n // 20)
    events_done = 0
    for i, (records, at) in enumerate(zip(stream.batches, stream.invoke_at, strict=True)):
        clock._t = at
        meter.invocation = i
        counter.active = True
        try:
            with contextlib.redirect_stdout(DEVNULL):
                result = track.handler({"Records": records}, context)
        finally:
            counter.active = False
        failures += len(result.get("batchItemFailures", []))
        events_done += sum(len(json.loads(r["body"])["events"]) for r in records)
        if (i + 1) % step == 0 or i + 1 == n:
            elapsed = time.perf_counter() - started
            rate = events_done / elapsed
            log(
                f"moto replay: batch {i + 1}/{n}, {events_done} events, {rate:.0f} events/s, "
                f"eta {(stream.shape['events'] - events_done) / rate:.0f}s"
            )
    events = stream.shape["events"]
    total_wru = sum(meter.wru.values())
    split = {"table": meter.table_units(), **{index.name: meter.wru[index.name] for index in indexes}}
    dynamodb_calls = sum(v for k, v in counter.calls.items() if k.startswith("dynamodb."))
    leads = [item for (pk, sk), item in meter.items.items() if sk == LeadItem.SK]
    stored = sum(1 for key in meter.items if meter._category(key, "") == "event_items")
    lead_puts = meter.writes["lead_put_item"]

    def pct(values: list[int], q: float) -> int:
        return sorted(values)[int(q * (len(values) - 1))] if values else 0

    return {
        "dynamodb_write_units_per_event": round(total_wru / events, 3),
        "wru_per_event": {name: round(units / events, 3) for name, units in split.items()},
        "aws_calls_per_event": round(sum(counter.calls.values()) / events, 3),
        "wru_breakdown_per_event": {k: round(v / events, 3) for k, v in sorted(meter.wru.items(), key=lambda x: -x[1])},
        "aws_calls_breakdown_per_event": {k: round(v / events, 4) for k, v in counter.calls.most_common()},
        "aws_calls_per_batch": round(sum(counter.calls.values()) / len(stream.batches), 2),
        "dynamodb_calls_per_event": round(dynamodb_calls / events, 3),
        "lead_writes_per_batch": round(lead_puts / len(stream.batches), 2),
        "index_writes_per_event": {index.name: round(meter.writes[index.name] / events, 3) for index in indexes},
        "lead_item_bytes": {
            "mean": round(statistics.fmean(meter.lead_sizes)) if meter.lead_sizes else 0,
            "p50": pct(meter.lead_sizes, 0.5),
            "p95": pct(meter.lead_sizes, 0.95),
            "max": max(meter.lead_sizes, default=0),
        },
        "lead_wru_per_put": round(meter.wru["lead_put_item"] / max(1, len(meter.lead_sizes)), 2),
        "event_item_bytes": {
            "mean": round(statistics.fmean(meter.event_sizes)) if meter.event_sizes else 0,
            "max": max(meter.event_sizes, default=0),
        },
        "conditional_write_failures": meter.conditional_failures,
        "failed_records": failures,
        "events_stored": stored,
        "lead_items": len(leads),
        "merged_lead_items": sum(1 for item in leads if LeadItem.merged_into.attr_name in item),
        "leads_by_lifecycle": dict(
            Counter(item.get(LeadItem.lifecycle.attr_name, {}).get("S", "visitor") for item in leads).most_common()
        ),
        "items_written_per_event": {k: round(v / events, 3) for k, v in meter.writes.most_common() if k not in split},
        "aws_calls_total": sum(counter.calls.values()),
        "call_log": list(counter.log),  # the operations in order, to compare with the CPU run
        **({"puts": meter.puts} if keep_puts else {}),
        "replay_seconds": round(time.perf_counter() - started, 1),
    }
