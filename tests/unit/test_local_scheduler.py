"""The local stack's scheduler: fires on the application clock, retries a
failing target as the schedule's retry policy says, then dead-letters it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nurture.core.clock import FixedClock, SystemClock, set_clock
from nurture_tools.local.runtime import SchedulePoller, _Timer
from nurture_tools.local.schedules import parse

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:nurture-local-SweepFunction"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:nurture-local-SweepDeadLetterQueue"


class FakeScheduler:
    def list_schedules(self, **_):
        return {"Schedules": []}


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def get_queue_url(self, QueueName):  # noqa: N803 - boto3's parameter name
        return {"QueueUrl": f"https://sqs.local/{QueueName}"}

    def send_message(self, QueueUrl, MessageBody):  # noqa: N803
        self.sent.append((QueueUrl, MessageBody))


class FakeSession:
    def __init__(self) -> None:
        self.sqs = FakeSqs()

    def client(self, service):
        return {"scheduler": FakeScheduler(), "sqs": self.sqs}[service]


@pytest.fixture
def clock():
    fixed = FixedClock(datetime(2026, 11, 24, 6, 0, tzinfo=UTC))
    set_clock(fixed)
    yield fixed
    set_clock(SystemClock())


def daily_sweep(retries: int = 2) -> _Timer:
    return _Timer(
        "SweepFunction-DailySweep", parse("cron(15 6 * * ? *)"), FUNCTION_ARN, '{"sweep": "due"}', retries, DLQ_ARN
    )


def test_a_recurring_schedule_fires_once_per_occurrence_on_the_application_clock(clock):
    # Given the daily sweep at 06:15, and the clock at 06:00
    calls = []
    poller = SchedulePoller(
        FakeSession(), {"nurture-local-SweepFunction": lambda e, c: calls.append(e)}, [daily_sweep()]
    )

    # When the clock passes 06:15 and ticks twice, then passes 06:15 the next day
    poller.tick()
    clock.advance(20 * 60)
    poller.tick()
    poller.tick()
    clock.advance(86400)
    poller.tick()

    # Then the function got the schedule's input once each day
    assert calls == [{"sweep": "due"}, {"sweep": "due"}]


def test_a_failing_target_is_retried_then_dead_lettered(clock):
    # Given the daily sweep (2 retries) whose function always fails
    session = FakeSession()

    def failing(event, context):
        raise RuntimeError("table unavailable")

    poller = SchedulePoller(session, {"nurture-local-SweepFunction": failing}, [daily_sweep(retries=2)])
    clock.advance(20 * 60)

    # When the scheduler ticks four times
    for _ in range(4):
        poller.tick()

    # Then after the first attempt and two retries the input went to the dead-letter queue, once
    assert session.sqs.sent == [("https://sqs.local/nurture-local-SweepDeadLetterQueue", '{"sweep": "due"}')]
