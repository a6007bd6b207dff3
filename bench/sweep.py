"""Sweep benchmark: what a sweep reads when a few leads of a large table are due.

Seeds the table built from template.yaml (moto, in-process) with `--leads`
leads as the product stores them, `--due` of them lost long enough ago to be
woken, runs the real sweep function twice the same day and reports, as one
JSON object on stdout: the index entries and leads each run read, the read
capacity the emulator reported, and an estimate of what DynamoDB would charge
(eventually consistent reads: 0.5 RCU per 4 KB, per page for a Query and per
item for BatchGetItem) next to what a Scan of the same table would cost.

    .venv/bin/python bench/sweep.py                       # 10,000 leads, 100 due
    .venv/bin/python bench/sweep.py --leads 2000 --due 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
DAY = 86400.0
NOW = 1_780_000_000.0


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers ~1 byte per 2 digits)."""

    def value_bytes(value: dict[str, Any]) -> int:
        ((kind, inner),) = value.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return 1 + math.ceil(len(inner.lstrip("-").replace(".", "")) / 2)
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + value_bytes(v) for k, v in inner.items())
        if kind == "L":
            return 3 + sum(1 + value_bytes(v) for v in inner)
        return len(json.dumps(inner))

    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def main() -> None:
    """Prints one JSON object on stdout: what the functions print there (their
    EMF metrics, every 100 values) goes nowhere while they run."""
    report = measure()
    print(json.dumps(report, indent=2))


def measure() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=100)
    args = parser.parse_args()
    if not 0 < args.due <= args.leads:
        parser.error("--due must be between 1 and --leads")

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    import boto3
    from moto import mock_aws

    from nurture import wiring
    from nurture.core.clock import FixedClock, set_clock
    from nurture.core.domain import Lead
    from nurture.store.repository import lead_to_item, to_item
    from nurture.sweeps.scheduled import due_index_function
    from nurture_tools.local.moto_runtime import MOTO_CONFIG
    from nurture_tools.local.template import LocalStack

    with mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(region_name="us-east-1")
        stack = LocalStack(PROJECT_DIR, session, prefix="bench")
        stack.provision({"admin": "bench"}, overrides={"NurtureHttpApi": "https://api.bench"})
        os.environ.update(stack.function_environment(), NURTURE_CONFIG_DIR=str(PROJECT_DIR / "config"))
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # stdout carries the report only
        wiring.reset()
        config = wiring.get_config()
        due = due_index_function(config)
        client, table = session.client("dynamodb"), os.environ["TABLE_NAME"]
        print(f"seeding {args.leads} leads ({args.due} due)", file=sys.stderr)
        requests = []
        for n in range(args.leads):
            lead = Lead(lead_id=f"p{n:06d}", email=f"lead{n}@example.com", fit_grade="B", version=1)
            lead.profile = {"domain": "example.com", "title": "Director of Revenue Operations", "industry": "Software"}
            if n < args.due:
                lead.lifecycle, lead.lifecycle_at = "lost", NOW - (config.sweeps.lost_after_days + 5) * DAY
            elif n % 3 == 0:
                lead.lifecycle, lead.lifecycle_at = "lost", NOW - DAY * (n % 60)
            elif n % 3 == 1:
                lead.lifecycle, lead.lifecycle_at, lead.last_seen_at = "warm", NOW - 2 * DAY, NOW - DAY
                lead.engagement, lead.engagement_at = 60.0, NOW - DAY
            else:
                lead.lifecycle = "subscriber"
            requests.append({"PutRequest": {"Item": to_item(lead_to_item(lead, due))}})
        for start in range(0, len(requests), 25):
            client.batch_write_item(RequestItems={table: requests[start : start + 25]})
        table_bytes = sum(item_bytes(r["PutRequest"]["Item"]) for r in requests)

        # What the reads would cost on DynamoDB, from the items actually read.
        estimate = {"rcu": 0.0}

        def on_query(parsed: dict[str, Any], **_: Any) -> None:
            estimate["rcu"] += 0.5 * max(1, math.ceil(sum(item_bytes(i) for i in parsed.get("Items", [])) / 4096))

        def on_batch_get(parsed: dict[str, Any], **_: Any) -> None:
            for items in parsed.get("Responses", {}).values():
                estimate["rcu"] += sum(0.5 * max(1, math.ceil(item_bytes(i) / 4096)) for i in items)

        store = wiring.get_store()
        store._client.meta.events.register("after-call.dynamodb.Query", on_query)
        store._client.meta.events.register("after-call.dynamodb.BatchGetItem", on_batch_get)

        sys.path.insert(0, str(PROJECT_DIR / "functions"))
        from sweeps.app import handler

        from nurture_tools.local.apigw import lambda_context

        runs = []
        for offset in (0.0, 3600.0):
            set_clock(FixedClock(NOW + offset))
            before = dict(store.sweep_reads)
            estimate["rcu"] = 0.0
            started = time.perf_counter()
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                result = handler({"sweep": "due"}, lambda_context("SweepFunction"))
            runs.append(
                {
                    "woken": sum(result["woken"].values()),
                    "index_entries_read": store.sweep_reads["index_items"] - before["index_items"],
                    "leads_read": store.sweep_reads["leads"] - before["leads"],
                    "read_capacity_units_reported": result["read_capacity_units"],
                    "read_capacity_units_estimated": estimate["rcu"],
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
        return {
            "table": {"leads": args.leads, "due": args.due, "bytes": table_bytes},
            "scan_rcu_estimated": 0.5 * math.ceil(table_bytes / 4096),
            "first_run": runs[0],
            "second_run_same_day": runs[1],
        }


if __name__ == "__main__":
    main()
