"""Claims under leases: a delivery stopped mid-way (Lambda's timeout, a crash)
is taken over by the retry once its lease lapses and delivered once; while
the lease holds, nobody else delivers; the event announcing a delivery is
published by the retry when publishing failed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nurture.channels.form_responses import Responder
from nurture.core.deadline import DEFAULT_BOUND, STOP_ALLOWANCE
from nurture.core.deadline import current as current_deadline
from nurture.core.delivery import deliver_once
from nurture.core.domain import Lead, Touch
from nurture.core.errors import DeliveryInProgressError
from nurture.core.observability import metered
from nurture.sales.call_tasks import SalesTasks
from nurture.sales.handoff import SalesHandOff
from nurture.timelines.use_cases import Enroller, TouchSender
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore, Stopped, WallClock, invocation
from tests.unit.builders import T0
from tests.unit.sales_builders import HOT_AT, FakeTimers, RecordingChannel, make_hot
from tests.unit.timeline_builders import COMPANY, MONDAY, RecordingSender, UnsubscribeKey, a_lead, june

# Lambda retries an asynchronous invocation a minute after it failed at the
# earliest; Step Functions retries a failed SendEmail after 60 s; SQS
# redelivers after the visibility timeout (180 s).
RETRY_AFTER = 60.0


def _touch(step: str = "alert") -> Touch:
    return Touch("lead-1", "form-s1", "responses", step, "sales_alert", T0, klass="transactional", status="sending")


# --- the claim itself ---------------------------------------------------------------------


def test_a_lease_lasts_as_long_as_the_invocation_can_run():
    # Given an invocation with 12 s left
    wall = WallClock()
    with invocation(wall, seconds=12) as deadline:
        # When it takes a lease
        lease = deadline.lease()

    # Then the lease ends when Lambda would have stopped it, and not before
    assert (lease.at, lease.until) == (wall.now, wall.now + 12 + STOP_ALLOWANCE)


def test_a_handler_runs_under_its_invocations_deadline():
    # Given a handler, as every function's is wrapped
    seen = []

    @metered
    def handler(event, context):
        seen.append(current_deadline().remaining())

    # When Lambda invokes it with 12.5 s left, and a test invokes it without a context
    handler({}, SimpleNamespace(get_remaining_time_in_millis=lambda: 12_500))
    handler({}, None)

    # Then its claims and requests are bounded by that time, or by the default bound
    assert seen[0] == 12.5
    assert DEFAULT_BOUND - 1 < seen[1] <= DEFAULT_BOUND


def test_a_claim_in_progress_is_refused_while_its_lease_holds():
    # Given a delivery stopped after its claim, in an invocation with 30 s to run
    wall, timelines, delivered = WallClock(), InMemoryTimelineStore(), []

    def stopped() -> str:
        raise Stopped

    with invocation(wall, seconds=30), pytest.raises(Stopped):
        deliver_once(timelines, _touch(), stopped)

    # When another invocation tries the same delivery 20 s later (the first could still be running)
    wall.advance(20)
    with invocation(wall), pytest.raises(DeliveryInProgressError):
        deliver_once(timelines, _touch(), lambda: delivered.append(1) or "m-1")

    # Then it delivers nothing: never two deliveries within a lease
    assert delivered == []


def test_a_crash_between_claim_and_delivery_is_delivered_once_after_the_lease():
    # Given a delivery stopped after its claim
    wall, timelines, delivered = WallClock(), InMemoryTimelineStore(), []

    def stopped() -> str:
        raise Stopped

    with invocation(wall, seconds=30), pytest.raises(Stopped):
        deliver_once(timelines, _touch(), stopped)

    # When the retry comes after the lease, and the event is then delivered again
    def deliver() -> str:
        delivered.append(1)
        return f"m-{len(delivered)}"

    wall.advance(RETRY_AFTER)
    with invocation(wall):
        first = deliver_once(timelines, _touch(), deliver)
    wall.advance(RETRY_AFTER)
    with invocation(wall):
        again = deliver_once(timelines, _touch(), deliver)

    # Then it was delivered once, by the retry, and recorded as sent
    assert (first, again, delivered) == (True, False, [1])
    (touch,) = timelines.touches("lead-1")
    assert (touch.status, touch.message_id) == ("sent", "m-1")


def test_a_claim_taken_over_is_not_released_by_its_former_holder():
    # Given a claim whose holder outlived its lease, and a retry that took it over
    wall, timelines = WallClock(), InMemoryTimelineStore()
    with invocation(wall, seconds=5) as first:
        stale = _touch()
        timelines.claim_touch(stale, first.lease())
    wall.advance(RETRY_AFTER)
    with invocation(wall) as second:
        assert timelines.claim_touch(_touch(), second.lease()) is True

    # When the former holder releases what it thinks it holds
    timelines.release_touch(stale)

    # Then the new holder keeps its claim
    (touch,) = timelines.touches("lead-1")
    assert (touch.status, touch.lease_until) == ("sending", wall.now + 30 + STOP_ALLOWANCE)


def test_a_claim_left_sending_before_leases_existed_counts_as_done():
    # Given a touch left "sending" by a claim without a lease (before leases existed)
    wall, timelines, delivered = WallClock(), InMemoryTimelineStore(), []
    timelines.claim_touch(_touch())

    # When its work is retried, long after
    wall.advance(86400)
    with invocation(wall):
        outcome = deliver_once(timelines, _touch(), lambda: delivered.append(1) or "m-1")

    # Then nothing is delivered: whether it was is unknown, as it always was
    assert (outcome, delivered) == (False, [])


class _FlakyClaims(InMemoryTimelineStore):
    """The table failing the next `failures` writes of a touch already claimed."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def update_touch(self, touch: Touch) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the table did not answer")
        super().update_touch(touch)


def test_a_failed_write_after_delivery_is_retried_so_the_retry_does_not_deliver_again():
    # Given a delivery the channel accepted, whose write marking it sent fails once
    wall, timelines, delivered = WallClock(), _FlakyClaims(failures=1), []

    def deliver() -> str:
        delivered.append(1)
        return f"m-{len(delivered)}"

    with invocation(wall, seconds=30):
        first = deliver_once(timelines, _touch(), deliver)

    # When the same work is retried after any lease would have lapsed
    wall.advance(RETRY_AFTER)
    with invocation(wall):
        again = deliver_once(timelines, _touch(), deliver)

    # Then it was delivered once and is recorded as sent
    assert (first, again, delivered) == (True, False, [1])
    (touch,) = timelines.touches("lead-1")
    assert (touch.status, touch.message_id) == ("sent", "m-1")


def test_a_write_that_keeps_failing_after_delivery_fails_the_invocation_in_time():
    # Given a delivery whose write marking it sent fails until the invocation has no time left
    wall, timelines = WallClock(), _FlakyClaims(failures=100)

    # When it runs with 4 s left (less than the safety margin and a pause)
    with invocation(wall, seconds=4), pytest.raises(ConnectionError):
        deliver_once(timelines, _touch(), lambda: "m-1")

    # Then the error reaches the caller, the touch still claimed: its lease lapses and the retry delivers
    (touch,) = timelines.touches("lead-1")
    assert touch.status == "sending"


# --- the sales hand-off and the alerts -------------------------------------------------------


@pytest.fixture
def hand_off(store, timelines, executions, publisher, config):
    channel, timers = RecordingChannel(), FakeTimers()
    enroller = Enroller(store, timelines, executions, config)
    return SalesHandOff(store, timelines, enroller, channel, timers, publisher, config), channel, timers


def _became_hot(publisher, lead_id: str) -> dict:
    (detail,) = [e["detail"] for e in publisher.entries if e["type"] == "lead.became_hot"]
    return detail


def _handed_off(publisher) -> list[dict]:
    return [entry["detail"] for entry in publisher.entries if entry["type"] == "lead.handed_off"]


def test_a_hand_off_stopped_mid_way_is_delivered_once_after_the_lease(hand_off, tracker, publisher):
    # Given a hot lead, and an invocation stopped while telling sales
    sales, channel, timers = hand_off
    lead_id = make_hot(tracker)
    event = _became_hot(publisher, lead_id)
    channel.stop_next = 1
    wall = WallClock()
    with invocation(wall, seconds=120), pytest.raises(Stopped):
        sales.on_event("lead.became_hot", event, HOT_AT)

    # When EventBridge retries before the lease lapsed, then after it
    wall.advance(RETRY_AFTER)
    with invocation(wall), pytest.raises(DeliveryInProgressError):
        sales.on_event("lead.became_hot", event, HOT_AT + RETRY_AFTER)
    wall.advance(2 * RETRY_AFTER)
    with invocation(wall):
        result = sales.on_event("lead.became_hot", event, HOT_AT + 3 * RETRY_AFTER)

    # Then sales got the hand-off once, its SLA timer was set once, lead.handed_off published once
    assert result["outcome"] == "handed_off"
    assert len(channel.alerts) == 1
    assert len(timers.named("sla-")) == 1
    assert [detail["lead_id"] for detail in _handed_off(publisher)] == [lead_id]


def test_a_failed_publish_of_the_hand_off_is_published_by_the_retry(hand_off, tracker, publisher, timelines):
    # Given a hot lead, and the event bus failing once after sales was told
    sales, channel, _ = hand_off
    lead_id = make_hot(tracker)
    event = _became_hot(publisher, lead_id)
    publisher.fail_next = 1
    with pytest.raises(RuntimeError):
        sales.on_event("lead.became_hot", event, HOT_AT)
    assert _handed_off(publisher) == []

    # When EventBridge retries the event, and delivers it once more later
    retried = sales.on_event("lead.became_hot", event, HOT_AT + RETRY_AFTER)
    again = sales.on_event("lead.became_hot", event, HOT_AT + 2 * RETRY_AFTER)

    # Then sales was told once, and lead.handed_off published once, dated by the hand-off
    assert (retried["outcome"], again["outcome"]) == ("duplicate", "duplicate")
    assert len(channel.alerts) == 1
    (handed_off,) = _handed_off(publisher)
    (_, alert) = channel.alerts[0]
    assert handed_off["accept_by"] == alert["accept_by"]
    (touch,) = [t for t in timelines.touches(lead_id) if t.step_id == "handoff"]
    assert (touch.status, touch.published_at is not None) == ("sent", True)


def test_a_call_task_stopped_mid_way_is_delivered_once_after_the_lease(tracker, store, config):
    # Given a call step whose invocation was stopped while telling sales
    lead_id = make_hot(tracker)
    channel = RecordingChannel(stop_next=1)
    tasks = SalesTasks(store, InMemoryTimelineStore(store.items), channel, config)
    step = {"enrollment_id": "mql-x-1", "track_id": "mql", "step_id": "call", "note": "Call", "lead_id": lead_id}
    wall = WallClock()
    with invocation(wall, seconds=120), pytest.raises(Stopped):
        tasks.create(step, T0)

    # When SQS redelivers it after the visibility timeout, twice
    wall.advance(180)
    with invocation(wall):
        first = tasks.create(step, T0 + 180)
    with invocation(wall):
        second = tasks.create(step, T0 + 360)

    # Then one call task reached sales
    assert (first, second) == (True, False)
    assert len(channel.alerts) == 1


def test_a_form_alert_stopped_mid_way_is_made_once_after_the_lease(config):
    # Given a demo request whose alert was stopped mid-way
    leads, timelines, ses, alerts = (
        InMemoryLeadStore(),
        InMemoryTimelineStore(),
        RecordingSender(),
        RecordingChannel(stop_next=1),
    )
    responder = Responder(
        leads, timelines, TouchSender(leads, timelines, config, COMPANY, ses, UnsubscribeKey()), alerts, config
    )
    leads.save_lead(Lead("lead-rita", email="rita@wayne-fintech.com", consent="subscribed", fit_grade="A"), 0)
    detail = {"lead_id": "lead-rita", "form_source": "demo-request", "message_id": "form-demo-request-s1"}
    wall = WallClock()
    with invocation(wall), pytest.raises(Stopped):
        responder.on_form(detail, T0)

    # When the event is retried after the lease
    wall.advance(RETRY_AFTER)
    with invocation(wall):
        result = responder.on_form(detail, T0 + RETRY_AFTER)

    # Then sales is alerted once and the acknowledgement was sent once
    assert (result["acknowledged"], result["alerted"]) == (False, True)
    assert len(alerts.alerts) == 1 and len(ses.sent) == 1


# --- the email path --------------------------------------------------------------------------


class StoppingSes(RecordingSender):
    """SES, with the invocation stopped before the next send reaches it
    (`stop_before`), or right after SES accepted it (`stop_after`)."""

    stop_before = 0
    stop_after = 0

    def send(self, raw: bytes, recipient: str, tags: dict[str, str]) -> str:
        if self.stop_before:
            self.stop_before -= 1
            raise Stopped
        message_id = super().send(raw, recipient, tags)
        if self.stop_after:
            self.stop_after -= 1
            raise Stopped
        return message_id


@pytest.fixture
def email(config):
    leads, timelines, ses = InMemoryLeadStore(), InMemoryTimelineStore(), StoppingSes()
    leads.save_lead(a_lead("lead-ana"), 0)
    state = {
        "lead_id": "lead-ana",
        "enrollment_id": "mql-revenue-teams-lead-ana-1",
        "track_id": "mql-revenue-teams",
        "step_id": "guide",
        "content_id": "wp-revenue-analytics-guide",
        "decided_at": june(MONDAY, 10),
    }
    return TouchSender(leads, timelines, config, COMPANY, ses, UnsubscribeKey()), ses, timelines, state


def test_an_email_stopped_before_ses_is_sent_once_after_the_lease(email):
    # Given SendEmail stopped after its claim, before SES was called
    sender, ses, timelines, state = email
    ses.stop_before = 1
    wall = WallClock()
    with invocation(wall, seconds=30), pytest.raises(Stopped):
        sender.send(state, june(MONDAY, 10))

    # When the state machine retries within the lease, then after it, then once more
    wall.advance(10)
    with invocation(wall), pytest.raises(DeliveryInProgressError):
        sender.send(state, june(MONDAY, 10))
    wall.advance(RETRY_AFTER)
    with invocation(wall):
        sent = sender.send(state, june(MONDAY, 10, 1))
    with invocation(wall):
        again = sender.send(state, june(MONDAY, 10, 2))

    # Then the email went out once, and the touch is recorded as sent
    assert (sent["sent"], again) == (True, {"sent": False, "reason": "already sent"})
    assert len(ses.sent) == 1
    assert [t.status for t in timelines.touches("lead-ana")] == ["sent"]


def test_an_email_ses_accepted_but_not_marked_sent_goes_once_more_after_the_lease(email):
    # Given SendEmail stopped right after SES accepted the email, before the touch was marked sent
    sender, ses, timelines, state = email
    ses.stop_after = 1
    wall = WallClock()
    with invocation(wall, seconds=30), pytest.raises(Stopped):
        sender.send(state, june(MONDAY, 10))

    # When the state machine retries after the lease, and again
    wall.advance(RETRY_AFTER)
    with invocation(wall):
        sender.send(state, june(MONDAY, 10, 1))
    wall.advance(RETRY_AFTER)
    with invocation(wall):
        sender.send(state, june(MONDAY, 10, 2))

    # Then — the window TouchSender documents (SES has no idempotency key) — it went
    # out once more, and only once: the retry that sent it marked it sent
    assert len(ses.sent) == 2
    assert [t.status for t in timelines.touches("lead-ana")] == ["sent"]
