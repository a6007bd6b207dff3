"""Sales hand-off over in-memory stores: a hot lead reaches sales once, with
context a rep can act on; its nurture stops; an SLA timer escalates an
unanswered hand-off; a rejected lead rests, then re-enters a recycle track."""

from __future__ import annotations

import pytest

from nurture.core.domain import Enrollment
from nurture.sales.handoff import SalesHandOff
from nurture.timelines.use_cases import Enroller
from tests.unit.builders import DAY
from tests.unit.sales_builders import HOT_AT, HOUR, FakeTimers, RecordingChannel, apply, make_hot, outcome


@pytest.fixture
def enroller(store, timelines, executions, config) -> Enroller:
    return Enroller(store, timelines, executions, config)


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
def timers() -> FakeTimers:
    return FakeTimers()


@pytest.fixture
def sales(store, timelines, enroller, channel, timers, publisher, config) -> SalesHandOff:
    return SalesHandOff(store, timelines, enroller, channel, timers, publisher, config)


def became_hot(publisher, lead_id: str) -> dict:
    (detail,) = [
        e["detail"] for e in publisher.entries if e["type"] == "lead.became_hot" and e["detail"]["lead_id"] == lead_id
    ]
    return detail


def published(publisher, detail_type: str) -> list[dict]:
    return [entry["detail"] for entry in publisher.entries if entry["type"] == detail_type]


@pytest.fixture
def hot_lead(tracker) -> str:
    return make_hot(tracker)


def test_the_hand_off_carries_what_a_rep_needs(sales, tracker, publisher, channel, hot_lead):
    # Given a hot lead, and a colleague at the same company who is engaged too
    colleague = make_hot(tracker, email="ben@globex.com", user_id="u-ben")

    # When its lead.became_hot event is handled
    sales.on_event("lead.became_hot", became_hot(publisher, hot_lead), HOT_AT)

    # Then sales gets one hand-off with fit and why, engagement and why, stage, activity, content, account
    ((subject, handoff),) = channel.alerts
    # (named by id, company, fit and engagement: the address stays in the body)
    assert subject == f"Hot lead for sales: lead {hot_lead}, Globex, fit A, engagement 60"
    assert handoff["email"] == "ana@globex.com"
    assert (handoff["type"], handoff["lead_id"], handoff["email"]) == ("handoff", hot_lead, "ana@globex.com")
    assert handoff["fit"]["grade"] == "A"
    assert {"target-industry", "decision-maker"} <= {reason["rule"] for reason in handoff["fit"]["reasons"]}
    top = handoff["engagement"]["top_reasons"]
    assert top[0]["rule"] == "roi-calculator" and 0 < len(top) <= 5
    assert handoff["engagement"]["score"] >= 55
    assert sum(row["points_now"] for row in top) == pytest.approx(handoff["engagement"]["score"], abs=0.01)
    assert handoff["buying_stage"] == "validation"
    assert [activity["name"] for activity in handoff["recent_activities"]][-3:] == [
        "ROI Calculator Completed",
        "page",
        "page",
    ]
    assert [c["id"] for c in handoff["content_consumed"]] == ["roi-calculator", "case-study-fintech", "pricing-page"]
    assert handoff["content_consumed"][1]["title"] == "How a fintech cut forecast error by 40%"
    committee = handoff["account"]["buying_committee"]
    assert [member["lead_id"] for member in committee] == [colleague]
    assert handoff["accept_by"] == "2025-03-03T14:00:00+00:00"  # 10:00 UTC + the 4-hour SLA


def test_a_redelivered_event_hands_off_once(sales, publisher, channel, hot_lead):
    # Given a hand-off already made
    event = became_hot(publisher, hot_lead)
    sales.on_event("lead.became_hot", event, HOT_AT)

    # When EventBridge delivers the same event again
    result = sales.on_event("lead.became_hot", event, HOT_AT + 5)

    # Then sales was told once
    assert result["outcome"] == "duplicate"
    assert len(channel.alerts) == 1
    assert len(published(publisher, "lead.handed_off")) == 1


def test_a_failed_delivery_is_retried_not_lost(sales, publisher, channel, hot_lead):
    # Given the CRM failing once
    channel.fail_next = 1
    event = became_hot(publisher, hot_lead)

    # When the event fails, and EventBridge retries it
    with pytest.raises(RuntimeError):
        sales.on_event("lead.became_hot", event, HOT_AT)
    sales.on_event("lead.became_hot", event, HOT_AT + 60)

    # Then the retry delivers the hand-off
    assert len(channel.alerts) == 1


def test_handing_off_stops_the_leads_nurture_timelines(sales, timelines, executions, publisher, hot_lead):
    # Given a nurture timeline still running for the lead
    timelines.create_enrollment(
        Enrollment("mql-revenue-teams-x-1", hot_lead, "mql-revenue-teams", 1, started_at=HOT_AT - DAY)
    )

    # When it is handed off
    sales.on_event("lead.became_hot", became_hot(publisher, hot_lead), HOT_AT)

    # Then the execution is stopped and the enrollment ended
    assert executions.stopped == {"mql-revenue-teams-x-1": "handed off to sales"}
    assert timelines.enrollments(hot_lead)[0].status == "exited"


def test_handing_off_sets_the_sla_timer(sales, timers, publisher, hot_lead):
    sales.on_event("lead.became_hot", became_hot(publisher, hot_lead), HOT_AT)

    ((at, payload),) = timers.named("sla-")
    assert at == HOT_AT + 4 * HOUR
    assert (payload["timer"], payload["lead_id"], payload["handed_off_at"]) == ("handoff_sla", hot_lead, HOT_AT)


def handed_off(sales, timers, publisher, lead_id) -> dict:
    sales.on_event("lead.became_hot", became_hot(publisher, lead_id), HOT_AT)
    ((_, payload),) = timers.named("sla-")
    return payload


def test_an_unanswered_hand_off_is_escalated_when_the_sla_passes(sales, timers, channel, publisher, hot_lead):
    # Given a hand-off nobody in sales answered
    timer = handed_off(sales, timers, publisher, hot_lead)

    # When its SLA timer fires
    result = sales.on_timer(timer, HOT_AT + 4 * HOUR)

    # Then it is escalated: lead.handoff_escalated, and sales is told again
    assert result["outcome"] == "escalated"
    (escalated,) = published(publisher, "lead.handoff_escalated")
    assert (escalated["lead_id"], escalated["hours_waiting"], escalated["sla_hours"]) == (hot_lead, 4.0, 4)
    assert channel.alerts[-1][1]["type"] == "handoff_escalation"


def test_an_accepted_hand_off_is_not_escalated(sales, tracker, timers, channel, publisher, config, hot_lead):
    # Given a hand-off sales accepted within the SLA
    timer = handed_off(sales, timers, publisher, hot_lead)
    apply(tracker, outcome(hot_lead, config, HOT_AT + HOUR, outcome="accepted"), at=HOT_AT + HOUR)

    # When the SLA timer fires
    result = sales.on_timer(timer, HOT_AT + 4 * HOUR)

    # Then nothing is escalated
    assert result["outcome"] == "answered"
    assert published(publisher, "lead.handoff_escalated") == []
    assert len(channel.alerts) == 1


def test_a_repeated_sla_timer_escalates_once(sales, timers, channel, publisher, hot_lead):
    timer = handed_off(sales, timers, publisher, hot_lead)

    sales.on_timer(timer, HOT_AT + 4 * HOUR)
    sales.on_timer(timer, HOT_AT + 4 * HOUR + 30)

    assert len(published(publisher, "lead.handoff_escalated")) == 1
    assert len(channel.alerts) == 2  # the hand-off and one escalation


def test_recycle_cool_down_then_re_enrollment(sales, tracker, enroller, timers, timelines, publisher, config, hot_lead):
    # Given a hot lead sales rejects as not ready
    rejected_at = HOT_AT + HOUR
    apply(tracker, outcome(hot_lead, config, rejected_at, outcome="rejected", reason="not_ready"), at=rejected_at)
    (to_recycled,) = [d for d in published(publisher, "lead.stage_changed") if d["to_stage"] == "recycled"]
    assert enroller.on_event("lead.stage_changed", to_recycled, rejected_at)[0].outcome != "enrolled"

    # When the stage change reaches the hand-off function
    sales.on_event("lead.stage_changed", to_recycled, rejected_at)

    # Then a cool-down timer is set for 30 days later, and nothing is enrolled yet
    ((at, timer),) = timers.named("recycle-")
    assert at == rejected_at + 30 * DAY
    assert timelines.enrollments(hot_lead) == []

    # When the timer fires, lead.recycled is published, and the enrollment function gets it
    sales.on_timer(timer, at)
    (recycled,) = published(publisher, "lead.recycled")
    (result,) = enroller.on_event("lead.recycled", recycled, at)

    # Then the lead is enrolled in the recycle track
    assert (result.outcome, recycled["reason"]) == ("enrolled", "not_ready")
    assert [e.track_id for e in timelines.enrollments(hot_lead)] == ["recycled"]


def test_a_lead_that_moved_on_during_its_cool_down_is_not_recycled(sales, tracker, timers, publisher, config, hot_lead):
    # Given a rejected lead with its cool-down timer set
    rejected_at = HOT_AT + HOUR
    apply(tracker, outcome(hot_lead, config, rejected_at, outcome="rejected", reason="bad_timing"), at=rejected_at)
    (to_recycled,) = [d for d in published(publisher, "lead.stage_changed") if d["to_stage"] == "recycled"]
    sales.on_event("lead.stage_changed", to_recycled, rejected_at)
    ((at, timer),) = timers.named("recycle-")

    # When sales opens an opportunity before the cool-down ends
    apply(tracker, outcome(hot_lead, config, rejected_at + DAY, outcome="opportunity_created"), at=rejected_at + DAY)
    sales.on_timer(timer, at)

    # Then no lead.recycled is published
    assert published(publisher, "lead.recycled") == []
