"""The local stack's evaluation of EventBridge Scheduler expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nurture_tools.local.schedules import ScheduleExpressionError, parse


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_daily_cron_fires_at_its_time_the_same_day_or_the_next():
    # Given the sweep's default schedule
    expression = parse("cron(15 6 * * ? *)")

    # When the next firing is asked before and after 06:15
    # Then it is 06:15 that day, else the next day
    assert expression.next_after(utc(2026, 11, 24, 5, 0)) == utc(2026, 11, 24, 6, 15)
    assert expression.next_after(utc(2026, 11, 24, 6, 15)) == utc(2026, 11, 25, 6, 15)


def test_cron_weekdays_count_from_sunday_as_one():
    # Given a schedule on Mondays (2 or MON) at 09:00
    # When the next firing after Sunday 22 November 2026 is asked
    # Then it is Monday the 23rd, whichever way the day is written
    for weekday in ("2", "MON"):
        assert parse(f"cron(0 9 ? * {weekday} *)").next_after(utc(2026, 11, 22, 12, 0)) == utc(2026, 11, 23, 9, 0)


def test_cron_lists_ranges_and_steps():
    # Given every 20 minutes from 08:00 to 09:59 on the 1st and 15th
    expression = parse("cron(0/20 8-9 1,15 * ? *)")

    # When the next firing after 09:41 on the 1st is asked
    # Then it is 08:00 on the 15th
    assert expression.next_after(utc(2026, 12, 1, 9, 41)) == utc(2026, 12, 15, 8, 0)


def test_cron_follows_the_schedule_time_zone():
    # Given 06:00 in New York (11:00 UTC in winter)
    expression = parse("cron(0 6 * * ? *)", "America/New_York")

    # When the next firing after midnight UTC is asked
    # Then it is 11:00 UTC
    assert expression.next_after(utc(2026, 12, 1, 0, 0)) == utc(2026, 12, 1, 11, 0)


def test_a_rate_fires_every_interval():
    # Given rate(6 hours)
    # When the next firing after noon is asked
    # Then it is 18:00
    assert parse("rate(6 hours)").next_after(utc(2026, 11, 24, 12, 0)) == utc(2026, 11, 24, 18, 0)


def test_a_one_time_schedule_fires_once_at_its_moment():
    # Given at(...) in Berlin time
    expression = parse("at(2026-11-24T10:00:00)", "Europe/Berlin")

    # When the next firing is asked before and after it
    # Then it is 09:00 UTC, and after that there is none
    assert expression.one_time
    assert expression.next_after(utc(2026, 11, 24, 8, 0)) == utc(2026, 11, 24, 9, 0)
    assert expression.next_after(utc(2026, 11, 24, 9, 0)) is None


@pytest.mark.parametrize(
    "text",
    ["cron(0 6 * * * *)", "cron(0 6 L * ? *)", "cron(0 6 ? * MON#2 *)", "cron(0 25 * * ? *)", "rate(0 days)", "daily"],
)
def test_expressions_the_scheduler_refuses_or_this_evaluator_does_not_support_are_rejected(text):
    # Given an expression that is wrong, or uses L, W or #
    # When it is parsed
    # Then it is refused with the expression named
    with pytest.raises(ScheduleExpressionError, match=r"\("):
        parse(text)
