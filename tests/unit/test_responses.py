"""Timely responses to forms: the acknowledgement and the sales alert."""

from __future__ import annotations

import pytest

from nurture.channels.form_responses import Responder
from nurture.core.domain import Lead
from nurture.timelines.use_cases import TouchSender
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore
from tests.unit.timeline_builders import COMPANY, RecordingSender, UnsubscribeKey

NOW = 1_780_000_000.0


class RecordingAlerts:
    def __init__(self) -> None:
        self.alerts: list[dict] = []

    def alert(self, subject, payload):
        self.alerts.append(payload)
        return f"alert-{len(self.alerts)}"


@pytest.fixture
def world(config):
    leads, timelines, ses, alerts = InMemoryLeadStore(), InMemoryTimelineStore(), RecordingSender(), RecordingAlerts()
    responder = Responder(
        leads, timelines, TouchSender(leads, timelines, config, COMPANY, ses, UnsubscribeKey()), alerts, config
    )
    return leads, timelines, ses, alerts, responder


def _lead(leads, consent="subscribed") -> Lead:
    lead = Lead(
        "lead-rita",
        email="rita@wayne-fintech.com",
        consent=consent,
        profile={"title": "VP Sales", "first_name": "Rita"},
        fit_grade="A",
    )
    leads.save_lead(lead, 0)
    return lead


def _demo(asset_id=None, source="demo-request"):
    return {"lead_id": "lead-rita", "form_source": source, "message_id": "form-demo-request-s1", "asset_id": asset_id}


def test_a_demo_request_is_acknowledged_and_sales_alerted_once(world):
    leads, timelines, ses, alerts, responder = world
    # Given a known lead
    _lead(leads)

    # When its demo request is answered, and the event arrives again
    first = responder.on_form(_demo(), NOW)
    second = responder.on_form(_demo(), NOW + 5)

    # Then one acknowledgement (transactional, the product tour) and one alert
    assert (first["acknowledged"], first["alerted"]) == (True, True)
    assert (second["acknowledged"], second["alerted"]) == (False, False)
    assert len(ses.sent) == 1 and len(alerts.alerts) == 1
    (ack,) = [t for t in timelines.touches("lead-rita") if t.step_id == "acknowledgement"]
    assert (ack.klass, ack.content_id) == ("transactional", "product-tour")
    assert alerts.alerts[0]["type"] == "demo_request" and alerts.alerts[0]["title"] == "VP Sales"


def test_a_sales_alert_that_failed_is_made_when_the_event_is_retried(world):
    leads, timelines, ses, alerts, responder = world
    # Given a known lead, and the alert channel failing once
    _lead(leads)
    deliver = alerts.alert

    def down(subject, payload):
        raise ConnectionError("SNS unreachable")

    alerts.alert = down

    # When its demo request is answered, fails, and the event is delivered again
    with pytest.raises(ConnectionError):
        responder.on_form(_demo(), NOW)
    alerts.alert = deliver
    retried = responder.on_form(_demo(), NOW + 5)

    # Then sales is alerted on the retry (the failed attempt did not use up the alert), once
    assert retried["alerted"] is True
    assert len(alerts.alerts) == 1
    assert len(ses.sent) == 1  # the acknowledgement went out once, on the first attempt


def test_an_unsubscribed_lead_still_gets_what_it_asked_for(world):
    leads, _, ses, _, responder = world
    _lead(leads, consent="unsubscribed")

    result = responder.on_form(_demo(source="content-download"), NOW)

    assert result["acknowledged"] and len(ses.sent) == 1


@pytest.mark.parametrize("consent", ["bounced", "complained"])
def test_a_suppressed_address_gets_no_acknowledgement(world, consent):
    leads, _, ses, _, responder = world
    _lead(leads, consent=consent)

    result = responder.on_form(_demo(source="content-download"), NOW)

    assert not result["acknowledged"] and ses.sent == []


def test_the_acknowledgement_carries_the_asset_the_lead_asked_for(world):
    leads, timelines, _, _, responder = world
    _lead(leads)

    responder.on_form(_demo(asset_id="security-whitepaper", source="content-download"), NOW)

    (ack,) = timelines.touches("lead-rita")
    assert ack.content_id == "security-whitepaper"


def test_an_acknowledgement_does_not_count_against_the_marketing_cap(world, config):
    from nurture.timelines.decisions import frequency_clear_at

    leads, timelines, _, _, responder = world
    _lead(leads)
    responder.on_form(_demo(source="content-download"), NOW)

    marketing = [t.at for t in timelines.touches("lead-rita") if t.klass == "marketing" and t.channel == "email"]
    assert frequency_clear_at(NOW, marketing, config.policy) == NOW
