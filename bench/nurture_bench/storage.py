"""Where a browser event's write units could go: the items the track handler
really puts on a replay (under moto, as the ingest benchmark replays them),
re-billed as two other ways of storing events would write them.

- `today`: what the replay wrote (lead put per lead per batch, one item per
  event, stage moves, identity items), table only.
- `lead_carries_events`: no event items; a lead carries the events applied
  since its last pack (`recent`) and digests of the ids it applied (`seen`,
  for dedupe); when a save would take the lead past one write unit (1 KB),
  `recent` is first written as a pack item of its own.
- `batch_pack`: no event items; one pack item per invocation holding all its
  events (written before the leads, so no pending list), the lead carrying
  `seen`;
- `lead_pack`: no event items; one pack per lead per invocation, in the
  lead's partition (so read, exported and erased with it), the lead carrying
  `seen`.

In both, an event in a pack keeps its message id, kind, name, time, source,
properties, points and content (what an event item holds but its keys, type
and expiry, which the pack holds once), as compact JSON, optionally zlib.
`seen` is `window` digests of 4 bytes. The indexes and the reads are left as
today: this models the table's own units and the write calls only.

    python bench/storage.py [--events 3000] [--shape browser] [--window 10]

Prints one JSON object; bench/README.md ("Where the write units go") reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from collections import defaultdict
from typing import Any

from .capacity import item_size, write_units
from .common import log

LEAD_UNIT = 1024
PACK_OVERHEAD = 60  # keys, type and expiry of a pack item, in bytes
DIGEST = 4
PENDING = ("pe", "pm")  # a lead's pending lists: gone when events are stored before the lead


def compact_event(item: dict[str, Any]) -> bytes:
    """An event item as a pack would hold it."""
    record = [item["sk"]["S"].split("#", 1)[1]]
    for name in ("k", "n", "ts", "src", "pr", "pts", "cid"):
        if name in item:
            ((_, value),) = item[name].items()
            record.append(value if not isinstance(value, list) else json.dumps(value, separators=(",", ":")))
    return json.dumps(record, separators=(",", ":")).encode()


def _body(events: list[bytes], compress: bool) -> int:
    if not events:
        return 0
    body = b"[" + b",".join(events) + b"]"
    return len(zlib.compress(body, 9) if compress else body)


def model(puts: list[tuple[int, str, dict[str, Any]]], events: int, design: str, window: int, compress: bool) -> dict:
    by_invocation: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for invocation, category, item in puts:
        by_invocation[invocation].append((category, item))
    units: dict[str, int] = defaultdict(int)
    calls: dict[str, float] = defaultdict(float)
    recent: dict[str, list[bytes]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    for invocation in sorted(by_invocation):
        items = by_invocation[invocation]
        new: dict[str, list[bytes]] = defaultdict(list)
        for category, item in items:
            if category == "event_items":
                new[item["pk"]["S"]].append(compact_event(item))
        if design == "batch_pack" and new:
            units["packs"] += write_units(_body([e for evs in new.values() for e in evs], compress) + PACK_OVERHEAD)
            calls["pack_writes"] += 1 / 25  # BatchWriteItem takes 25 items
        if design == "lead_pack":
            for applied in new.values():
                units["packs"] += write_units(_body(applied, compress) + PACK_OVERHEAD)
                calls["pack_writes"] += 1 / 25
        for category, item in items:
            if category == "event_items":
                continue
            if category != "lead_put_item":
                units["other_items"] += write_units(item_size(item))
                continue
            pk = item["pk"]["S"]
            lead = item_size({name: value for name, value in item.items() if name not in PENDING})
            applied = new.pop(pk, [])
            seen[pk] = min(window, seen[pk] + len(applied))
            digests = seen[pk] * DIGEST + 4 if window else 0
            calls["lead_puts"] += 1
            if design == "lead_carries_events":
                if recent[pk] and lead + digests + _body(recent[pk] + applied, compress) + 4 > LEAD_UNIT:
                    units["packs"] += write_units(_body(recent[pk], compress) + PACK_OVERHEAD)
                    calls["pack_writes"] += 1
                    recent[pk] = []
                recent[pk] += applied
                units["lead_puts"] += write_units(lead + digests + _body(recent[pk], compress) + 4)
            else:
                units["lead_puts"] += write_units(lead + digests)
    total = sum(units.values())
    return {
        "design": design,
        "seen_window": window,
        "zlib": compress,
        "table_wru_per_event": round(total / events, 3),
        "wru_per_event": {name: round(value / events, 3) for name, value in units.items()},
        "write_calls_per_event": round(sum(calls.values()) / events, 3),
    }


def today(puts: list[tuple[int, str, dict[str, Any]]], events: int) -> dict:
    units: dict[str, int] = defaultdict(int)
    for _, category, item in puts:
        units[category] += write_units(item_size(item))
    return {
        "design": "today",
        "table_wru_per_event": round(sum(units.values()) / events, 3),
        "wru_per_event": {name: round(value / events, 3) for name, value in units.items()},
    }


def main(argv: list[str] | None = None) -> int:
    from . import cli
    from .traffic import Shape, build_stream, build_traffic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--shape", default="browser", choices=["browser", "batched"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window", type=float, help="batching window in seconds (default: template.yaml's)")
    args = parser.parse_args(argv)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": cli.REGION,
            "AWS_REGION": cli.REGION,
        }
    )
    batch_size, window = cli.track_batching()
    window = args.window if args.window is not None else window
    leads = max(1, args.events // cli.EVENTS_PER_LEAD_MONTH)
    traffic = build_traffic(args.events, leads, args.seed, args.events / cli.TEN_K_LEADS_RATE / 86400)
    stream = build_stream(traffic, Shape(args.shape, batch_size, window, 10, 100), args.seed)
    log(f"{args.shape}: replaying {args.events} events under moto")
    measured = cli._replay(stream, keep_puts=True)
    puts = measured["puts"]
    events = stream.shape["events"]
    designs = [today(puts, events)]
    for design in ("lead_carries_events", "batch_pack", "lead_pack"):
        for seen_window in (0, 32, 64):
            for compress in (False, True):
                designs.append(model(puts, events, design, seen_window, compress))
    json.dump(
        {
            "shape": args.shape,
            "batching": {"batch_size": batch_size, "window_s": window},
            "events": events,
            "messages_per_invocation_mean": stream.shape["messages_per_invocation_mean"],
            "measured_wru_per_event": measured["wru_per_event"],
            "measured_aws_calls_per_event": measured["aws_calls_per_event"],
            "lead_item_bytes": measured["lead_item_bytes"],
            "designs": designs,
        },
        sys.stdout,
        indent=1,
    )
    print()
    return 0
