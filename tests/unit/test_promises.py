"""The promise checks find each kind of breach in an export, and pass a clean one."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nurture_tools.promises import check_promises

NEW_YORK = ZoneInfo("America/New_York")
DAY = 86400.0


def ny(day: int, hour: int = 10) -> float:
    """June 2025 in New York (2 June is a Monday)."""
    return datetime(2025, 6, day, hour, tzinfo=NEW_YORK).timestamp()


def lead(lead_id="a", consent="subscribed", consent_at=0.0, enrollments=()):
    return {
        "lead_id": lead_id,
        "consent": consent,
        "consent_at": consent_at,
        "timezone": "America/New_York",
        "lifecycle": "warm",
        "enrollments": list(enrollments),
    }


def email(at, lead_id="a", content="wp", step="guide", track="mql", klass="marketing", enrollment=None):
    return {
        "lead_id": lead_id,
        "enrollment_id": enrollment or f"{track}-{lead_id}-1",
        "track_id": track,
        "step_id": step,
        "channel": "email",
        "at": at,
        "content_id": content,
        "status": "sent",
        "klass": klass,
    }


def broken(results) -> dict[str, int]:
    return {r["promise"]: r["violations"] for r in results if not r["kept"]}


@pytest.fixture
def check(config):
    return lambda leads, touches, events=(): check_promises(leads, touches, list(events), config.policy)


def test_a_clean_export_keeps_every_promise(check):
    # Given two emails of different content, a week apart, on weekday mornings in New York
    touches = [email(ny(2), content="wp"), email(ny(9), content="roi", step="proof")]

    # Then every promise is kept
    results = check([lead()], touches)
    assert broken(results) == {}
    assert all(r["checked"] >= 0 for r in results)


def test_the_same_content_twice_is_a_breach(check):
    touches = [email(ny(2), content="wp"), email(ny(9), content="wp", step="proof")]
    assert broken(check([lead()], touches)) == {"no content emailed twice to a lead": 1}


def test_email_after_unsubscribing_is_a_breach_but_not_before(check):
    # Given a lead that unsubscribed on Wednesday, emailed Monday and Thursday
    leads = [lead(consent="unsubscribed", consent_at=ny(4))]
    touches = [email(ny(2), content="wp"), email(ny(5), content="roi", step="proof")]

    # Then only Thursday's email breaks the promise
    assert broken(check(leads, touches)) == {"nothing emailed after unsubscribe, bounce or complaint": 1}


def test_a_transactional_reply_after_unsubscribing_is_allowed_but_not_after_a_bounce(check):
    reply = email(ny(5), content="wp", klass="transactional", track="responses", enrollment="form-1")
    assert broken(check([lead(consent="unsubscribed", consent_at=ny(4))], [reply])) == {}
    assert broken(check([lead(consent="bounced", consent_at=ny(4))], [reply])) == {
        "nothing emailed after unsubscribe, bounce or complaint": 1
    }


def test_three_marketing_emails_in_seven_days_break_the_cap(check):
    touches = [email(ny(2), content="a"), email(ny(3), content="b", step="s2"), email(ny(4), content="c", step="s3")]
    assert broken(check([lead()], touches)) == {"at most 2 marketing emails per 7 days": 1}


def test_email_in_quiet_hours_or_at_the_weekend_is_a_breach(check):
    # Given one email at 21:00 New York time on a Tuesday and one on Saturday morning
    touches = [email(ny(3, hour=21), content="a"), email(ny(7), content="b", step="s2")]

    # Then both break quiet hours / business days (in the lead's own zone)
    assert broken(check([lead()], touches)) == {
        "no marketing email in the lead's quiet hours or weekend (its own time zone)": 2
    }


def test_a_touch_to_a_held_out_lead_is_a_breach(check):
    holdout = {"enrollment_id": "mql-a-1", "track_id": "mql", "seq": 1, "status": "holdout", "started_at": ny(2)}
    touches = [email(ny(2))]
    assert broken(check([lead(enrollments=[holdout])], touches)) == {
        "held-out leads get nothing from the track they are held out of": 1
    }


def test_nurture_email_while_sales_owns_the_lead_is_a_breach(check):
    # Given a lead handed to sales (hot) on Tuesday and emailed by nurture on Thursday
    events = [{"lead_id": "a", "kind": "lifecycle", "at": ny(3), "properties": {"to": "hot"}}]
    touches = [email(ny(2), content="a"), email(ny(5), content="b", step="s2")]

    # Then Thursday's email breaks the hand-off promise
    assert broken(check([lead()], touches, events)) == {
        "no nurture email while sales owns the lead (hot or opportunity)": 1
    }


def test_a_move_dated_within_the_grace_before_the_email_is_not_yet_a_hand_off(config):
    # Given a lead dated hot at 10:00 (its batch started then) and emailed at 10:00:30
    events = [{"lead_id": "a", "kind": "lifecycle", "at": ny(3), "properties": {"to": "hot"}}]
    touches = [email(ny(3) + 30)]

    # Then with a minute's grace for the pipeline to commit the move, nothing is broken; without it, it is
    assert broken(check_promises([lead()], touches, events, config.policy, handoff_grace_seconds=60)) == {}
    assert broken(check_promises([lead()], touches, events, config.policy, handoff_grace_seconds=0)) == {
        "no nurture email while sales owns the lead (hot or opportunity)": 1
    }


def test_a_reply_with_content_the_lead_asked_for_again_is_not_a_repeat(check):
    # Given the guide sent by nurture, then asked for on a form (a transactional reply)
    touches = [
        email(ny(2), content="wp"),
        email(ny(9), content="wp", klass="transactional", track="responses", enrollment="form-1"),
    ]

    # Then no promise is broken
    assert broken(check([lead()], touches)) == {}
