"""Choosing the track function's SQS batching: for each batching window (and
batch size), the browser-shaped stream of the same traffic replayed through
the track handler under moto, with what the choice buys and what it costs:

- what it buys: messages per invocation, and per event the DynamoDB write
  units (table and indexes) and AWS calls;
- what it costs: how long an event waits between reaching the queue and the
  invocation that scores it (p50, p95, max), the window's price in freshness.

`python bench/windows.py [--windows 0,1,5,20] [--batch-sizes 10]` prints one
JSON object; progress goes to stderr. bench/README.md quotes a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from .cli import EVENTS_PER_LEAD_MONTH, TEN_K_LEADS_RATE, _replay, track_batching
from .common import REGION, log
from .traffic import Shape, Stream, build_stream, build_traffic


def waits(stream: Stream) -> list[float]:
    """Seconds from each message reaching the queue to the invocation that applies it."""
    return [
        at - int(record["attributes"]["SentTimestamp"]) / 1000
        for records, at in zip(stream.batches, stream.invoke_at, strict=True)
        for record in records
    ]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(stream: Stream) -> dict[str, Any]:
    waited = waits(stream)
    aws = _replay(stream)
    return {
        "messages_per_invocation_mean": stream.shape["messages_per_invocation_mean"],
        "distinct_leads_per_batch": stream.shape["distinct_leads_per_batch"],
        "invocations": len(stream.batches),
        "dynamodb_write_units_per_event": aws["dynamodb_write_units_per_event"],
        "aws_calls_per_event": aws["aws_calls_per_event"],
        "event_to_score_seconds": {
            "p50": round(statistics.median(waited), 2),
            "p95": round(_percentile(waited, 0.95), 2),
            "max": round(max(waited), 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events in the stream (default 3000)")
    parser.add_argument("--leads", type=int, default=None, help="people visiting the site (default events / 30)")
    parser.add_argument("--rate", type=float, default=TEN_K_LEADS_RATE, help="mean events per second (10k leads)")
    parser.add_argument("--windows", default="0,1,5,20", help="batching windows in seconds (default 0,1,5,20)")
    parser.add_argument("--batch-sizes", default="10", help="batch sizes (default 10)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    windows = [float(w) for w in args.windows.split(",")]
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    started = time.perf_counter()
    leads = args.leads or max(1, args.events // EVENTS_PER_LEAD_MONTH)
    days = args.events / args.rate / 86400
    traffic = build_traffic(args.events, leads, args.seed, days)
    template_size, template_window = track_batching()
    rows = []
    for size in sizes:
        for window in windows:
            stream = build_stream(traffic, Shape("browser", size, window), args.seed)
            log(f"batch size {size}, window {window:g} s: {len(stream.batches)} invocations")
            rows.append({"batch_size": size, "batching_window_s": window, **measure(stream)})
    report = {
        "template": {"batch_size": template_size, "batching_window_s": template_window},
        "events": args.events,
        "leads": leads,
        "events_per_second": args.rate,
        "choices": rows,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
