"""The track path under injected faults: every AWS call of a realistic run
fails in turn (before it reaches the service, and after it succeeded), SQS
redelivers what the function reported failed, and a fifth of the records are
delivered twice more. The end state must be the clean run's: every event
stored once, no score counted twice, no identity pointing at a lead that
holds no history, every lifecycle event published (at least once).

A redelivery that finds an event applied but not stored stores it without
the points its first attempt recorded on it (the lead's score holds them):
event items are compared without their points and content.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from nurture.core.clock import FixedClock, get_clock, set_clock
from nurture.store.repository import event_from_item, from_item, lead_from_item
from tests.faults import MODES, FaultInjector
from tests.integration.conftest import ingest_record

NOW = 1_780_000_000.0  # the run's fixed clock
ICP = {"title": "VP Revenue Operations", "industry": "Insurance", "employees": 900, "country": "GB"}
READS = ("Get", "BatchGet", "Query", "Scan")
LEAD_NOT_COMPARED = ("version", "pending", "pending_moves", "outbox")


def _scenario() -> list[dict[str, Any]]:
    """Ana known by email, browsing on a second device, identifying there, then
    becoming hot; Bob reading the blog for a day in one batch."""

    def call(kind: str, message_id: str, at: float, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "messageId": message_id, "timestamp": _iso(at), **fields}

    t = NOW - 7 * 86400
    ana = {"email": "ana@globex.com", **ICP}
    bob = {"email": "bob@initech.com", **ICP}
    return [
        ingest_record(call("identify", "ana-id-0", t, anonymousId="dev-0", traits=ana), message_id="r0"),
        ingest_record(
            call("page", "anon-pricing", t + 60, anonymousId="dev-1", properties={"path": "/pricing"}),
            call("page", "anon-product", t + 120, anonymousId="dev-1", properties={"path": "/product/forecast"}),
            message_id="r1",
        ),
        ingest_record(call("identify", "ana-id-1", t + 180, anonymousId="dev-1", traits=ana), message_id="r2"),
        ingest_record(
            call("track", "ana-roi", t + 240, anonymousId="dev-1", event="ROI Calculator Completed"),
            call("track", "ana-webinar", t + 300, anonymousId="dev-1", event="Webinar Attended"),
            call("track", "ana-case", t + 360, anonymousId="dev-1", event="Webinar Registered"),
            message_id="r3",
        ),
        ingest_record(
            call("identify", "bob-id", t, userId="u-bob", traits=bob),
            *[
                call("page", f"bob-blog-{n}", t + n * 3600, userId="u-bob", properties={"path": f"/blog/{n}"})
                for n in range(20)
            ],
            message_id="r4",
        ),
    ]


def _iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


class _Context:
    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def _deliver(records: list[dict[str, Any]], duplicates: list[dict[str, Any]]) -> None:
    """SQS: each record until the function stops reporting it failed, then the duplicates."""
    from sweeps.app import handler as sweep
    from track.app import handler as track

    for record in [*records, *duplicates]:
        for _ in range(6):
            try:
                failed = track({"Records": [record]}, _Context())["batchItemFailures"]
            except Exception:
                failed = [record["messageId"]]
            if not failed:
                break
        else:
            pytest.fail(f"record {record['messageId']} never succeeded")
    for _ in range(3):  # the due sweep publishes outboxes a failed publish left behind
        try:
            sweep({"sweep": "due"}, _Context())
            break
        except Exception:
            continue


def _state(deployed) -> dict[str, Any]:
    table = deployed.env["TABLE_NAME"]
    client = deployed.client("dynamodb")
    pages = client.get_paginator("scan").paginate(TableName=table)
    items = [from_item(item) for page in pages for item in page["Items"]]
    leads, events, identities = {}, {}, {}
    for item in items:
        if item["sk"] == "PROFILE":
            lead = dataclasses.asdict(lead_from_item(item))
            leads[lead["lead_id"]] = {
                k: round(v, 6) if isinstance(v, float) else v for k, v in lead.items() if k not in LEAD_NOT_COMPARED
            }
        elif item["pk"].startswith("LEAD#"):
            event = event_from_item(item)
            events[(item["pk"], item["sk"])] = (event.kind, event.name, event.timestamp, json.dumps(event.properties))
        elif item["pk"].startswith("ID#"):
            identities[item["pk"]] = json.dumps(item, sort_keys=True, default=str)
    published = {(event["detail-type"], event["detail"]["event_id"]) for event in deployed.bus_events()}
    return {"leads": leads, "events": events, "identities": identities, "published": published}


def _reset(deployed) -> None:
    """An empty table, and a consumer instance that has stored nothing in it (one
    remembers what it stored, which holds as long as nobody empties the table)."""
    from nurture import wiring

    wiring.get_tracker.cache_clear()
    table = deployed.env["TABLE_NAME"]
    client = deployed.client("dynamodb")
    for page in client.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk, sk"):
        for item in page["Items"]:
            client.delete_item(TableName=table, Key=item)
    deployed.bus_events()


@pytest.fixture
def fixed_clock():
    previous = get_clock()
    set_clock(FixedClock(NOW))
    yield
    set_clock(previous)


def test_every_fault_on_the_track_path_ends_in_the_clean_state(deployed, fixed_clock):
    records = _scenario()
    rng = random.Random(12)
    duplicates = [record for record in records if rng.random() < 0.2] or [records[2]]

    # Given the clean run's end state and the AWS calls it makes (once warm: clients and keys cached)
    _deliver(records, duplicates)
    _reset(deployed)
    counting = FaultInjector()
    with counting.active():
        _deliver(records, duplicates)
    clean = _state(deployed)
    assert clean["published"] and len(clean["leads"]) >= 3
    total = len(counting.calls)

    # When each call in turn fails, before reaching DynamoDB/EventBridge or after succeeding
    tried, differences, missed = 0, [], []
    for mode in MODES:
        for position in range(1, total + 1):
            if mode == "after" and counting.calls[position - 1].split(".")[1].startswith(READS):
                continue  # a read failing after it was served changes nothing a read failing before does not
            _reset(deployed)
            injector = FaultInjector(fail_at=position, mode=mode)
            with injector.active():
                _deliver(records, duplicates)
            tried += injector.struck is not None
            if injector.struck is None:
                missed.append((mode, position, counting.calls[position - 1]))
            state = _state(deployed)
            for part in ("leads", "events", "identities", "published"):
                if state[part] != clean[part]:
                    differences.append((mode, position, injector.struck, part))

    # Then every run ends where the clean one did
    print(f"track path: {total} AWS calls, {tried} faults injected")
    writes = sum(1 for call in counting.calls if not call.split(".")[1].startswith(READS))
    assert (tried, missed) == (total + writes, [])
    assert differences == []
