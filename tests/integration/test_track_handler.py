"""The track function under moto: SQS records in, leads and events in DynamoDB,
lifecycle events on the bus, failures reported per record."""

from __future__ import annotations

import json
import time

from nurture.store.repository import from_item
from tests.integration.conftest import ingest_record


def _identify(user, email, **traits):
    return {"type": "identify", "userId": user, "messageId": f"id-{user}-{email}", "traits": {"email": email, **traits}}


def _page(user, path, message_id):
    return {"type": "page", "userId": user, "messageId": message_id, "properties": {"path": path}}


def _items(deployed, pk_prefix=""):
    table = deployed.env["TABLE_NAME"]
    items = deployed.client("dynamodb").scan(TableName=table)["Items"]
    return [from_item(item) for item in items if item["pk"]["S"].startswith(pk_prefix)]


def test_events_are_stored_once_with_a_retention_ttl(deployed):
    from track.app import handler

    # Given two records carrying an identify and a pricing-page view
    records = [
        ingest_record(_identify("u1", "ana@globex.com", title="CMO")),
        ingest_record(_page("u1", "/pricing", "p-1")),
    ]

    # When the track function receives them
    handled_at = time.time()
    response = handler({"Records": records}, None)

    # Then nothing failed, both events are stored under the lead with a TTL
    assert response == {"batchItemFailures": []}
    events = [item for item in _items(deployed, "LEAD#") if item["sk"].startswith("EVT#")]
    assert sorted(e["sk"] for e in events) == ["EVT#id-u1-ana@globex.com", "EVT#p-1"]
    retention = int(deployed.env["EVENT_RETENTION_DAYS"]) * 86400
    assert all(abs(e["expires_at"] - (handled_at + retention)) < 60 for e in events)


def test_a_redelivered_record_changes_nothing(deployed):
    from track.app import handler

    # Given a record that was processed once
    record = ingest_record(_identify("u2", "bo@initech.com", title="VP Sales"), _page("u2", "/pricing", "p-2"))
    handler({"Records": [record]}, None)
    before = _items(deployed)

    # When SQS delivers the same record again
    response = handler({"Records": [record]}, None)

    # Then every item is exactly as it was
    assert response == {"batchItemFailures": []}
    assert _items(deployed) == before


def test_an_unreadable_record_is_reported_and_the_rest_are_applied(deployed):
    from track.app import handler

    # Given one corrupt record beside a good one
    good = ingest_record(_page("u3", "/pricing", "p-3"))
    bad = {**ingest_record(_page("u3", "/product", "p-4")), "messageId": "bad", "body": "{not json"}

    # When the batch is handled
    response = handler({"Records": [bad, good]}, None)

    # Then only the corrupt record is handed back to SQS for redelivery
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert any(item["sk"] == "EVT#p-3" for item in _items(deployed, "LEAD#"))


def test_crossing_warm_then_hot_publishes_each_event_once(deployed):
    from track.app import handler

    # Given an A-fit lead
    identify = _identify(
        "u4",
        "cy@umbrella-health.com",
        title="VP Marketing",
        industry="Healthcare Technology",
        employees=2500,
        country="US",
    )
    handler({"Records": [ingest_record(identify)]}, None)

    # When it views pricing and completes the ROI calculator (warm), then asks for a demo (hot),
    warm = ingest_record(
        _page("u4", "/pricing", "p-5"),
        {"type": "track", "userId": "u4", "event": "ROI Calculator Completed", "messageId": "t-1"},
    )
    hot = ingest_record({"type": "track", "userId": "u4", "event": "Trial Started", "messageId": "t-2"})
    for record in (warm, hot, warm, hot):  # and both batches are redelivered
        handler({"Records": [record]}, None)

    # Then the bus saw exactly one became_warm and one became_hot
    published = deployed.bus_events()
    types = [event["detail-type"] for event in published]
    assert types.count("lead.became_warm") == 1
    assert types.count("lead.became_hot") == 1
    became_hot = next(event for event in published if event["detail-type"] == "lead.became_hot")
    assert became_hot["source"] == "nurture"
    assert became_hot["detail"]["email"] == "cy@umbrella-health.com"
    assert became_hot["detail"]["to_stage"] == "hot"
    assert became_hot["detail"]["fit_grade"] == "A"


def _poison_record(user: str) -> dict:
    """A record the API would refuse today but an older API queued: an email longer
    than a DynamoDB key may be, so its identity cannot even be looked up."""
    record = ingest_record(_page(user, "/pricing", f"p-{user}"))
    body = json.loads(record["body"])
    body["events"][0]["em"] = "x" * 3000 + "@globex.com"
    return {**record, "messageId": "poison", "body": json.dumps(body)}


def test_one_poison_record_in_ten_fails_alone(deployed):
    from track.app import handler

    # Given an SQS batch of ten records, one of which the table cannot take
    records = [ingest_record(_page(f"u-{n}", "/pricing", f"p-u-{n}")) for n in range(9)]
    records.insert(3, _poison_record("u-bad"))

    # When the track function receives it
    response = handler({"Records": records}, None)

    # Then the nine good events are stored and only the poison record goes back to SQS
    # (and, after the queue's receive count, to its dead-letter queue)
    assert response == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    stored = {item["sk"] for item in _items(deployed, "LEAD#") if item["sk"].startswith("EVT#")}
    assert {f"EVT#p-u-{n}" for n in range(9)} <= stored


def test_devices_beyond_the_listed_fifty_are_items_that_erasure_removes(deployed):
    from track.app import handler

    from nurture import wiring

    # Given a person who identified on 55 devices, each after a visit
    handler({"Records": [ingest_record(_identify("u-many", "mo@globex.com"))]}, None)
    for n in range(55):
        visit = {"type": "page", "anonymousId": f"dev-{n}", "messageId": f"v-{n}", "properties": {"path": "/blog/a"}}
        known = {
            "type": "identify",
            "anonymousId": f"dev-{n}",
            "messageId": f"i-{n}",
            "traits": {"email": "mo@globex.com"},
        }
        assert handler({"Records": [ingest_record(visit)]}, None) == {"batchItemFailures": []}
        assert handler({"Records": [ingest_record(known)]}, None) == {"batchItemFailures": []}

    # Then her lead lists 50 devices and the table holds the other five as items of their own
    store = wiring.get_store()
    (lead_id,) = store.lookup_identities(["email#mo@globex.com"]).values()
    lead = store.get_leads([lead_id])[lead_id]
    assert len(lead.aliases) == 50
    assert len(store.aliases_of(lead_id)) == 5

    # ... and erasing her leaves no device's history or identity behind
    wiring.get_eraser().erase("mo@globex.com", time.time())
    left = {item["pk"] for item in _items(deployed) if not item["pk"].startswith(("ERASED#", "SWEEP#"))}
    assert left == set()


def test_the_happy_path_makes_no_write_that_fails_its_condition(deployed):
    from unittest import mock

    from botocore.client import BaseClient
    from track.app import handler

    # Given every AWS call recorded with its outcome
    failed, original = [], BaseClient._make_api_call

    def recording(client, operation, params):
        try:
            return original(client, operation, params)
        except Exception as exc:
            failed.append((operation, type(exc).__name__))
            raise

    # When a lead is identified, becomes warm, then hot (publishing and clearing its outbox each time)
    with mock.patch.object(BaseClient, "_make_api_call", recording):
        handler({"Records": [ingest_record(_identify("u-happy", "hap@umbrella-health.com", title="CMO"))]}, None)
        calls = [
            _page("u-happy", "/pricing", "h-1"),
            {"type": "track", "userId": "u-happy", "event": "ROI Calculator Completed", "messageId": "h-2"},
            {"type": "track", "userId": "u-happy", "event": "Trial Started", "messageId": "h-3"},
        ]
        for call in calls:
            assert handler({"Records": [ingest_record(call)]}, None) == {"batchItemFailures": []}

    # Then no request failed: no conditional write was sent that could not hold
    assert failed == []
