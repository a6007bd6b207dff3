"""Timeline use cases over the in-memory stores: enrolling leads (one
execution per enrollment), advancing a timeline when it wakes (a Lambda retry
returns the decision already made) and sending an email touch once under a
lease (a crash mid-way is sent by the retry after the lease)."""

from __future__ import annotations

import email
from email import policy as email_policy

import pytest

from nurture.channels.email import EmailRejectedError
from nurture.core.domain import Enrollment
from nurture.core.errors import DeliveryInProgressError
from nurture.timelines.decisions import DAY, enrollment_id, in_holdout
from nurture.timelines.use_cases import Advancer, Enroller, EnrollResult, TouchSender
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore, WallClock, invocation
from tests.unit.builders import RecordingPublisher
from tests.unit.timeline_builders import (
    COMPANY,
    MONDAY,
    THURSDAY,
    TOKYO,
    TUESDAY,
    FakeExecutions,
    RecordingSender,
    UnsubscribeKey,
    a_lead,
    june,
    lead_id_where,
    shipped_track,
)

NOW = june(MONDAY, 9)  # Monday 2 June 2025, 09:00 New York: the guide step goes at 10:00


@pytest.fixture
def leads() -> InMemoryLeadStore:
    return InMemoryLeadStore()


@pytest.fixture
def timelines() -> InMemoryTimelineStore:
    return InMemoryTimelineStore()


@pytest.fixture
def executions() -> FakeExecutions:
    return FakeExecutions()


@pytest.fixture
def enroller(leads, timelines, executions, config) -> Enroller:
    return Enroller(leads, timelines, executions, config)


class RecordingEmails:
    """The email sender as Advance calls it: records each touch it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, touch, now: float) -> dict:
        self.sent.append(dict(touch))
        return {"sent": True, "message_id": f"m-{len(self.sent)}"}


class RecordingHandOffs:
    def __init__(self) -> None:
        self.queued: list[tuple[str, dict]] = []

    def send(self, channel: str, touch) -> None:
        self.queued.append((channel, dict(touch)))


@pytest.fixture
def emails() -> RecordingEmails:
    return RecordingEmails()


@pytest.fixture
def handoffs() -> RecordingHandOffs:
    return RecordingHandOffs()


@pytest.fixture
def advancer(leads, timelines, publisher, config, emails, handoffs) -> Advancer:
    return Advancer(leads, timelines, publisher, config, lambda: emails, lambda: handoffs)


@pytest.fixture
def revenue_teams(config):
    return shipped_track(config, "mql-revenue-teams")


@pytest.fixture
def lead_id(revenue_teams) -> str:
    """A lead id outside the revenue-teams holdout, so enrolling it starts a timeline."""
    return lead_id_where(lambda candidate: not in_holdout(candidate, revenue_teams))


def saved(leads: InMemoryLeadStore, lead_id: str, **overrides) -> str:
    """Store a RevOps A-fit warm lead (the revenue-teams audience); returns its id."""
    lead = a_lead(lead_id, **overrides)
    current = leads.get_leads([lead_id]).get(lead_id)
    leads.save_lead(lead, current.version if current else 0)
    return lead_id


def warm(enroller: Enroller, lead_id: str, now: float = NOW) -> list[EnrollResult]:
    return enroller.on_event("lead.became_warm", {"lead_id": lead_id}, now)


# --- Enroller -------------------------------------------------------------------------------


def test_warm_lead_is_enrolled_in_the_matching_track(enroller, leads, timelines, lead_id):
    # Given a RevOps A-fit lead
    saved(leads, lead_id)

    # When it becomes warm
    results = warm(enroller, lead_id)

    # Then it is enrolled in the revenue-teams track, its first step due at 10:00 its time
    expected_id = f"mql-revenue-teams-{lead_id}-1"
    assert results == [EnrollResult("enrolled", "mql-revenue-teams (first enrollment)", expected_id)]
    [enrollment] = timelines.enrollments(lead_id)
    assert (enrollment.enrollment_id, enrollment.track_id, enrollment.seq) == (expected_id, "mql-revenue-teams", 1)
    assert (enrollment.status, enrollment.step, enrollment.trigger) == ("active", 0, "lead.became_warm")
    assert (enrollment.started_at, enrollment.due_at) == (NOW, june(MONDAY, 10))


def test_enrolling_starts_one_execution_named_after_the_enrollment(enroller, leads, executions, lead_id):
    # Given a RevOps A-fit lead
    saved(leads, lead_id)

    # When it becomes warm
    warm(enroller, lead_id)

    # Then one timeline starts, named after the enrollment, with a state that has decided nothing yet
    name = f"mql-revenue-teams-{lead_id}-1"
    assert executions.started == {
        name: {
            "enrollment_id": name,
            "lead_id": lead_id,
            "track_id": "mql-revenue-teams",
            "seq": 1,
            "decision": {"id": None, "wake_at": "2025-06-02T14:00:00Z"},
        },
    }


def test_a_paused_lead_s_timeline_first_waits_until_its_pause_ends(enroller, leads, timelines, executions, lead_id):
    # Given a RevOps A-fit lead that paused its email until Thursday noon
    saved(leads, lead_id, preferences={"paused_until": june(THURSDAY, 12)})

    # When it becomes warm
    warm(enroller, lead_id)

    # Then its first step is due Monday 10:00, and its timeline first wakes
    # when the step can go, Thursday noon (16:00 UTC), not to be deferred
    [enrollment] = timelines.enrollments(lead_id)
    assert enrollment.due_at == june(MONDAY, 10)
    assert executions.started[enrollment.enrollment_id]["decision"]["wake_at"] == "2025-06-05T16:00:00Z"


def test_first_step_is_due_at_the_leads_local_time(enroller, leads, timelines, lead_id):
    # Given a Tokyo lead (its profile's time zone)
    saved(leads, lead_id, profile={"timezone": "Asia/Tokyo"})

    # When it becomes warm on Monday 09:00 New York time (22:00 in Tokyo)
    warm(enroller, lead_id)

    # Then its first step is due at 10:00 Tokyo time the next day
    [enrollment] = timelines.enrollments(lead_id)
    assert enrollment.due_at == june(TUESDAY, 10, zone=TOKYO)


def test_repeated_warm_event_enrolls_and_starts_once(enroller, leads, timelines, executions, lead_id):
    # Given a lead enrolled when it became warm
    saved(leads, lead_id)
    warm(enroller, lead_id)

    # When the same event is delivered again
    results = warm(enroller, lead_id, NOW + 60)

    # Then it is a duplicate: still one enrollment and one timeline
    assert [result.outcome for result in results] == ["duplicate"]
    assert len(timelines.enrollments(lead_id)) == 1
    assert list(executions.started) == [f"mql-revenue-teams-{lead_id}-1"]


def test_lead_in_the_holdout_is_recorded_but_gets_no_timeline(enroller, leads, timelines, executions, revenue_teams):
    # Given a lead whose id falls in the revenue-teams track's 10% holdout
    held_out = saved(leads, lead_id_where(lambda candidate: in_holdout(candidate, revenue_teams)))

    # When it becomes warm
    results = warm(enroller, held_out)

    # Then its enrollment is recorded as holdout (so lift can be measured) and no timeline starts
    assert [result.outcome for result in results] == ["holdout"]
    [enrollment] = timelines.enrollments(held_out)
    assert (enrollment.status, enrollment.exit_reason, enrollment.ended_at) == ("holdout", "holdout group", NOW)
    assert executions.started == {}


@pytest.mark.parametrize("consent", ["unsubscribed", "bounced", "complained"])
def test_lead_that_cannot_be_mailed_is_not_enrolled(enroller, leads, timelines, executions, lead_id, consent):
    # Given a lead who unsubscribed (or bounced, or complained)
    saved(leads, lead_id, consent=consent)

    # When it becomes warm
    results = warm(enroller, lead_id)

    # Then it is ignored: no enrollment, no timeline
    assert results == [EnrollResult("ignored", f"lead is {consent}")]
    assert timelines.enrollments(lead_id) == []
    assert executions.started == {}


def test_a_late_warm_event_does_not_enroll_a_lead_already_hot(enroller, leads, timelines, executions, lead_id):
    # Given a lead that became hot before its lead.became_warm event was handled
    saved(leads, lead_id, lifecycle="hot")

    # When the late event arrives
    results = warm(enroller, lead_id)

    # Then the track it would start exits on hot, so nothing is enrolled
    assert results == [EnrollResult("ignored", "lead is already hot")]
    assert timelines.enrollments(lead_id) == []
    assert executions.started == {}


def test_unknown_lead_is_ignored(enroller, executions):
    # Given no such lead
    # When an event names it
    results = warm(enroller, "lead-nobody")

    # Then nothing happens
    assert [result.outcome for result in results] == ["ignored"]
    assert executions.started == {}


def test_lead_becoming_hot_stops_every_active_timeline(enroller, leads, timelines, executions, lead_id):
    # Given a lead with an active revenue-teams timeline
    saved(leads, lead_id)
    warm(enroller, lead_id)
    name = f"mql-revenue-teams-{lead_id}-1"

    # When it becomes hot (sales takes over)
    results = enroller.on_event("lead.became_hot", {"lead_id": lead_id}, NOW + DAY)

    # Then its timeline is stopped and the enrollment marked exited
    assert results == [EnrollResult("stopped", "lead became hot", name)]
    assert executions.stopped == {name: "lead became hot"}
    [enrollment] = timelines.enrollments(lead_id)
    assert (enrollment.status, enrollment.exit_reason, enrollment.ended_at) == ("exited", "lead became hot", NOW + DAY)


def test_a_stop_whose_mark_fails_stops_nothing_so_the_retry_does_both(leads, timelines, executions, config, lead_id):
    # Given a lead with an active timeline, and a store that fails the next enrollment save
    enroller = Enroller(leads, timelines, executions, config)
    saved(leads, lead_id)
    warm(enroller, lead_id)
    save = timelines.save_enrollment
    timelines.save_enrollment = lambda *args: (_ for _ in ()).throw(RuntimeError("ProvisionedThroughputExceeded"))

    # When it becomes hot, the invocation fails and its execution keeps running
    with pytest.raises(RuntimeError):
        enroller.on_event("lead.became_hot", {"lead_id": lead_id}, NOW + DAY)
    assert executions.stopped == {}

    # Then the retry marks the enrollment exited and stops the execution
    timelines.save_enrollment = save
    enroller.on_event("lead.became_hot", {"lead_id": lead_id}, NOW + DAY)
    [enrollment] = timelines.enrollments(lead_id)
    assert enrollment.status == "exited"
    assert list(executions.stopped.values()) == ["lead became hot"]


def test_a_stop_racing_the_timelines_own_save_marks_on_top_of_it(leads, timelines, executions, config, lead_id):
    # Given a lead with an active timeline whose Advance task saves the enrollment just before the stop does
    enroller = Enroller(leads, timelines, executions, config)
    saved(leads, lead_id)
    warm(enroller, lead_id)
    [stale] = timelines.enrollments(lead_id)
    [fresh] = timelines.enrollments(lead_id)
    timelines.save_enrollment(fresh, fresh.version)

    # When the stop is made from the stale copy
    enroller._stop(stale, "lead became hot", NOW + DAY)

    # Then the enrollment is read back and marked exited on top of the concurrent save
    [enrollment] = timelines.enrollments(lead_id)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "lead became hot")


def test_becoming_a_customer_stops_nurture_and_starts_onboarding(enroller, leads, timelines, executions, lead_id):
    # Given a lead in the revenue-teams nurture that then becomes a customer
    saved(leads, lead_id)
    warm(enroller, lead_id)
    saved(leads, lead_id, lifecycle="customer")

    # When its stage change arrives
    results = enroller.on_event("lead.stage_changed", {"lead_id": lead_id, "to_stage": "customer"}, NOW + DAY)

    # Then the nurture (which exits on customer) stops and customer onboarding starts
    nurture, onboarding = f"mql-revenue-teams-{lead_id}-1", f"customer-onboarding-{lead_id}-1"
    assert [(result.outcome, result.enrollment_id) for result in results] == [
        ("stopped", nurture),
        ("enrolled", onboarding),
    ]
    assert executions.stopped == {nurture: "lead became customer"}
    assert set(executions.started) == {nurture, onboarding}
    statuses = {e.track_id: e.status for e in timelines.enrollments(lead_id)}
    assert statuses == {"mql-revenue-teams": "exited", "customer-onboarding": "active"}


def test_stage_change_stops_only_tracks_that_exit_on_it(enroller, leads, timelines, executions, lead_id):
    # Given a customer in onboarding (which exits only when the lead is lost)
    saved(leads, lead_id, lifecycle="customer")
    enroller.on_event("lead.stage_changed", {"lead_id": lead_id, "to_stage": "customer"}, NOW)

    # When the lead is then disqualified
    results = enroller.on_event("lead.stage_changed", {"lead_id": lead_id, "to_stage": "disqualified"}, NOW + DAY)

    # Then onboarding carries on
    assert [result.outcome for result in results] == ["ignored"]
    assert executions.stopped == {}


def test_lead_re_enters_after_the_configured_days(enroller, leads, timelines, executions, lead_id):
    # Given a lead whose first revenue-teams enrollment ended (it became hot) on day 1
    saved(leads, lead_id)
    warm(enroller, lead_id)
    enroller.on_event("lead.became_hot", {"lead_id": lead_id}, NOW + DAY)

    # When it becomes warm again 120 days after that
    results = warm(enroller, lead_id, NOW + 121 * DAY)

    # Then it is enrolled a second time, in a timeline with its own name
    second = f"mql-revenue-teams-{lead_id}-2"
    assert results == [EnrollResult("enrolled", "mql-revenue-teams (re-entry)", second)]
    assert executions.started[second]["seq"] == 2
    assert set(executions.started) == {f"mql-revenue-teams-{lead_id}-1", second}
    assert [(e.seq, e.status) for e in timelines.enrollments(lead_id)] == [(1, "exited"), (2, "active")]


def test_lead_does_not_re_enter_before_the_configured_days(enroller, leads, timelines, executions, lead_id):
    # Given a lead whose first revenue-teams enrollment ended on day 1
    saved(leads, lead_id)
    warm(enroller, lead_id)
    enroller.on_event("lead.became_hot", {"lead_id": lead_id}, NOW + DAY)

    # When it becomes warm again 60 days later
    results = warm(enroller, lead_id, NOW + 61 * DAY)

    # Then it is not enrolled again yet
    assert [result.outcome for result in results] == ["ignored"]
    assert len(timelines.enrollments(lead_id)) == 1
    assert len(executions.started) == 1


# --- Advancer -------------------------------------------------------------------------------------


@pytest.fixture
def started(enroller, leads, executions, lead_id) -> dict:
    """A warm lead enrolled on Monday 09:00: the execution's start state."""
    saved(leads, lead_id)
    warm(enroller, lead_id)
    return executions.started[f"mql-revenue-teams-{lead_id}-1"]


def stored(timelines: InMemoryTimelineStore, state: dict) -> Enrollment:
    return timelines.get_enrollment(state["lead_id"], state["track_id"], state["seq"])


def test_first_advance_decides_the_first_step(advancer, started, lead_id):
    # Given a new timeline whose guide step is due at 10:00
    # When it advances at 10:00
    decision = advancer.advance(started, june(MONDAY, 10))

    # Then it emails the guide, as decision 1 of the enrollment
    assert decision["id"] == f"mql-revenue-teams-{lead_id}-1:1"
    assert decision["action"] == "email"
    assert decision["touch"]["step_id"] == "guide"
    assert decision["touch"]["content_id"] == "wp-revenue-analytics-guide"


def test_advance_before_the_step_is_due_waits(advancer, started):
    # Given a new timeline whose guide step is due at 10:00
    # When it advances at 09:00, right after it started
    decision = advancer.advance(started, NOW)

    # Then it waits until 10:00 (14:00 UTC)
    assert (decision["action"], decision["wake_at"], decision["touch"]) == ("wait", "2025-06-02T14:00:00Z", None)


def test_retried_advance_returns_the_decision_already_made(advancer, timelines, started, emails):
    # Given a timeline that decided to email the guide
    first = advancer.advance(started, june(MONDAY, 10))

    # When Lambda retries the same wake (the state still has no decision) a minute later
    retry = advancer.advance(started, june(MONDAY, 10, 1))

    # Then the same decision comes back, and the enrollment neither decided again nor moved on
    assert retry == first
    enrollment = stored(timelines, started)
    assert (enrollment.decision_seq, enrollment.step) == (1, 0)
    assert enrollment.last_decision == {key: value for key, value in first.items() if key != "delivery"}
    # and the same touch goes to the sender again, whose claim sends it once
    assert emails.sent == [first["touch"], first["touch"]]


def test_a_touch_that_fails_to_deliver_fails_the_first_attempts_then_is_given_up(advancer, started, emails):
    # Given an email sender that keeps failing
    def failing(touch, now):
        raise ConnectionError("SES did not answer")

    emails.send = failing

    # When the Advance task runs, then is retried by the state machine
    for attempt in range(3):
        with pytest.raises(ConnectionError):
            advancer.advance({**started, "attempt": attempt}, june(MONDAY, 10, attempt))
    last = advancer.advance({**started, "attempt": 3}, june(MONDAY, 10, 5))

    # Then the first attempts fail (the ASL retries them) and the fourth gives
    # the touch up, so the timeline goes on to its next step
    assert (last["action"], last["delivery"], last["end"]) == ("email", "failed: ConnectionError", False)
    assert last["touch"]["step_id"] == "guide"


def test_next_wake_with_the_previous_decision_advances(advancer, timelines, started, lead_id):
    # Given a timeline that emailed the guide
    first = advancer.advance(started, june(MONDAY, 10))

    # When the state machine comes back at the wake time with that decision
    second = advancer.advance({**started, "decision": first}, june(TUESDAY, 10))

    # Then a new decision is made and the enrollment moved past the guide step
    assert second["id"] == f"mql-revenue-teams-{lead_id}-1:2"
    enrollment = stored(timelines, started)
    assert (enrollment.decision_seq, enrollment.step) == (2, 1)


def test_advance_racing_an_enrollment_ended_meanwhile_exits_instead_of_failing(advancer, timelines, started):
    # Given the enroller ends the enrollment (the lead became hot) while Advance is deciding
    read_touches = timelines.touches

    def touches_while_the_enroller_ends_it(lead_id):
        enrollment = stored(timelines, started)
        if enrollment.status == "active":
            enrollment.status, enrollment.exit_reason = "exited", "lead became hot"
            timelines.save_enrollment(enrollment, enrollment.version)
        return read_touches(lead_id)

    timelines.touches = touches_while_the_enroller_ends_it

    # When the timeline advances at the step's due time
    decision = advancer.advance(started, june(MONDAY, 10))

    # Then it decides again on top of that change: exit, nothing sent, the enroller's outcome kept
    assert decision["action"] == "exit" and decision["touch"] is None
    assert (stored(timelines, started).status, stored(timelines, started).exit_reason) == ("exited", "lead became hot")


def test_advance_of_an_unknown_enrollment_exits(advancer):
    # Given a state naming an enrollment that does not exist
    state = {
        "enrollment_id": "mql-revenue-teams-nobody-1",
        "lead_id": "nobody",
        "track_id": "mql-revenue-teams",
        "seq": 1,
        "decision": {"id": None},
    }

    # When it advances
    decision = advancer.advance(state, june(MONDAY, 10))

    # Then the timeline ends
    assert (decision["action"], decision["reason"]) == ("exit", "no such enrollment")


def test_goal_reached_after_enrolling_exits(advancer, leads, timelines, started, lead_id):
    # Given a lead who requested a demo after it was enrolled
    saved(leads, lead_id, milestones={"Demo Requested": NOW + 3600})

    # When its timeline advances
    decision = advancer.advance(started, june(MONDAY, 10))

    # Then the timeline exits: the goal is reached
    assert (decision["action"], decision["reason"]) == ("exit", "goal reached: Demo Requested")
    assert stored(timelines, started).status == "exited"


def test_goal_reached_before_enrolling_does_not_exit(advancer, leads, started, lead_id):
    # Given a lead who requested a demo a month before it was enrolled
    saved(leads, lead_id, milestones={"Demo Requested": NOW - 30 * DAY})

    # When its timeline advances
    decision = advancer.advance(started, june(MONDAY, 10))

    # Then the nurture carries on
    assert decision["action"] == "email"


def enrolled_at_step(timelines, lead_id: str, track_id: str, step: int, due_at: float) -> dict:
    """An active enrollment created directly at `step`, due at `due_at`; returns its start state."""
    enrollment = Enrollment(
        enrollment_id(lead_id, track_id, 1), lead_id, track_id, 1, step=step, due_at=due_at, started_at=due_at - 3 * DAY
    )
    timelines.create_enrollment(enrollment)
    return {
        "enrollment_id": enrollment.enrollment_id,
        "lead_id": lead_id,
        "track_id": track_id,
        "seq": 1,
        "decision": {"id": None},
    }


def test_retargeting_decision_claims_a_handed_off_touch(advancer, leads, timelines, config, lead_id):
    # Given a lead at the revenue-teams track's retargeting step, due now
    saved(leads, lead_id, consumed=["wp-revenue-analytics-guide"])
    state = enrolled_at_step(timelines, lead_id, "mql-revenue-teams", 1, june(TUESDAY, 10))

    # When the timeline advances
    decision = advancer.advance(state, june(TUESDAY, 10))

    # Then the lead is handed to the audience and the touch recorded as handed off
    assert (decision["action"], decision["touch"]["audience"]) == ("retargeting", "nurture-revenue-teams")
    [touch] = timelines.touches(lead_id)
    assert (touch.channel, touch.step_id, touch.status) == ("retargeting", "retarget-platform", "handed_off")
    assert (touch.content_id, touch.at) == (None, june(TUESDAY, 10))


def test_a_retried_wake_records_the_hand_off_its_first_attempt_decided_but_did_not(
    advancer, leads, timelines, lead_id, monkeypatch
):
    # Given a wake that decided the retargeting hand-off, saved it, then failed recording the touch
    saved(leads, lead_id, consumed=["wp-revenue-analytics-guide"])
    state = enrolled_at_step(timelines, lead_id, "mql-revenue-teams", 1, june(TUESDAY, 10))
    claim_touch = timelines.claim_touch

    def unavailable(touch, lease=None):
        raise ConnectionError("the table did not answer")

    monkeypatch.setattr(timelines, "claim_touch", unavailable)
    with pytest.raises(ConnectionError):
        advancer.advance(state, june(TUESDAY, 10))
    monkeypatch.setattr(timelines, "claim_touch", claim_touch)

    # When Step Functions retries the task with the same input, and once more
    decision = advancer.advance(state, june(TUESDAY, 10, 1))
    again = advancer.advance(state, june(TUESDAY, 10, 3))

    # Then the decision is the one made, and its hand-off is recorded once, as the first attempt would have
    assert decision == again and decision["action"] == "retargeting"
    [touch] = timelines.touches(lead_id)
    assert (touch.step_id, touch.status, touch.at) == ("retarget-platform", "handed_off", june(TUESDAY, 10))
    assert stored(timelines, state).decision_seq == 1


def test_exhausted_step_publishes_content_exhausted(advancer, leads, timelines, publisher, config, lead_id):
    # Given a finance customer in onboarding, whose first step's only piece is for RevOps and IT
    saved(leads, lead_id, lifecycle="customer", buying_stage="requirements_building", profile={"persona": "finance"})
    state = enrolled_at_step(timelines, lead_id, "customer-onboarding", 0, june(TUESDAY, 9))

    # When the timeline advances
    decision = advancer.advance(state, june(TUESDAY, 9))

    # Then the step is skipped and marketing hears that the lead ran out of content
    assert decision["exhausted"] == ["integrations"]
    assert publisher.types() == ["lead.content_exhausted"]
    detail = publisher.entries[0]["detail"]
    assert (detail["lead_id"], detail["track_id"], detail["steps"]) == (
        lead_id,
        "customer-onboarding",
        ["integrations"],
    )
    assert detail["enrollment_id"] == state["enrollment_id"]


def test_exhausted_event_failing_to_publish_does_not_fail_the_decision(leads, timelines, config, lead_id):
    # Given an event bus that is down
    advancer = Advancer(leads, timelines, RecordingPublisher(fail_next=1), config, RecordingEmails, RecordingHandOffs)
    saved(leads, lead_id, lifecycle="customer", buying_stage="requirements_building", profile={"persona": "finance"})
    state = enrolled_at_step(timelines, lead_id, "customer-onboarding", 0, june(TUESDAY, 9))

    # When the timeline advances
    decision = advancer.advance(state, june(TUESDAY, 9))

    # Then the decision is still made and saved
    assert decision["exhausted"] == ["integrations"]
    assert stored(timelines, state).step == 1


# --- TouchSender ------------------------------------------------------------------------------------


@pytest.fixture
def ses() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def touch_sender(leads, timelines, config, ses) -> TouchSender:
    return TouchSender(leads, timelines, config, COMPANY, ses, UnsubscribeKey())


@pytest.fixture
def touch_state(leads, lead_id) -> dict:
    """The guide email as the Advance task hands it to the email sender, decided on Monday 10:00."""
    saved(leads, lead_id)
    return {
        "enrollment_id": f"mql-revenue-teams-{lead_id}-1",
        "lead_id": lead_id,
        "track_id": "mql-revenue-teams",
        "step_id": "guide",
        "channel": "email",
        "content_id": "wp-revenue-analytics-guide",
        "variant": "question",
        "subject": "Is your forecast telling you the truth?",
        "audience": None,
        "decided_at": june(MONDAY, 10),
    }


def test_email_touch_is_sent_and_recorded(touch_sender, ses, timelines, touch_state, lead_id):
    # Given the guide email decided for a subscribed lead
    # When it is sent
    result = touch_sender.send(touch_state, june(MONDAY, 10))

    # Then SES gets one message for the lead, and the touch is recorded as sent with SES's message id
    assert result == {"sent": True, "message_id": "ses-message-1"}
    [message] = ses.sent
    assert message["recipient"] == f"{lead_id}@globex.com"
    assert message["tags"] == {
        "track": "mql-revenue-teams",
        "step": "guide",
        "content": "wp-revenue-analytics-guide",
        "variant": "question",
        "enrollment": touch_state["enrollment_id"],
    }
    [touch] = timelines.touches(lead_id)
    assert (touch.status, touch.message_id, touch.recipient) == ("sent", "ses-message-1", f"{lead_id}@globex.com")
    assert (touch.step_id, touch.content_id, touch.variant) == ("guide", "wp-revenue-analytics-guide", "question")


def test_sent_message_is_addressed_to_the_lead_with_the_variants_subject(touch_sender, ses, touch_state, lead_id):
    # Given the guide email in its "question" variant
    # When it is sent
    touch_sender.send(touch_state, june(MONDAY, 10))

    # Then the raw message is addressed to the lead, with the variant's subject and the touch's id
    message = email.message_from_bytes(ses.sent[0]["raw"], policy=email_policy.default)
    assert message["To"] == f"{lead_id}@globex.com"
    assert message["From"] == COMPANY.sender
    assert message["Subject"] == "Is your forecast telling you the truth?"
    assert message["X-Nurture-Touch"] == f"{touch_state['enrollment_id']}#guide"
    assert message["List-Unsubscribe"].startswith(f"<{COMPANY.base_url}/v1/unsubscribe/")


def test_second_send_of_the_same_touch_sends_nothing(touch_sender, ses, timelines, touch_state, lead_id):
    # Given the guide email already sent
    touch_sender.send(touch_state, june(MONDAY, 10))

    # When the email is sent again with the same touch (a Lambda retry of Advance)
    result = touch_sender.send(touch_state, june(MONDAY, 10, 1))

    # Then nothing more is sent and the recorded touch is unchanged
    assert result == {"sent": False, "reason": "already sent"}
    assert len(ses.sent) == 1
    [touch] = timelines.touches(lead_id)
    assert (touch.status, touch.message_id) == ("sent", "ses-message-1")


def test_content_another_track_just_sent_is_not_sent_again(touch_sender, ses, timelines, touch_state, lead_id):
    # Given the guide sent moments ago by another track that decided at the same time
    other = {**touch_state, "enrollment_id": f"pricing-follow-up-{lead_id}-1", "track_id": "pricing-follow-up"}
    touch_sender.send(other, june(MONDAY, 10))

    # When this track's email with the same guide is sent
    result = touch_sender.send(touch_state, june(MONDAY, 10))

    # Then it does not go out: the lead got the guide once
    assert result == {"sent": False, "reason": "already sent"}
    assert [message["tags"]["track"] for message in ses.sent] == ["pricing-follow-up"]
    assert [touch.track_id for touch in timelines.touches(lead_id)] == ["pricing-follow-up"]


def test_an_email_over_the_cap_because_another_track_just_sent_is_not_sent(
    touch_sender, ses, timelines, touch_state, lead_id
):
    # Given two other tracks' emails sent to the lead this morning (the cap is 2 per 7 days),
    # both decided at the same moment as this one
    for n, content in enumerate(("roi-calculator", "product-tour")):
        other = {
            **touch_state,
            "enrollment_id": f"other-{n}-{lead_id}-1",
            "track_id": f"other-{n}",
            "content_id": content,
        }
        assert touch_sender.send(other, june(MONDAY, 10))["sent"] is True

    # When this track's email is sent
    result = touch_sender.send(touch_state, june(MONDAY, 10))

    # Then it does not go out, and no touch of it is recorded
    assert result == {"sent": False, "reason": "frequency cap"}
    assert len(ses.sent) == 2
    assert touch_state["enrollment_id"] not in {t.enrollment_id for t in timelines.touches(lead_id)}


def test_a_transactional_reply_does_not_count_towards_the_cap(touch_sender, ses, touch_state, lead_id):
    # Given two transactional replies this morning
    for n, content in enumerate(("roi-calculator", "product-tour")):
        reply = {**touch_state, "enrollment_id": f"form-{n}", "track_id": "responses", "content_id": content}
        touch_sender.send({**reply, "klass": "transactional", "step_id": "acknowledgement"}, june(MONDAY, 9))

    # Then the nurture email still goes out
    assert touch_sender.send(touch_state, june(MONDAY, 10))["sent"] is True


@pytest.mark.parametrize("consent", ["unsubscribed", "bounced", "complained"])
def test_lead_that_cannot_be_mailed_gets_nothing(touch_sender, ses, leads, timelines, touch_state, lead_id, consent):
    # Given the lead unsubscribed (or bounced, or complained) after the email was decided
    saved(leads, lead_id, consent=consent)

    # When the email is sent
    result = touch_sender.send(touch_state, june(MONDAY, 10))

    # Then nothing goes out and no touch is recorded
    assert result == {"sent": False, "reason": f"lead {consent}"}
    assert ses.sent == []
    assert timelines.touches(lead_id) == []


def test_lead_without_an_address_gets_nothing(touch_sender, ses, leads, touch_state, lead_id):
    # Given the lead has no email address
    saved(leads, lead_id, email=None)

    # When the email is sent
    result = touch_sender.send(touch_state, june(MONDAY, 10))

    # Then nothing goes out
    assert result == {"sent": False, "reason": "no address"}
    assert ses.sent == []


def test_content_removed_from_the_library_is_not_sent(touch_sender, ses, touch_state):
    # Given a touch for a piece no longer in content.yaml
    # When the email is sent
    result = touch_sender.send({**touch_state, "content_id": "wp-retired"}, june(MONDAY, 10))

    # Then nothing goes out
    assert result == {"sent": False, "reason": "content no longer in the library"}
    assert ses.sent == []


def test_rejected_send_releases_the_claim_so_a_retry_sends(touch_sender, ses, timelines, touch_state, lead_id):
    # Given SES refuses the first attempt (throttled: definitely not sent)
    ses.fail_with = EmailRejectedError("SES did not send the email: Throttling", "Throttling")
    with pytest.raises(EmailRejectedError):
        touch_sender.send(touch_state, june(MONDAY, 10))
    assert timelines.touches(lead_id) == []

    # When the send is retried
    result = touch_sender.send(touch_state, june(MONDAY, 10, 1))

    # Then the email goes out once
    assert result == {"sent": True, "message_id": "ses-message-1"}
    assert len(ses.sent) == 1
    assert [touch.status for touch in timelines.touches(lead_id)] == ["sent"]


def test_an_ambiguous_send_keeps_the_claim_until_its_lease_lapses(touch_sender, ses, timelines, touch_state, lead_id):
    # Given the call to SES timed out (it may have sent the email) in an invocation with 30 s to run
    wall = WallClock()
    ses.fail_with = TimeoutError("read timeout")
    with invocation(wall, seconds=30), pytest.raises(TimeoutError):
        touch_sender.send(touch_state, june(MONDAY, 10))

    # When the send is retried while that invocation could still be running
    wall.advance(20)
    with invocation(wall), pytest.raises(DeliveryInProgressError):
        touch_sender.send(touch_state, june(MONDAY, 10, 1))

    # Then nothing is sent: the claim holds for its lease
    assert ses.sent == []
    [touch] = timelines.touches(lead_id)
    assert touch.status == "sending"

    # And when the state machine retries a minute later, after the lease, the email goes out once
    wall.advance(60)
    with invocation(wall):
        result = touch_sender.send(touch_state, june(MONDAY, 10, 2))
    assert result == {"sent": True, "message_id": "ses-message-1"}
    assert [touch.status for touch in timelines.touches(lead_id)] == ["sent"]
    with invocation(wall):
        assert touch_sender.send(touch_state, june(MONDAY, 10, 3)) == {"sent": False, "reason": "already sent"}
    assert len(ses.sent) == 1
