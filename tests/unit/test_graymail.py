"""Graymail sunset at the last gate before SES: HubSpot's rule (11 unengaged
sends for a lead that never engaged, 16 since the last open or click), the
configured action, and an open or click lifting the sunset."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from nurture.core.domain import Touch
from nurture.ingest.consumer import Tracker
from nurture.sweeps.scheduled import due_index_function
from nurture.timelines.decisions import DAY
from nurture.timelines.use_cases import TouchSender
from tests.conftest import PROJECT_DIR
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore
from tests.unit.builders import RETENTION, RecordingPublisher, identify, track, tracking_events
from tests.unit.timeline_builders import COMPANY, MONDAY, RecordingSender, UnsubscribeKey, a_lead, june

NOW = june(MONDAY, 10)
LEAD = "lead-gray"


@pytest.fixture
def leads(config) -> InMemoryLeadStore:
    return InMemoryLeadStore(due=due_index_function(config))


@pytest.fixture
def timelines() -> InMemoryTimelineStore:
    return InMemoryTimelineStore()


@pytest.fixture
def ses() -> RecordingSender:
    return RecordingSender()


def sender(leads, timelines, config, ses, publisher, action: str = "reactivation") -> TouchSender:
    graymail = dataclasses.replace(config.sweeps.graymail, action=action)
    config = dataclasses.replace(config, sweeps=dataclasses.replace(config.sweeps, graymail=graymail))
    return TouchSender(leads, timelines, config, COMPANY, ses, UnsubscribeKey(), publisher)


def given_lead(leads, **overrides) -> None:
    leads.save_lead(a_lead(LEAD, **overrides), 0)


def given_sent(timelines, count: int, start: float = NOW - 60 * DAY) -> None:
    """`count` marketing emails sent to the lead, a few days apart, before NOW."""
    for n in range(count):
        touch = Touch(LEAD, f"mql-everyone-else-{LEAD}-{n}", "mql-everyone-else", "intro", "email", start + n * 3 * DAY)
        touch.status = "sent"
        timelines.claim_touch(touch)


def email(track_id: str = "mql-everyone-else", n: int = 99) -> dict:
    return {
        "enrollment_id": f"{track_id}-{LEAD}-{n}",
        "lead_id": LEAD,
        "track_id": track_id,
        "step_id": "intro",
        "channel": "email",
        "content_id": "wp-revenue-analytics-guide",
        "decided_at": NOW,
    }


def test_a_lead_that_never_engaged_gets_its_eleventh_marketing_email(leads, timelines, config, ses, publisher):
    # Given a lead that never opened or clicked, with 10 marketing emails sent
    given_lead(leads)
    given_sent(timelines, 10)

    # When the next marketing email is due
    result = sender(leads, timelines, config, ses, publisher).send(email(), NOW)

    # Then it goes
    assert result["sent"] is True


def test_after_eleven_unengaged_sends_a_lead_that_never_engaged_is_sunset(leads, timelines, config, ses, publisher):
    # Given a lead that never opened or clicked, with 11 marketing emails sent
    given_lead(leads)
    given_sent(timelines, 11)

    # When the next marketing email is due
    result = sender(leads, timelines, config, ses, publisher).send(email(), NOW)

    # Then nothing is sent, the lead is sunset, and lead.sunset and lead.dormant (graymail) are published
    assert result == {"sent": False, "reason": "graymail sunset"}
    assert ses.sent == []
    lead = leads.get_leads([LEAD])[LEAD]
    assert lead.sunset == {"at": NOW, "action": "reactivation", "sends": 11}
    assert lead.outbox == []
    assert [(e["type"], e["detail"].get("reason")) for e in publisher.entries] == [
        ("lead.sunset", None),
        ("lead.dormant", "graymail"),
    ]
    schema = json.loads((PROJECT_DIR / "infra/events/lead-sweeps.schema.json").read_text())
    for entry in publisher.entries:
        jsonschema.validate(entry["detail"], schema)


def test_a_lead_that_engaged_before_is_sunset_only_after_sixteen_sends_since(leads, timelines, config, ses, publisher):
    # Given a lead that opened an email 70 days ago, with 15 marketing emails sent since
    given_lead(leads, email_engaged_at=NOW - 70 * DAY)
    given_sent(timelines, 15)
    touch_sender = sender(leads, timelines, config, ses, publisher)

    # When the 16th and then the 17th marketing emails are due
    sixteenth = touch_sender.send(email(n=16), NOW)
    seventeenth = touch_sender.send(email(n=17), NOW + DAY)

    # Then the 16th goes and the 17th does not
    assert sixteenth["sent"] is True
    assert seventeenth == {"sent": False, "reason": "graymail sunset"}


def test_a_sunset_lead_still_gets_the_reactivation_track_when_that_is_the_action(
    leads, timelines, config, ses, publisher
):
    # Given a lead sunset by the graymail rule, with the reactivation action
    given_lead(leads, sunset={"at": NOW - DAY, "action": "reactivation", "sends": 11})

    # When the reactivation track's email and another track's email are due
    reactivation = sender(leads, timelines, config, ses, publisher).send(email("reactivation"), NOW)
    other = sender(leads, timelines, config, ses, publisher).send(email("mql-everyone-else"), NOW)

    # Then only the reactivation email goes
    assert reactivation["sent"] is True
    assert other == {"sent": False, "reason": "graymail sunset"}


def test_with_the_suppress_action_a_sunset_lead_gets_no_marketing_email_at_all(
    leads, timelines, config, ses, publisher
):
    # Given a lead with 11 unengaged sends, and graymail configured to suppress
    given_lead(leads)
    given_sent(timelines, 11)
    touch_sender = sender(leads, timelines, config, ses, publisher, action="suppress")

    # When a marketing email and then a reactivation email are due
    touch_sender.send(email(), NOW)
    reactivation = touch_sender.send(email("reactivation"), NOW)

    # Then neither goes, and only lead.sunset is published (no reactivation)
    assert reactivation == {"sent": False, "reason": "graymail sunset"}
    assert ses.sent == []
    assert [e["type"] for e in publisher.entries] == ["lead.sunset"]


def test_a_human_open_lifts_the_sunset(leads, timelines, config, ses, publisher):
    # Given a lead sunset five days ago, with graymail configured to suppress
    tracker = Tracker(leads, RecordingPublisher(), config, RETENTION)
    tracker.process(
        [("r1", tracking_events(identify("gray@globex.com", user_id="gray", at=T_SUNSET), received_at=T_SUNSET))],
        T_SUNSET,
    )
    (lead_id,) = leads.lookup_identities(["user#gray"]).values()
    lead = leads.get_leads([lead_id])[lead_id]
    lead.sunset = {"at": T_SUNSET, "action": "suppress", "sends": 11}
    leads.save_lead(lead, lead.version)

    # When the lead opens an email (the tracking event SES feedback makes of a human open)
    tracker.process(
        [("r2", tracking_events(track("Email Opened", user_id="gray", at=T_SUNSET + DAY), received_at=NOW))], NOW
    )

    # Then marketing email goes to it again
    state = {**email(), "lead_id": lead_id, "enrollment_id": f"mql-everyone-else-{lead_id}-1"}
    result = sender(leads, timelines, config, ses, publisher, action="suppress").send(state, NOW)
    assert result["sent"] is True


T_SUNSET = NOW - 5 * DAY
