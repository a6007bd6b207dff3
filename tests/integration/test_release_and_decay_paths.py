"""Paths the other integration tests do not reach, each through its real
handler under moto: the lead view's account, a delivery or a send that fails
and is released for the retry, the graymail sunset and a decay demotion.
They are also the scenarios that prove those paths' AWS calls are granted
(tests/integration/test_iam_policies.py)."""

from __future__ import annotations

import json
import time

import pytest

from nurture import wiring
from nurture.core.clock import FixedClock, SystemClock, set_clock
from nurture.core.domain import Lead, Touch
from nurture_tools.local.apigw import lambda_context
from nurture_tools.local.template import LocalStack
from tests.conftest import PROJECT_DIR
from tests.integration.conftest import ADMIN_KEY, warm_revops_lead
from tests.integration.timeline_harness import deliver_touch

DAY = 86400.0
TRACK = "mql-revenue-teams"


def _function(deployed, logical_id: str):
    """A handler loaded from its CodeUri as Lambda loads it."""
    return LocalStack(PROJECT_DIR, deployed.session, prefix="test").functions()[logical_id].load()


def _sales_topic_down(deployed) -> str:
    """The sales topic deleted (deliveries to it fail); returns its name to bring it back."""
    sns = deployed.client("sns")
    arn = deployed.env["SALES_ALERTS_TOPIC_ARN"]
    sns.delete_topic(TopicArn=arn)
    return arn.rsplit(":", 1)[1]


def _sales_topic_up(deployed, name: str) -> None:
    deployed.client("sns").create_topic(Name=name)  # same name, same ARN


def _claims(lead_id: str) -> list[Touch]:
    return wiring.get_timeline_store().touches(lead_id)


def test_the_lead_view_shows_the_other_contacts_of_its_account(deployed):
    from api.app import handler
    from werkzeug.test import Client

    from nurture_tools.local.apigw import ApiGateway

    # Given two warm leads of the same company
    warm_revops_lead("u-ana", "ana@northwind-insurance.com")
    ben = warm_revops_lead("u-ben", "ben@northwind-insurance.com")
    routes = LocalStack(PROJECT_DIR, deployed.session, prefix="routes").api_routes("ApiFunction")

    # When sales looks up one of them
    response = Client(ApiGateway(routes, handler)).get(
        "/v1/leads/ana@northwind-insurance.com", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )

    # Then the view has their account, with the other lead in its buying committee
    assert response.status_code == 200
    account = response.get_json()["account"]
    assert account["domain"] == "northwind-insurance.com" and account["contacts"] == 2
    assert ben in {member["lead_id"] for member in account["buying_committee"]}


def test_a_call_task_whose_delivery_fails_is_released_and_delivered_by_the_retry(deployed):
    from sales_tasks.app import handler

    # Given a sales-call step for a warm lead, and the sales topic unreachable
    lead_id = warm_revops_lead("u-call", "cara@northwind-insurance.com")
    step = {"enrollment_id": f"{TRACK}-{lead_id}-1", "lead_id": lead_id, "track_id": TRACK}
    step |= {"step_id": "sales-check-in", "channel": "sales_call", "note": "Offer a forecast health check"}
    record = {"messageId": "s1", "body": json.dumps(step)}
    topic = _sales_topic_down(deployed)

    # When the task is delivered, fails, and SQS redelivers it once the topic is back
    failed = handler({"Records": [record]}, None)
    claims_after_failure = _claims(lead_id)
    _sales_topic_up(deployed, topic)
    retried = handler({"Records": [record]}, None)

    # Then the failure is reported for SQS's retry, its claim was released,
    # and the retry delivers the task once
    assert failed == {"batchItemFailures": [{"itemIdentifier": "s1"}]}
    assert claims_after_failure == []
    assert retried == {"batchItemFailures": []}
    assert [(t.step_id, t.status) for t in _claims(lead_id)] == [("sales-check-in.task", "sent")]

    # ... and a duplicate delivery afterwards finds it delivered and changes nothing
    assert handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert [(t.step_id, t.status) for t in _claims(lead_id)] == [("sales-check-in.task", "sent")]


def test_a_demo_request_alert_that_fails_is_released_and_sent_by_the_retry(deployed):
    # Given a demo request of a warm lead, and the sales topic unreachable
    handler = _function(deployed, "ResponsesFunction")
    lead_id = warm_revops_lead("u-demo", "dana@northwind-insurance.com")
    detail = {"lead_id": lead_id, "form_source": "demo-request", "message_id": "f-1", "event_id": "e-f-1"}
    event = {"detail-type": "lead.form_submitted", "detail": detail}
    topic = _sales_topic_down(deployed)

    # When the response fails, and EventBridge retries it once the topic is back
    with pytest.raises(Exception):  # noqa: B017 - whatever SNS raised: the invocation fails
        handler(event, None)
    alerts_after_failure = [t for t in _claims(lead_id) if t.channel != "email"]
    _sales_topic_up(deployed, topic)
    retried = handler(event, None)

    # Then the failed alert left no claim behind, and the retry alerts sales
    assert alerts_after_failure == []
    assert retried["alerted"] is True
    assert [t.status for t in _claims(lead_id) if t.channel != "email"] == ["sent"]


def test_an_escalation_that_fails_is_released_and_sent_by_the_timers_retry(deployed):
    from handoff.app import handler
    from sales_timers.app import handler as timer

    from tests.integration.test_sales import hot_lead, schedules

    # Given a hand-off sales has not answered, and the sales topic unreachable when its SLA timer fires
    lead_id, hot = hot_lead(deployed)
    handler(hot, None)
    ((schedule),) = schedules(deployed).values()
    fired = json.loads(schedule["Target"]["Input"])
    topic = _sales_topic_down(deployed)

    # When the timer fails, and Lambda retries it once the topic is back
    with pytest.raises(Exception):  # noqa: B017 - whatever SNS raised: the invocation fails
        timer(fired, None)
    escalations_after_failure = [t for t in _claims(lead_id) if "escalat" in t.step_id]
    _sales_topic_up(deployed, topic)
    retried = timer(fired, None)

    # Then the failed escalation left no claim behind, and the retry escalates
    assert escalations_after_failure == []
    assert retried["outcome"] == "escalated"
    assert [t.status for t in _claims(lead_id) if "escalat" in t.step_id] == ["sent"]

    # ... and the timer firing again escalates nothing more
    assert timer(fired, None)["outcome"] == "duplicate"


def test_an_email_ses_rejects_is_released_for_the_retry(deployed):
    # Given a marketing touch for a warm lead, and a sender SES does not accept
    handler = _function(deployed, "AdvanceFunction")
    lead_id = warm_revops_lead("u-rejected", "erin@northwind-insurance.com")
    sesv2 = deployed.client("sesv2")
    sender = deployed.env["SENDER_EMAIL"]
    sesv2.delete_email_identity(EmailIdentity=sender)
    touch = {
        "lead_id": lead_id,
        "enrollment_id": f"{TRACK}-{lead_id}-1",
        "track_id": TRACK,
        "step_id": "guide",
        "content_id": "wp-revenue-analytics-guide",
        "subject": "The revenue analytics buyer's guide",
        "decided_at": time.time(),
    }

    # When SES rejects the send, and the step is retried once the sender is verified
    from nurture.channels.email import EmailRejectedError

    with pytest.raises(EmailRejectedError):
        deliver_touch(handler, touch)
    claims_after_rejection = _claims(lead_id)
    sesv2.create_email_identity(EmailIdentity=sender)
    retried = deliver_touch(handler, touch, attempt=1)

    # Then the rejected touch was released (claim and send log), and the retry sends it
    assert claims_after_rejection == []
    assert retried["delivery"] == "sent"
    assert [(t.step_id, t.status) for t in _claims(lead_id)] == [("guide", "sent")]


def test_a_lead_that_never_engages_is_sunset_by_graymail_instead_of_emailed(deployed):
    # Given a lead that received as many marketing emails as the graymail rule
    # allows without ever opening or clicking one
    handler = _function(deployed, "AdvanceFunction")
    lead_id = warm_revops_lead("u-gray", "gus@northwind-insurance.com")
    rule = wiring.get_config().sweeps.graymail
    now = time.time()
    for n in range(rule.never_engaged_sends):
        sent = Touch(lead_id, f"{TRACK}-{lead_id}-1", TRACK, f"old-{n}", "email", now - (n + 1) * DAY)
        sent.status, sent.klass, sent.content_id = "sent", "marketing", f"old-{n}"
        wiring.get_timeline_store().update_touch(sent)
    deployed.bus_events()
    touch = {
        "lead_id": lead_id,
        "enrollment_id": f"{TRACK}-{lead_id}-1",
        "track_id": TRACK,
        "step_id": "guide",
        "content_id": "wp-revenue-analytics-guide",
        "decided_at": now,
    }

    # When the next marketing email is due
    result = deliver_touch(handler, touch)

    # Then it is not sent: the lead is sunset, lead.sunset is published and the outbox is clear
    assert result["delivery"] == "skipped: graymail sunset"
    assert "lead.sunset" in [event["detail-type"] for event in deployed.bus_events()]
    lead = wiring.get_store().get_leads([lead_id], consistent=True)[lead_id]
    assert lead.sunset and lead.outbox == []


def test_a_warm_lead_whose_engagement_decayed_is_demoted_with_its_move_in_its_history(deployed):
    # Given a warm lead last engaged 200 days ago, stored as the product stores it
    now = 1_780_000_000.0
    lead = Lead(lead_id="p-decayed", email="dora@northwind-insurance.com", fit_grade="B", created_at=now - 400 * DAY)
    lead.lifecycle, lead.lifecycle_at, lead.last_seen_at = "warm", now - 200 * DAY, now - 200 * DAY
    lead.engagement, lead.engagement_at = 60.0, now - 200 * DAY
    wiring.get_store().save_lead(lead, 0)

    # When the daily sweep runs
    from sweeps.app import handler

    set_clock(FixedClock(now))
    try:
        result = handler({"sweep": "due"}, lambda_context("SweepFunction"))
    finally:
        set_clock(SystemClock())

    # Then the lead is demoted, and its lifecycle history records the move
    assert result["demoted"] == 1
    stored = wiring.get_store().get_leads(["p-decayed"], consistent=True)["p-decayed"]
    assert stored.lifecycle != "warm" and stored.demoted_from == "warm"
    moves = [e for e in wiring.get_store().lead_events("p-decayed") if e.kind == "lifecycle"]
    assert moves, "the demotion left no move in the lead's history"
