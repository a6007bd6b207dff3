"""SES event publishing records, delivered as EventBridge events, through the
SES feedback function under moto: the SES developer guide's example records
have their documented effect."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nurture import wiring
from tests.conftest import EVENTS_DIR
from tests.integration.conftest import ingest_record

RECIPIENT = "recipient@example.com"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _guide_record(name: str) -> dict:
    """The SES guide's example record, sent two minutes ago (the open or click a minute later)."""
    event = copy.deepcopy(json.loads(Path(EVENTS_DIR / "ses" / f"{name}.json").read_text()))
    now = time.time()
    event["detail"]["mail"]["timestamp"] = _iso(now - 120)
    details = event["detail"].get(name)
    if isinstance(details, dict) and "timestamp" in details:
        details["timestamp"] = _iso(now - 60)
    return event


def _known_lead(deployed) -> str:
    from track.app import handler

    identify = {
        "type": "identify",
        "userId": "u-ses",
        "messageId": "id-ses",
        "traits": {"email": RECIPIENT, "title": "VP Marketing"},
    }
    handler({"Records": [ingest_record(identify)]}, None)
    (lead_id,) = wiring.get_store().lookup_identities([f"email#{RECIPIENT}"]).values()
    return lead_id


def _lead(lead_id):
    return wiring.get_store().get_leads([lead_id], consistent=True)[lead_id]


def _engagement(lead_id) -> float:
    from nurture.scoring.scores import engagement_at

    return engagement_at(_lead(lead_id), time.time(), wiring.get_config())


@pytest.mark.parametrize(("record", "consent"), [("bounce", "bounced"), ("complaint", "complained")])
def test_a_bounce_or_complaint_suppresses_the_address_for_good(deployed, record, consent):
    from ses_events.app import handler

    # Given a known, subscribed lead
    lead_id = _known_lead(deployed)

    # When SES publishes the guide's record for it
    handler(_guide_record(record), None)

    # Then the lead is suppressed, and a later subscription change cannot undo it
    assert _lead(lead_id).consent == consent
    handler(_guide_record("open"), None)
    assert _lead(lead_id).consent == consent


@pytest.mark.parametrize("record", ["open", "click"])
def test_a_human_open_or_click_raises_engagement_once(deployed, record):
    from ses_events.app import handler

    # Given a known lead with no engagement
    lead_id = _known_lead(deployed)
    before = _engagement(lead_id)

    # When the guide's record arrives, and SES/EventBridge delivers it again
    event = _guide_record(record)
    handler(event, None)
    handler(event, None)

    # Then engagement rose by the rule's points, once
    points = {"open": 1, "click": 4}[record]
    assert _engagement(lead_id) - before == pytest.approx(points, abs=0.01)


def test_a_scanner_click_is_recorded_but_not_scored(deployed):
    from ses_events.app import handler

    # Given a known lead
    lead_id = _known_lead(deployed)
    before = _engagement(lead_id)

    # When a security scanner's click arrives
    event = _guide_record("click")
    event["detail"]["click"]["userAgent"] = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"

    handler(event, None)

    # Then engagement is unchanged but the machine click is stored
    assert _engagement(lead_id) == pytest.approx(before)
    names = [e.name for e in wiring.get_store().lead_events(lead_id)]
    assert "Email Link Clicked (machine)" in names
