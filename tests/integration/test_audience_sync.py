"""Audience sync under moto with the ad platforms faked locally: a timeline's
retargeting hand-off adds the lead's hash; unsubscribing removes it from every
audience on every platform."""

from __future__ import annotations

import json
import time

import pytest

from nurture import wiring
from nurture.channels.audience_sync import AudienceSyncer
from nurture.channels.audiences import sha256_hex
from nurture.config.audiences import load_audiences
from tests.conftest import CONFIG_DIR
from tests.integration.conftest import warm_revops_lead
from tests.unit.fake_ad_platforms import (
    adapters_to,
    revenue_team_platforms,
)

EMAIL = "lee@acme-insure.com"


TOKEN = "integration-token"


@pytest.fixture
def fakes():
    with revenue_team_platforms(TOKEN) as platforms:
        yield platforms


@pytest.fixture
def sync_handler(deployed, fakes, monkeypatch):
    """The real function, its syncer pointed at the fake platforms."""
    import audience_sync.app as app

    audiences = {"nurture-revenue-teams": load_audiences(CONFIG_DIR)["nurture-revenue-teams"]}
    syncer = AudienceSyncer(
        wiring.get_store(), audiences, adapters_to(fakes, TOKEN), wiring.get_audience_members(), time.time
    )
    monkeypatch.setattr(app, "get_audience_syncer", lambda: syncer)
    return app.handler


def _warm_revops_lead() -> str:
    return warm_revops_lead("u-aud", EMAIL)


def test_a_hand_off_adds_and_unsubscribing_removes_the_lead_everywhere(deployed, fakes, sync_handler):
    from nurture.channels.consent import unsubscribe

    # Given a warm RevOps lead handed off by a timeline's retargeting step
    lead_id = _warm_revops_lead()
    touch = {"lead_id": lead_id, "audience": "nurture-revenue-teams", "step_id": "retarget-platform"}
    assert sync_handler({"Records": [{"messageId": "h1", "body": json.dumps(touch)}]}, None) == {
        "batchItemFailures": []
    }
    assert all(len(fake.members) == 1 for fake in fakes.values())
    assert {sha256_hex(EMAIL)} == set(fakes["linkedin"].members)

    # When the lead unsubscribes and the bus delivers lead.unsubscribed to audience sync
    deployed.bus_events()
    unsubscribe(wiring.get_store(), wiring.get_publisher(), lead_id, time.time())
    for event in deployed.bus_events():
        sync_handler(event, None)

    # Then its hashed identifier is gone from every platform's audience
    assert all(fake.members == set() for fake in fakes.values())


def test_the_scheduled_reconciliation_removes_a_member_the_events_missed(deployed, fakes, sync_handler):
    from nurture.store.repository import DynamoLeadStore

    # Given a lead handed off to the audience, then unsubscribed with its event lost on the way
    lead_id = _warm_revops_lead()
    touch = {"lead_id": lead_id, "audience": "nurture-revenue-teams", "step_id": "retarget-platform"}
    sync_handler({"Records": [{"messageId": "h1", "body": json.dumps(touch)}]}, None)
    store: DynamoLeadStore = wiring.get_store()
    assert store.set_consent(lead_id, "unsubscribed", time.time())

    # When the daily schedule invokes audience sync with its reconciliation input
    summary = sync_handler({"reconcile": "audiences"}, None)

    # Then every platform dropped the hash and the membership table holds nobody
    assert all(fake.members == set() for fake in fakes.values())
    assert summary["removed"] == {f"nurture-revenue-teams/{p}": 1 for p in ("meta", "google", "linkedin")}
    table = deployed.env["TABLE_NAME"]
    members = deployed.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "AUDIENCE#nurture-revenue-teams"}},
    )["Items"]
    assert members == []


def test_an_erased_lead_leaves_every_platform_and_only_its_tombstone_stays(deployed, fakes, sync_handler):
    # Given a warm lead a timeline handed to a retargeting audience on every platform
    lead_id = _warm_revops_lead()
    touch = {"lead_id": lead_id, "audience": "nurture-revenue-teams", "step_id": "retarget-platform"}
    sync_handler({"Records": [{"messageId": "h1", "body": json.dumps(touch)}]}, None)
    assert all(len(fake.members) == 1 for fake in fakes.values())

    # When it is erased, and audience sync consumes the removal the erasure queued
    wiring.get_eraser().erase(lead_id, time.time())
    sqs = deployed.client("sqs")
    messages = sqs.receive_message(QueueUrl=deployed.env["AUDIENCE_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]
    assert sync_handler({"Records": records}, None) == {"batchItemFailures": []}

    # Then no platform holds the lead, and the table holds nothing but tombstones (no membership rows either)
    assert all(fake.members == set() for fake in fakes.values())
    items = deployed.client("dynamodb").scan(TableName=deployed.env["TABLE_NAME"])["Items"]
    assert {item["sk"]["S"] for item in items} == {"TOMBSTONE"}
