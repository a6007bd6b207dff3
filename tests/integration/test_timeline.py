"""The real nurture timeline ASL under moto, end to end through the handlers:
the track function publishes, the enrollment function starts and stops
executions, Advance decides and delivers: email through SES, hand-offs queued."""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nurture import wiring
from nurture.channels.consent import unsubscribe
from nurture.core.domain import Touch
from nurture.timelines.decisions import assign_variant, bucket
from tests.integration.timeline_harness import DAY, Timelines

pytestmark = pytest.mark.slow
TRACK = "mql-revenue-teams"


@pytest.fixture
def timelines(deployed):
    harness = Timelines(deployed, seconds_per_day=0.3).start()
    yield harness
    harness.stop()


def _identify(user: str, **traits):
    traits = {
        "email": f"{user}@fintech-{user}.com",
        "timezone": "America/New_York",
        "title": "Director of Revenue Operations",
        "industry": "Fintech",
        "employees": 1500,
        "country": "US",
        **traits,
    }
    return {"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits}


def _warm_events(user: str, **traits):
    """An A-fit RevOps director who uses the ROI calculator and attends a webinar: warm (35), not hot (55)."""
    return [
        _identify(user, **traits),
        {"type": "track", "userId": user, "event": "ROI Calculator Completed", "messageId": f"r-{user}"},
        {
            "type": "track",
            "userId": user,
            "event": "Webinar Attended",
            "messageId": f"w-{user}",
            "properties": {"webinar_id": "pipeline-hygiene"},
        },
    ]


def _user_outside_holdout(prefix: str) -> str:
    from nurture.ingest.consumer import lead_id_for

    for n in range(100):
        user = f"{prefix}{n}"
        if bucket("holdout", TRACK, lead_id_for(f"user#{user}")) >= 0.1:
            return user
    raise AssertionError("no user outside the holdout")


def _only_enrollment(timelines):
    (enrollment,) = timelines.enrollments()
    return enrollment


def test_a_warm_lead_runs_the_whole_track(timelines):
    # Given a lead that becomes warm and matches the RevOps track
    timelines.track(*_warm_events(_user_outside_holdout("dana")))

    # When its timeline runs to the end (a simulated day passes in 0.3 s)
    enrollment = _only_enrollment(timelines)
    described = timelines.finished(enrollment["enrollment_id"], timeout=90)

    # Then each step happened once, in order, with no piece of content twice
    assert described["status"] == "SUCCEEDED"
    touches = timelines.touches(enrollment["lead_id"])
    assert [t["step_id"] for t in touches] == ["guide", "retarget-platform", "proof", "next-step", "sales-check-in"]
    emails = [t for t in touches if t["channel"] == "email"]
    assert all(t["status"] == "sent" for t in emails)
    assert len({t["content_id"] for t in emails}) == len(emails)
    assert len(timelines.sent_emails()) == len(emails)
    # and the hand-offs reached their queues without the timeline waiting on them
    assert [m["step_id"] for m in timelines.queued("AudienceQueue")] == ["retarget-platform"]
    assert [m["step_id"] for m in timelines.queued("SalesTaskQueue")] == ["sales-check-in"]
    # and each email landed inside the lead's business hours, New York time
    for touch in emails:
        local = datetime.fromtimestamp(touch["at"], ZoneInfo("America/New_York"))
        assert local.weekday() < 5 and 8 <= local.hour < 19, touch


def test_a_touch_costs_three_transitions_and_no_lead_month_more_than_16():
    from nurture.config.loader import load_config
    from nurture_tools.transitions import measure_transitions, summary
    from tests.conftest import CONFIG_DIR

    # When every track in config/ runs for a lead enrolled on each day of the
    # week (waits jump the product clock, so each run is exact)
    runs = measure_transitions()

    # Then each ran to its end, and every wake did something: a touch is
    # WaitUntilDue, Advance and Continue, and a run is that plus Done
    assert {run.track_id for run in runs} == {track.id for track in load_config(CONFIG_DIR).tracks}
    assert all(run.status == "SUCCEEDED" for run in runs), runs
    for run in runs:
        wakes = run.states["Advance"]
        assert run.states == {"WaitUntilDue": wakes, "Advance": wakes, "Continue": wakes, "Done": 1}, run
    # the RevOps track's five touches are five wakes, whatever the weekday: 16 transitions
    revenue_teams = [run for run in runs if run.track_id == TRACK]
    assert {(run.touches, run.transitions) for run in revenue_teams} == {(5, 16)}
    # and no enrolled lead-month costs more than 16
    assert max(run.per_lead_month for run in runs) <= 16
    print(json.dumps(summary(runs), indent=1))


def test_becoming_hot_mid_wait_stops_the_timeline_at_once(timelines):
    # Given a lead whose timeline has sent its first email
    user = _user_outside_holdout("hal")
    timelines.track(*_warm_events(user))
    enrollment = _only_enrollment(timelines)
    timelines.wait_for(lambda: timelines.touches(enrollment["lead_id"]), what="the first touch")

    # When the lead starts a trial and becomes hot
    timelines.track({"type": "track", "userId": user, "event": "Trial Started", "messageId": f"t-{user}"})

    # Then the execution is stopped and nothing more is sent
    described = timelines.finished(enrollment["enrollment_id"], timeout=10)
    assert described["status"] == "ABORTED"
    sent = len(timelines.touches(enrollment["lead_id"]))
    time.sleep(2)  # several simulated days
    assert len(timelines.touches(enrollment["lead_id"])) == sent
    (stored,) = timelines.enrollments()
    assert stored["status"] == "exited" and stored["exit_reason"] == "lead became hot"


def test_unsubscribing_mid_track_stops_the_timeline(timelines):
    # Given a lead whose timeline has sent its first email
    timelines.track(*_warm_events(_user_outside_holdout("una")))
    enrollment = _only_enrollment(timelines)
    timelines.wait_for(lambda: timelines.touches(enrollment["lead_id"]), what="the first touch")

    # When it unsubscribes (one click)
    unsubscribe(wiring.get_store(), wiring.get_publisher(), enrollment["lead_id"], timelines.clock.timestamp())
    timelines.deliver_rules()

    # Then its timeline stops — ended by the unsubscribe, or, when its next wake
    # came first, exiting on the lead's consent — and no further email goes out
    finished = timelines.finished(enrollment["enrollment_id"], timeout=10)
    if finished["status"] != "ABORTED":
        assert (finished["status"], json.loads(finished["output"])["decision"]["reason"]) == (
            "SUCCEEDED",
            "lead unsubscribed",
        )
    emails = len(timelines.sent_emails())
    time.sleep(2)
    assert len(timelines.sent_emails()) == emails


def test_the_frequency_cap_defers_the_first_email(timelines):
    # Given a lead that already received two marketing emails in the last two days
    user = _user_outside_holdout("fred")
    from nurture.ingest.consumer import lead_id_for

    lead_id = lead_id_for(f"user#{user}")
    now = timelines.clock.timestamp()
    store = wiring.get_timeline_store()
    for n, content in enumerate(("blog-forecast-misses", "integrations-page")):
        store.claim_touch(
            Touch(lead_id, "other-track-1", "other-track", f"s{n}", "email", now - (2 - n) * DAY, content_id=content)
        )

    # When it becomes warm and is enrolled
    timelines.track(*_warm_events(user))
    enrollment = _only_enrollment(timelines)
    first = timelines.wait_for(
        lambda: [t for t in timelines.touches(lead_id) if t["enrollment_id"] == enrollment["enrollment_id"]],
        timeout=30,
        what="the first email of the track",
    )[0]

    # Then that email waited until 7 days after the older of the two
    assert first["at"] >= now - 2 * DAY + 7 * DAY


def test_quiet_hours_are_the_leads_own(timelines):
    # Given a lead in Tokyo
    timelines.track(*_warm_events(_user_outside_holdout("kenji"), timezone="Asia/Tokyo"))
    enrollment = _only_enrollment(timelines)

    # When its first emails go out
    emails = timelines.wait_for(
        lambda: [t for t in timelines.touches(enrollment["lead_id"]) if t["channel"] == "email"][:2] or None,
        timeout=60,
        what="emails",
    )

    # Then each was sent in Tokyo business hours
    for touch in emails:
        local = datetime.fromtimestamp(touch["at"], ZoneInfo("Asia/Tokyo"))
        assert local.weekday() < 5 and 8 <= local.hour < 19


def test_content_already_received_is_never_sent_again(timelines):
    # Given a lead that already received the buyer's guide from another program
    user = _user_outside_holdout("cora")
    from nurture.ingest.consumer import lead_id_for

    lead_id = lead_id_for(f"user#{user}")
    wiring.get_timeline_store().claim_touch(
        Touch(
            lead_id,
            "old-1",
            "old",
            "s",
            "email",
            timelines.clock.timestamp() - 30 * DAY,
            content_id="wp-revenue-analytics-guide",
        )
    )

    # When the track's first step (whose pool starts with that guide) comes due
    timelines.track(*_warm_events(user))
    enrollment = _only_enrollment(timelines)
    first = timelines.wait_for(
        lambda: [t for t in timelines.touches(lead_id) if t["enrollment_id"] == enrollment["enrollment_id"]],
        what="the first touch",
    )[0]

    # Then it sends the next piece in the pool instead
    assert first["content_id"] == "blog-why-leads-go-cold"


def test_a_lead_with_nothing_left_to_read_is_exhausted(timelines):
    # Given a lead that has received every sendable piece
    user = _user_outside_holdout("xena")
    from nurture.config.loader import load_config
    from nurture.ingest.consumer import lead_id_for
    from tests.conftest import CONFIG_DIR

    lead_id = lead_id_for(f"user#{user}")
    store, now = wiring.get_timeline_store(), timelines.clock.timestamp()
    for n, tag in enumerate(t for t in load_config(CONFIG_DIR).content if t.sendable):
        store.claim_touch(Touch(lead_id, "old-1", "old", f"s{n}", "email", now - 60 * DAY, content_id=tag.id))

    # When its track runs
    timelines.track(*_warm_events(user))
    enrollment = _only_enrollment(timelines)
    timelines.finished(enrollment["enrollment_id"], timeout=90)

    # Then no email was sent, the hand-off steps still ran, and exhaustion was published
    touches = [t for t in timelines.touches(lead_id) if t["enrollment_id"] == enrollment["enrollment_id"]]
    assert [t["channel"] for t in touches] == ["retargeting", "sales_call"]
    assert timelines.sent_emails() == []
    exhausted = [e for e in timelines.deployed.bus_events() if e["detail-type"] == "lead.content_exhausted"]
    assert {step for e in exhausted for step in e["detail"]["steps"]} == {"guide", "proof", "next-step"}


def test_the_ab_variant_is_the_leads_stable_assignment(timelines):
    # Given a lead enrolled in the track whose first step runs a subject-line test
    user = _user_outside_holdout("vic")
    timelines.track(*_warm_events(user))
    enrollment = _only_enrollment(timelines)
    first = timelines.wait_for(lambda: timelines.touches(enrollment["lead_id"]), what="the first touch")[0]

    # Then the variant sent is the one the lead's hash assigns, every time
    from nurture.wiring import get_config

    step = next(t for t in get_config().tracks if t.id == TRACK).steps[0]
    assert first["variant"] == assign_variant(enrollment["lead_id"], step)
    assert first["variant"] == assign_variant(enrollment["lead_id"], step)


def test_a_holdout_lead_receives_nothing(timelines):
    # Given a lead that falls in the track's 10% holdout
    from nurture.ingest.consumer import lead_id_for

    user = next(f"hold{n}" for n in range(500) if bucket("holdout", TRACK, lead_id_for(f"user#hold{n}")) < 0.1)

    # When it becomes warm
    timelines.track(*_warm_events(user))
    time.sleep(1.5)

    # Then it is enrolled as holdout, with no timeline and no touch
    (enrollment,) = timelines.enrollments()
    assert enrollment["status"] == "holdout"
    assert timelines.executions() == []
    assert timelines.touches() == []


def test_duplicate_enrollment_events_start_one_execution(timelines):
    # Given the became_warm event for a lead
    timelines.track(*_warm_events(_user_outside_holdout("dup")))
    (event,) = [e for e in timelines.deployed.bus_events() if e["detail-type"] == "lead.became_warm"]

    # When EventBridge delivers it twice more
    timelines.functions["EnrollFunction"](event, None)
    timelines.functions["EnrollFunction"](event, None)

    # Then there is one enrollment and one execution
    assert len(timelines.enrollments()) == 1
    assert len(timelines.executions()) == 1


@pytest.fixture
def unhurried_timelines(deployed):
    """Three real seconds a simulated day: a second of scheduling lag on a busy
    machine is eight simulated hours, not three days."""
    harness = Timelines(deployed, seconds_per_day=3.0).start()
    yield harness
    harness.stop()


def test_a_pricing_view_gets_a_follow_up_within_hours(unhurried_timelines):
    timelines = unhurried_timelines
    # Given a known lead that is not warm
    user = _user_outside_holdout("pia")
    timelines.track(_identify(user))

    # When it views the pricing page
    viewed_at = timelines.clock.timestamp()
    timelines.track({"type": "page", "userId": user, "messageId": f"p-{user}", "properties": {"path": "/pricing"}})

    # Then the pricing follow-up track emails it (within its business hours) and
    # adds it to the pricing retargeting audience
    (enrollment,) = timelines.enrollments()
    assert enrollment["track_id"] == "pricing-follow-up"
    timelines.finished(enrollment["enrollment_id"], timeout=30)
    email, ad = timelines.touches(enrollment["lead_id"])
    assert (email["step_id"], email["content_id"]) == ("pricing-proof", "case-study-fintech")
    # ... at the first moment the contact policy allowed after the step was
    # decided, give or take the simulated hours a few real milliseconds are
    # worth at this speed: the decision lags enrolling, and the send lags the
    # wake-up, by at most half a simulated day each. (A decision that misses a
    # Friday's window waits for Monday, so "allowed + a day" is not the bound.)
    from zoneinfo import ZoneInfo

    from nurture.timelines.decisions import next_allowed

    policy, zone = wiring.get_config().policy, ZoneInfo("America/New_York")
    latest = next_allowed(enrollment["started_at"] + DAY / 2, policy, zone) + DAY / 2
    assert viewed_at <= email["at"] <= latest
    assert [m["audience"] for m in timelines.queued("AudienceQueue")] == ["pricing-visitors"]
    assert ad["channel"] == "retargeting"
