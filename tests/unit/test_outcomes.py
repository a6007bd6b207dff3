"""Sales outcomes, applied by the track use case in its one lead write: each
moves the lifecycle (backwards too) with its reason code and time kept."""

from __future__ import annotations

import pytest

from nurture.core.errors import ValidationError
from nurture.sales.outcomes import outcome_event
from nurture.scoring.scores import engagement_at
from tests.unit.builders import DAY, T0, identify, lead_count, track, tracking_events
from tests.unit.sales_builders import HOT_AT, apply, make_hot, outcome

LATER = HOT_AT + 2 * 3600.0


def stored(store, lead_id):
    return store.get_leads([lead_id])[lead_id]


def stage_history(store, lead_id) -> list[tuple[str, str, str]]:
    moves = sorted((e for e in store.lead_events(lead_id) if e.kind == "lifecycle"), key=lambda e: e.timestamp)
    return [(e.properties["from"], e.properties["to"], e.properties["reason"]) for e in moves]


def published(publisher, detail_type: str) -> list[dict]:
    return [entry["detail"] for entry in publisher.entries if entry["type"] == detail_type]


def test_accepting_keeps_the_lead_hot_and_records_when(tracker, store, publisher, config):
    # Given a hot lead
    lead_id = make_hot(tracker)

    # When sales accepts it
    apply(tracker, outcome(lead_id, config, LATER, outcome="accepted", rep="sam@vendor.com"), at=LATER)

    # Then it stays hot, the acceptance time is kept and lead.sales_accepted is published
    lead = stored(store, lead_id)
    assert (lead.lifecycle, lead.sales["accepted_at"]) == ("hot", LATER)
    (accepted,) = published(publisher, "lead.sales_accepted")
    assert accepted["rep"] == "sam@vendor.com" and accepted["lead_id"] == lead_id


def test_rejecting_recycles_with_the_reason_and_halves_engagement(tracker, store, publisher, config):
    # Given a hot lead and its engagement just before the rejection
    lead_id = make_hot(tracker)
    before = engagement_at(stored(store, lead_id), LATER, config)

    # When sales rejects it as not ready (configured to halve engagement)
    apply(tracker, outcome(lead_id, config, LATER, outcome="rejected", reason="not_ready"), at=LATER)

    # Then it is recycled, with the reason, half its engagement, and a 30-day cool-down
    lead = stored(store, lead_id)
    assert (lead.lifecycle, lead.lifecycle_reason) == ("recycled", "rejected by sales: not_ready")
    assert engagement_at(lead, LATER, config) == pytest.approx(before / 2, abs=0.01)
    assert lead.sales["recycle_at"] == LATER + 30 * DAY
    assert stage_history(store, lead_id)[-1] == ("hot", "recycled", "rejected by sales: not_ready")
    assert published(publisher, "lead.stage_changed")[-1]["to_stage"] == "recycled"


def test_rejecting_the_wrong_contact_resets_engagement(tracker, store, config):
    lead_id = make_hot(tracker)

    apply(tracker, outcome(lead_id, config, LATER, outcome="rejected", reason="wrong_contact"), at=LATER)

    assert engagement_at(stored(store, lead_id), LATER, config) == 0


def engage_again(tracker, at: float) -> None:
    """The ROI calculator, a second webinar and a demo request: hot-level engagement."""
    events = tracking_events(
        track("ROI Calculator Completed", user_id="u-ana", message_id=f"back-roi-{at}", at=at),
        track("Webinar Attended", user_id="u-ana", message_id=f"back-webinar-{at}", at=at, webinar_id="w2"),
        track("Demo Requested", user_id="u-ana", message_id=f"back-demo-{at}", at=at),
        received_at=at,
    )
    tracker.process([(f"rec-back-{at}", events)], now=at)


def test_a_recycled_lead_does_not_re_qualify_during_its_cool_down(tracker, store, config):
    # Given a lead recycled with its engagement reset
    lead_id = make_hot(tracker)
    apply(tracker, outcome(lead_id, config, LATER, outcome="rejected", reason="wrong_contact"), at=LATER)

    # When it earns hot-level engagement again a day later, within the 30-day cool-down
    engage_again(tracker, LATER + DAY)

    # Then it is still recycled
    assert stored(store, lead_id).lifecycle == "recycled"


def test_a_recycled_lead_re_qualifies_after_its_cool_down(tracker, store, publisher, config):
    # Given a lead recycled with its engagement reset
    lead_id = make_hot(tracker)
    apply(tracker, outcome(lead_id, config, LATER, outcome="rejected", reason="wrong_contact"), at=LATER)

    # When it earns hot-level engagement again 31 days later, after the cool-down
    engage_again(tracker, LATER + 31 * DAY)

    # Then it qualifies again, and becoming warm is announced
    assert stored(store, lead_id).lifecycle in ("warm", "hot")
    assert published(publisher, "lead.became_warm")[-1]["from_stage"] == "recycled"


def test_an_opportunity_moves_the_lead_forward(tracker, store, publisher, config):
    lead_id = make_hot(tracker)

    apply(tracker, outcome(lead_id, config, LATER, outcome="opportunity_created"), at=LATER)

    assert stored(store, lead_id).lifecycle == "opportunity"
    assert len(published(publisher, "lead.opportunity_created")) == 1


def test_winning_makes_a_customer_with_the_revenue(tracker, store, publisher, config):
    # Given a lead with an open opportunity
    lead_id = make_hot(tracker)
    apply(tracker, outcome(lead_id, config, LATER, outcome="opportunity_created"), at=LATER)

    # When the deal is won
    won_at = LATER + 20 * DAY
    apply(tracker, outcome(lead_id, config, won_at, outcome="won", revenue=48000, currency="EUR"), at=won_at)

    # Then the lead is a customer after 20 days as an opportunity, lead.won carries the
    # revenue and onboarding's trigger is published
    lead = stored(store, lead_id)
    assert (lead.lifecycle, lead.sales["revenue"], lead.sales["currency"]) == ("customer", 48000, "EUR")
    (won,) = published(publisher, "lead.won")
    assert (won["revenue"], won["currency"]) == (48000, "EUR")
    assert len(published(publisher, "lead.became_customer")) == 1
    assert [move[1] for move in stage_history(store, lead_id)][-2:] == ["opportunity", "customer"]
    assert published(publisher, "lead.stage_changed")[-1]["days_in_stage"] == 20


def test_losing_records_the_reason_and_when_reactivation_is_due(tracker, store, publisher, config):
    # Given a lead with an open opportunity
    lead_id = make_hot(tracker)
    apply(tracker, outcome(lead_id, config, LATER, outcome="opportunity_created"), at=LATER)

    # When the deal is lost to a competitor
    lost_at = LATER + 10 * DAY
    apply(tracker, outcome(lead_id, config, lost_at, outcome="lost", reason="competitor"), at=lost_at)

    # Then the lead is lost, with the reason and time stored on it, and reactivation is due in 180 days
    lead = stored(store, lead_id)
    assert (lead.lifecycle, lead.lost_at, lead.sales["lost_reason"]) == ("lost", lost_at, "competitor")
    assert lead.lifecycle_reason == "lost: competitor"
    (lost,) = published(publisher, "lead.lost")
    assert lost["reason"] == "competitor"
    assert lost["reactivate_after"].startswith("2025-09-")  # 180 days after early March


def test_lifecycle_moves_backwards_and_keeps_every_reason(tracker, store, config):
    # Given a lead sales took as an opportunity, then lost, then won back
    lead_id = make_hot(tracker)
    steps = [
        dict(outcome="opportunity_created"),
        dict(outcome="lost", reason="timing"),
        dict(outcome="opportunity_created", outcome_id="crm-reopened"),
        dict(outcome="won", revenue=1000, currency="USD"),
    ]
    for n, body in enumerate(steps):
        at = LATER + n * DAY
        apply(tracker, outcome(lead_id, config, at, **body), at=at)

    # Then every move, forwards and back, is kept with its reason in order
    assert stage_history(store, lead_id)[-4:] == [
        ("hot", "opportunity", "opportunity created"),
        ("opportunity", "lost", "lost: timing"),
        ("lost", "opportunity", "opportunity created"),
        ("opportunity", "customer", "won"),
    ]


def test_a_retried_outcome_is_applied_once(tracker, store, publisher, config):
    # Given a hot lead and one won outcome sent twice (same outcome_id)
    lead_id = make_hot(tracker)
    won = outcome(lead_id, config, LATER, outcome="won", revenue=5000, currency="USD", outcome_id="deal-7")
    retry = outcome(lead_id, config, LATER + 60, outcome="won", revenue=5000, currency="USD", outcome_id="deal-7")

    # When both are consumed, in separate batches
    apply(tracker, won, at=LATER)
    apply(tracker, retry, at=LATER + 60)

    # Then the deal is counted once
    assert len(published(publisher, "lead.won")) == 1


def test_an_outcome_for_a_lead_that_no_longer_exists_creates_nothing(tracker, store, config):
    # Given no lead p-gone
    before = lead_count(store)

    # When an outcome for it is consumed
    apply(tracker, outcome("p-gone", config, LATER, outcome="accepted"), at=LATER)

    # Then no lead was created
    assert lead_count(store) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "accepted"}, "outcome_id"),
        ({"outcome_id": "x 1", "outcome": "accepted"}, "outcome_id"),
        ({"outcome_id": "o1", "outcome": "closed"}, "outcome"),
        ({"outcome_id": "o1", "outcome": "rejected"}, "reason"),
        ({"outcome_id": "o1", "outcome": "rejected", "reason": "too_busy"}, "reason"),
        ({"outcome_id": "o1", "outcome": "lost", "reason": "aliens"}, "reason"),
        ({"outcome_id": "o1", "outcome": "won", "currency": "USD"}, "revenue"),
        ({"outcome_id": "o1", "outcome": "won", "revenue": -5, "currency": "USD"}, "revenue"),
        ({"outcome_id": "o1", "outcome": "won", "revenue": 5, "currency": "dollars"}, "currency"),
        ({"outcome_id": "o1", "outcome": "accepted", "note": 7}, "note"),
    ],
)
def test_an_invalid_outcome_names_the_field(config, body, field):
    with pytest.raises(ValidationError) as raised:
        outcome_event("p1", body, config, T0)

    assert raised.value.field == field


def test_events_of_an_erased_person_create_no_lead(tracker, store):
    # Given an erased person's tombstone
    store.put_tombstones(["email#gone@globex.com"], T0)

    # When a re-import of their address arrives
    result = tracker.process(
        [("r1", tracking_events(identify("gone@globex.com", user_id="u-gone", message_id="imp-1")))], now=T0
    )

    # Then it is refused: no lead, no identity, nothing stored
    assert result.suppressed == 1
    assert lead_count(store) == 0
    assert store.lookup_identities(["email#gone@globex.com"]) == {}
