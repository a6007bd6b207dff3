"""The nurture timeline's pure decisions: when a step is due in the lead's own
time zone, the contact policy, what `decide` does when a timeline wakes,
content choice, experiment and holdout bucketing, and enrollment rules.

Dates are in the week of Monday 2 June 2025 (no DST change): see timeline_builders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nurture.core.domain import Touch
from nurture.timelines.decisions import (
    DAY,
    assign_variant,
    choose_content,
    decide,
    frequency_clear_at,
    in_holdout,
    lead_zone,
    matching_track,
    may_enroll,
    next_allowed,
    schedule,
)
from tests.unit.timeline_builders import (
    FRIDAY,
    MONDAY,
    NEW_YORK,
    NEXT_MONDAY,
    SATURDAY,
    SUNDAY,
    THURSDAY,
    TOKYO,
    TUESDAY,
    UTC_ZONE,
    WEDNESDAY,
    a_lead,
    a_policy,
    a_step,
    a_track,
    an_email_touch,
    an_enrollment,
    an_experiment,
    june,
    local,
    shipped_track,
    with_tracks,
)

POLICY = a_policy()


def wall(timestamp: float, zone=NEW_YORK) -> tuple[str, str]:
    """(weekday, HH:MM) of `timestamp` in `zone`."""
    moment = local(timestamp, zone)
    return moment.strftime("%A"), moment.strftime("%H:%M")


# --- schedule: when a step is due --------------------------------------------------------


def test_step_is_due_after_its_days_at_its_local_time():
    # Given a step sent two days later at 10:00, scheduled on Monday at 09:00 New York time
    step = a_step(after_days=2, at=(10, 0))

    # When it is scheduled
    due = schedule(june(MONDAY, 9), step, NEW_YORK)

    # Then it is due on Wednesday at 10:00 New York time
    assert due == june(WEDNESDAY, 10)


def test_step_waits_at_least_its_days_before_its_local_time():
    # Given a step sent two days later at 10:00, scheduled on Monday at 11:00
    step = a_step(after_days=2, at=(10, 0))

    # When it is scheduled
    due = schedule(june(MONDAY, 11), step, NEW_YORK)

    # Then Wednesday 10:00 would be less than two days: it is due on Thursday at 10:00
    assert due == june(THURSDAY, 10)


def test_step_at_a_time_already_past_today_is_due_tomorrow():
    # Given a step sent at 10:00 with no delay, scheduled on Monday at 11:00
    step = a_step(after_days=0, at=(10, 0))

    # When it is scheduled
    due = schedule(june(MONDAY, 11), step, NEW_YORK)

    # Then 10:00 has passed today, so it is due on Tuesday at 10:00
    assert due == june(TUESDAY, 10)


def test_step_at_exactly_its_time_is_due_now():
    # Given a step sent at 10:00 with no delay, scheduled on Monday at exactly 10:00
    step = a_step(after_days=0, at=(10, 0))

    # When it is scheduled
    due = schedule(june(MONDAY, 10), step, NEW_YORK)

    # Then it is due at once
    assert due == june(MONDAY, 10)


def test_business_day_step_falling_on_the_weekend_moves_to_monday():
    # Given a business-day step sent one day later at 10:00, scheduled on Friday at 16:00
    step = a_step(after_days=1, at=(10, 0), business_days=True)

    # When it is scheduled
    due = schedule(june(FRIDAY, 16), step, NEW_YORK)

    # Then Saturday and Sunday are skipped: Monday at 10:00 local
    assert wall(due) == ("Monday", "10:00")
    assert due == june(NEXT_MONDAY, 10)


def test_step_not_limited_to_business_days_may_fall_on_the_weekend():
    # Given the same step, allowed on any day
    step = a_step(after_days=1, at=(10, 0), business_days=False)

    # When it is scheduled on Friday at 16:00
    due = schedule(june(FRIDAY, 16), step, NEW_YORK)

    # Then it is due on Sunday at 10:00 (Saturday 10:00 had passed by Saturday 16:00)
    assert due == june(SUNDAY, 10)


def test_step_time_is_in_the_leads_own_zone():
    # Given a lead in Tokyo and a step sent at 10:00
    lead = a_lead(profile={"timezone": "Asia/Tokyo"})
    step = a_step(after_days=1, at=(10, 0))

    # When it is scheduled from Monday 10:00 in New York (Monday 23:00 in Tokyo)
    due = schedule(june(MONDAY, 10), step, lead_zone(lead, POLICY))

    # Then it is due at 10:00 in Tokyo, on Wednesday there
    assert wall(due, TOKYO) == ("Wednesday", "10:00")


def test_lead_zone_comes_from_the_leads_profile():
    # Given a lead whose profile says Asia/Tokyo
    lead = a_lead(profile={"timezone": "Asia/Tokyo"})

    # When its zone is resolved
    zone = lead_zone(lead, POLICY)

    # Then it is Tokyo, not the policy's New York
    assert zone.key == "Asia/Tokyo"


def test_lead_without_a_zone_gets_the_policys():
    # Given a lead whose time zone is unknown
    lead = a_lead()

    # When its zone is resolved
    zone = lead_zone(lead, POLICY)

    # Then the policy's zone is used
    assert zone.key == "America/New_York"


@pytest.mark.parametrize("bad_zone", ["Mars/Olympus_Mons", "../../etc/passwd", "", 42])
def test_lead_with_an_invalid_zone_gets_the_policys(bad_zone):
    # Given a lead whose profile carries a zone that does not exist
    lead = a_lead(profile={"timezone": bad_zone})

    # When its zone is resolved
    zone = lead_zone(lead, POLICY)

    # Then the policy's zone is used instead of failing
    assert zone.key == "America/New_York"


def test_invalid_lead_and_policy_zones_fall_back_to_utc():
    # Given a lead and a (hand-built) policy whose zones both do not exist
    lead = a_lead(profile={"timezone": "Nowhere/Land"})

    # When its zone is resolved
    zone = lead_zone(lead, a_policy(timezone="Atlantis/Capital"))

    # Then UTC is used
    assert zone.key == "UTC"


# --- next_allowed: quiet hours and business days ---------------------------------------------


def test_evening_inside_quiet_hours_waits_for_the_morning():
    # Given Monday 20:00, inside quiet hours 19:00-08:00
    # When the next allowed moment is asked for
    allowed = next_allowed(june(MONDAY, 20), POLICY, NEW_YORK)

    # Then it is Tuesday 08:00 (quiet hours span midnight)
    assert allowed == june(TUESDAY, 8)


def test_early_morning_inside_quiet_hours_waits_until_they_end_that_day():
    # Given Tuesday 03:00, after midnight but still quiet
    # When the next allowed moment is asked for
    allowed = next_allowed(june(TUESDAY, 3), POLICY, NEW_YORK)

    # Then it is 08:00 the same day
    assert allowed == june(TUESDAY, 8)


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (18, 59, june(MONDAY, 18, 59)),  # last allowed minute
        (19, 0, june(TUESDAY, 8)),  # quiet hours start
        (7, 59, june(MONDAY, 8)),  # last quiet minute
        (8, 0, june(MONDAY, 8)),  # quiet hours over
    ],
)
def test_quiet_hours_boundaries(hour, minute, expected):
    # Given a moment on Monday at the edge of quiet hours 19:00-08:00
    # When the next allowed moment is asked for
    allowed = next_allowed(june(MONDAY, hour, minute), POLICY, NEW_YORK)

    # Then quiet hours include their start and exclude their end
    assert allowed == expected


def test_allowed_moment_is_unchanged():
    # Given Tuesday 10:00, a business day outside quiet hours
    # When the next allowed moment is asked for
    allowed = next_allowed(june(TUESDAY, 10, 17), POLICY, NEW_YORK)

    # Then it is that moment itself
    assert allowed == june(TUESDAY, 10, 17)


def test_friday_evening_waits_for_monday_morning():
    # Given Friday 20:00: quiet, and the next morning is a Saturday
    # When the next allowed moment is asked for
    allowed = next_allowed(june(FRIDAY, 20), POLICY, NEW_YORK)

    # Then the weekend is skipped: Monday 08:00
    assert allowed == june(NEXT_MONDAY, 8)


def test_weekend_afternoon_waits_for_monday_morning():
    # Given Saturday 12:00, outside quiet hours but not a business day
    # When the next allowed moment is asked for
    allowed = next_allowed(june(SATURDAY, 12), POLICY, NEW_YORK)

    # Then it is Monday when quiet hours end
    assert allowed == june(NEXT_MONDAY, 8)


def test_weekend_is_allowed_when_the_policy_does_not_require_business_days():
    # Given a policy that allows weekends
    policy = a_policy(business_days_only=False)

    # When the next allowed moment after Saturday 12:00 is asked for
    allowed = next_allowed(june(SATURDAY, 12), policy, NEW_YORK)

    # Then it is Saturday 12:00 itself
    assert allowed == june(SATURDAY, 12)


def test_quiet_hours_within_one_day():
    # Given quiet hours over lunch, 12:00-13:00
    policy = a_policy(quiet_from=(12, 0), quiet_to=(13, 0))

    # When the next allowed moments after 12:30 and 18:00 are asked for
    during, after = (next_allowed(june(MONDAY, h, m), policy, NEW_YORK) for h, m in ((12, 30), (18, 0)))

    # Then lunch waits until 13:00 and the evening is allowed
    assert (during, after) == (june(MONDAY, 13), june(MONDAY, 18))


def test_same_instant_is_quiet_in_new_york_and_allowed_in_tokyo():
    # Given Monday 20:00 in New York, which is Tuesday 09:00 in Tokyo
    instant = june(MONDAY, 20, zone=NEW_YORK)
    assert wall(instant, TOKYO) == ("Tuesday", "09:00")

    # When the next allowed moment is asked for in each lead's zone
    new_york = next_allowed(instant, POLICY, NEW_YORK)
    tokyo = next_allowed(instant, POLICY, TOKYO)

    # Then the New York lead waits until its 08:00 and the Tokyo lead may be mailed now
    assert new_york == june(TUESDAY, 8, zone=NEW_YORK)
    assert tokyo == instant


# --- frequency_clear_at: at most 2 marketing emails per 7 days ---------------------------------


def test_one_recent_email_leaves_room_for_another():
    # Given one marketing email on Monday
    now = june(WEDNESDAY, 10)

    # When the cap is checked on Wednesday
    clear = frequency_clear_at(now, [june(MONDAY, 10)], POLICY)

    # Then the lead may be mailed now
    assert clear == now


def test_two_recent_emails_block_until_the_oldest_leaves_the_window():
    # Given marketing emails on Monday 10:00 and Wednesday 10:00
    sent = [june(WEDNESDAY, 10), june(MONDAY, 10)]

    # When the cap is checked on Friday
    clear = frequency_clear_at(june(FRIDAY, 10), sent, POLICY)

    # Then the next email may go seven days after the oldest one
    assert clear == june(MONDAY, 10) + 7 * DAY


def test_three_recent_emails_block_until_only_one_is_left_in_the_window():
    # Given three marketing emails this week (a cap lowered after they were sent)
    sent = [june(MONDAY, 10), june(TUESDAY, 10), june(WEDNESDAY, 10)]

    # When the cap is checked on Thursday
    clear = frequency_clear_at(june(THURSDAY, 10), sent, POLICY)

    # Then it clears when the second oldest leaves the window
    assert clear == june(TUESDAY, 10) + 7 * DAY


def test_emails_older_than_the_window_do_not_count():
    # Given two marketing emails, the older exactly seven days before now
    now = june(NEXT_MONDAY, 10)
    sent = [june(MONDAY, 10), june(WEDNESDAY, 10)]
    assert now - sent[0] == 7 * DAY

    # When the cap is checked
    clear = frequency_clear_at(now, sent, POLICY)

    # Then only one is inside the window, so the lead may be mailed now
    assert clear == now


# --- decide: exits ------------------------------------------------------------------------------


@pytest.fixture
def revenue_teams(config):
    return shipped_track(config, "mql-revenue-teams")


def test_lead_in_an_exit_lifecycle_stage_exits(config, revenue_teams):
    # Given a lead that became hot while in the revenue-teams track
    lead = a_lead(lifecycle="hot")
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then it exits and the enrollment records why and when
    assert (decision.action, decision.reason) == ("exit", "lead became hot")
    assert (enrollment.status, enrollment.exit_reason, enrollment.ended_at) == (
        "exited",
        "lead became hot",
        june(MONDAY, 10),
    )


@pytest.mark.parametrize("consent", ["unsubscribed", "bounced", "complained"])
def test_lead_no_longer_subscribed_exits(config, revenue_teams, consent):
    # Given a lead who can no longer be mailed
    lead = a_lead(consent=consent)
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then it exits, naming the consent
    assert (decision.action, decision.reason) == ("exit", f"lead {consent}")
    assert enrollment.status == "exited"


def test_lead_reaching_the_tracks_goal_exits(config, revenue_teams):
    # Given a lead who requested a demo since it was enrolled (a goal of the track)
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))

    # When the timeline wakes
    decision = decide(
        enrollment,
        lead,
        revenue_teams,
        config,
        june(MONDAY, 10),
        touches=[],
        goal_events={"Demo Requested", "Webinar Attended"},
    )

    # Then it exits as a goal reached
    assert (decision.action, decision.reason) == ("exit", "goal reached: Demo Requested")
    assert enrollment.status == "exited"


def test_event_that_is_not_a_goal_of_the_track_does_not_exit(config, revenue_teams):
    # Given a lead who attended a webinar (not a goal of this track)
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))

    # When the timeline wakes
    decision = decide(
        enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events={"Webinar Attended"}
    )

    # Then the timeline carries on
    assert decision.action == "email"


def test_merged_lead_exits(config, revenue_teams):
    # Given a lead merged into another one
    lead = a_lead(merged_into="lead-survivor")
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then it exits
    assert (decision.action, decision.reason) == ("exit", "lead merged")


def test_waking_an_enrollment_that_already_ended_keeps_its_outcome(config, revenue_teams):
    # Given an enrollment stopped on Monday because the lead became hot
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))
    enrollment.status, enrollment.exit_reason, enrollment.ended_at = "exited", "lead became hot", june(MONDAY, 12)

    # When its timeline wakes once more on Tuesday (an Advance already in flight)
    decision = decide(enrollment, lead, revenue_teams, config, june(TUESDAY, 10), touches=[], goal_events=set())

    # Then it exits without rewriting why and when the enrollment ended
    assert decision.action == "exit"
    assert (enrollment.status, enrollment.exit_reason, enrollment.ended_at) == (
        "exited",
        "lead became hot",
        june(MONDAY, 12),
    )


# --- decide: waiting ---------------------------------------------------------------------------


def test_step_not_yet_due_waits_until_it_is(config, revenue_teams):
    # Given an enrollment whose first step is due on Tuesday at 10:00
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 11), due_at=june(TUESDAY, 10))

    # When the timeline wakes on Monday at 11:00
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 11), touches=[], goal_events=set())

    # Then it waits until the step is due, without touching the lead
    assert (decision.action, decision.wake_at, decision.step_id) == ("wait", june(TUESDAY, 10), "guide")
    assert (enrollment.step, enrollment.pending, enrollment.status) == (0, None, "active")


def test_email_due_in_quiet_hours_waits_for_the_leads_morning(config, revenue_teams):
    # Given an email step that became due while the lead slept (Monday 20:00 New York)
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9), due_at=june(MONDAY, 10))

    # When the timeline wakes at 20:00
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 20), touches=[], goal_events=set())

    # Then the email waits until quiet hours end in the lead's zone
    assert (decision.action, decision.wake_at) == ("wait", june(TUESDAY, 8))
    assert decision.reason == "step guide deferred by the contact policy"
    assert (enrollment.step, enrollment.pending) == (0, None)


def test_quiet_hours_are_the_leads_own_not_the_policys(config, revenue_teams):
    # Given a Tokyo lead and a due email step, at Monday 07:00 UTC (16:00 Tokyo, 03:00 New York)
    lead = a_lead(profile={"timezone": "Asia/Tokyo"})
    now = june(MONDAY, 7, zone=UTC_ZONE)
    enrollment = an_enrollment(revenue_teams, lead, started_at=now - DAY)

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, now, touches=[], goal_events=set())

    # Then the email goes now: it is afternoon for the lead although New York is asleep
    assert decision.action == "email"


def test_email_over_the_frequency_cap_waits_until_the_oldest_leaves_the_window(config, revenue_teams):
    # Given two marketing emails on Monday and Wednesday 10:00 from another track
    lead = a_lead()
    touches = [an_email_touch(june(MONDAY, 10), "blog-forecast-misses"), an_email_touch(june(WEDNESDAY, 10), None)]
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(THURSDAY, 9))

    # When a step is due on Friday at 10:00
    decision = decide(enrollment, lead, revenue_teams, config, june(FRIDAY, 10), touches=touches, goal_events=set())

    # Then it waits until seven days after Monday's email
    assert (decision.action, decision.wake_at) == ("wait", june(NEXT_MONDAY, 10))
    assert decision.reason == "step guide deferred by the contact policy"


def test_frequency_cap_clearing_on_a_weekend_waits_for_the_next_allowed_moment(config, revenue_teams):
    # Given marketing emails on Sunday 12:00 (the window clears next Sunday) and Wednesday
    lead = a_lead()
    touches = [an_email_touch(june(1, 12), None), an_email_touch(june(WEDNESDAY, 10), None)]
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(THURSDAY, 9))

    # When a step is due on Friday at 10:00
    decision = decide(enrollment, lead, revenue_teams, config, june(FRIDAY, 10), touches=touches, goal_events=set())

    # Then it waits past the weekend to Monday when quiet hours end
    assert (decision.action, decision.wake_at) == ("wait", june(NEXT_MONDAY, 8))


def test_only_marketing_emails_count_towards_the_cap(config, revenue_teams):
    # Given two transactional emails and two retargeting hand-offs this week
    lead = a_lead()
    touches = [
        an_email_touch(june(MONDAY, 10), None, klass="transactional"),
        an_email_touch(june(TUESDAY, 10), None, klass="transactional"),
        Touch(lead.lead_id, "other-track-lead-ana-1", "other-track", "ads-1", "retargeting", june(WEDNESDAY, 10)),
        Touch(lead.lead_id, "other-track-lead-ana-1", "other-track", "ads-2", "retargeting", june(THURSDAY, 10)),
    ]
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(THURSDAY, 9))

    # When a step is due on Friday at 10:00
    decision = decide(enrollment, lead, revenue_teams, config, june(FRIDAY, 10), touches=touches, goal_events=set())

    # Then the email goes now
    assert decision.action == "email"


def test_a_lead_that_chose_a_weekly_frequency_gets_at_most_one_email_a_week(config, revenue_teams):
    # Given a lead that chose "at most one email a week" and got one on Monday
    lead = a_lead(preferences={"frequency": "weekly"})
    touches = [an_email_touch(june(MONDAY, 10), "blog-forecast-misses")]
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(TUESDAY, 9))

    # When a step is due on Wednesday (the policy alone would allow a second email)
    decision = decide(enrollment, lead, revenue_teams, config, june(WEDNESDAY, 10), touches=touches, goal_events=set())

    # Then it waits a week after Monday's email
    assert (decision.action, decision.wake_at) == ("wait", june(NEXT_MONDAY, 10))


def test_a_paused_lead_gets_no_email_until_its_pause_ends(config, revenue_teams):
    # Given a lead that paused its email until next Monday 00:00 UTC
    lead = a_lead(preferences={"paused_until": june(NEXT_MONDAY, 0, zone=UTC_ZONE)})
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9))

    # When a step is due on Wednesday
    decision = decide(enrollment, lead, revenue_teams, config, june(WEDNESDAY, 10), touches=[], goal_events=set())

    # Then it waits for the end of the pause and the lead's next allowed moment (08:00 New York)
    assert (decision.action, decision.wake_at) == ("wait", june(NEXT_MONDAY, 8))
    assert decision.reason == "step guide paused by the lead"


def test_a_lead_that_turned_a_topic_off_is_never_sent_content_about_it(config, revenue_teams):
    # Given a lead most interested in forecasting, and a step from the whole library
    interested = a_lead(buying_stage="solution_exploration", interests={"forecasting": [3.0, june(MONDAY, 9)]})
    track = replace(revenue_teams, steps=(a_step(content=()),))

    def topics_chosen(lead):
        enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 9))
        decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())
        assert decision.action == "email"
        return next(tag for tag in config.content if tag.id == decision.content_id).topics

    assert "forecasting" in topics_chosen(interested)

    # When it turns forecasting off on the preference page
    turned_off = replace(interested, preferences={"topics_off": ["forecasting"]})

    # Then the piece chosen for it is about something else
    assert "forecasting" not in topics_chosen(turned_off)


def test_a_lead_that_turned_off_a_tracks_topic_leaves_the_track(config):
    # Given a lead in the pricing follow-up that turned pricing off
    pricing = shipped_track(config, "pricing-follow-up")
    lead = a_lead(lifecycle="lead", preferences={"topics_off": ["pricing"]})
    enrollment = an_enrollment(pricing, lead, started_at=june(MONDAY, 9))

    # When the timeline wakes
    decision = decide(enrollment, lead, pricing, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then it exits, saying why
    assert (decision.action, decision.reason) == ("exit", "lead turned off the topic pricing")


def test_a_track_about_a_topic_the_lead_turned_off_does_not_enroll_it(config):
    # Given a lead that turned pricing off
    lead = a_lead(lifecycle="lead", preferences={"topics_off": ["pricing"]})
    trigger = next(t for t in shipped_track(config, "pricing-follow-up").triggers)

    # When its pricing visit would trigger the pricing follow-up
    # Then no track about pricing takes it
    assert matching_track(config, trigger, lead) is None
    assert matching_track(config, trigger, a_lead(lifecycle="lead")).id == "pricing-follow-up"


# --- decide: touching the lead ----------------------------------------------------------------


def test_email_touch_picks_the_pool_piece_that_fits_the_buying_stage(config, revenue_teams):
    # Given a lead exploring solutions, and a step whose pool is [guide (solution_exploration), blog (problem)]
    lead = a_lead(buying_stage="solution_exploration")
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the guide goes out, and the enrollment waits for the touch to be handed off
    assert (decision.action, decision.step_id, decision.content_id) == ("email", "guide", "wp-revenue-analytics-guide")
    assert enrollment.pending == {"step": 0, "step_id": "guide", "channel": "email"}


def test_email_touch_for_an_earlier_stage_picks_the_earlier_piece(config, revenue_teams):
    # Given a lead still identifying its problem
    lead = a_lead(buying_stage="problem_identification")
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))

    # When the guide step is due
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the blog post for that stage goes out, not the guide listed first
    assert decision.content_id == "blog-why-leads-go-cold"


def test_email_touch_never_repeats_a_piece_the_lead_already_received(config, revenue_teams):
    # Given a lead who received the guide from another track last week
    lead = a_lead(buying_stage="solution_exploration")
    touches = [an_email_touch(june(MONDAY, 10) - 7 * DAY, "wp-revenue-analytics-guide")]
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))

    # When the guide step is due
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=touches, goal_events=set())

    # Then the other piece in the pool goes out
    assert (decision.action, decision.content_id) == ("email", "blog-why-leads-go-cold")


def test_email_touch_skips_pieces_for_other_personas(config):
    # Given a finance lead and a step whose pool starts with a piece only for RevOps and IT
    lead = a_lead(buying_stage="requirements_building", profile={"persona": "finance"})
    track = a_track(steps=(a_step(content=("integrations-page", "security-whitepaper")),))
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the piece for finance goes out
    assert decision.content_id == "security-whitepaper"


@pytest.mark.parametrize(
    ("industry", "expected"), [("Fintech", "case-study-fintech"), ("Software", "security-whitepaper")]
)
def test_email_touch_skips_pieces_for_other_industries(config, industry, expected):
    # Given a finance lead validating, and a pool led by a fintech-only case study
    lead = a_lead(buying_stage="validation", profile={"persona": "finance", "industry": industry})
    track = a_track(steps=(a_step(content=("case-study-fintech", "security-whitepaper")),))
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the case study goes only to a fintech lead (industry compared without case)
    assert decision.content_id == expected


def test_email_touch_from_the_whole_library_fits_the_stage_persona_and_industry(config):
    # Given a one-step track with no pool, and a fintech finance lead at validation
    lead = a_lead(buying_stage="validation", profile={"persona": "finance", "industry": "fintech"})
    track = a_track(steps=(a_step(),))

    # When the step is due, again and again, each time with the pieces chosen before already sent
    chosen: list[str] = []
    while len(chosen) < 20:
        touches = [an_email_touch(june(MONDAY, 9) - 30 * DAY, content_id) for content_id in chosen]
        enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))
        decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=touches, goal_events=set())
        if decision.action != "email":
            break
        chosen.append(decision.content_id)

    # Then only sendable pieces within one stage that suit a finance lead in fintech go out, best first, each once
    assert chosen == ["roi-calculator", "security-whitepaper", "case-study-fintech", "business-case-template"]


def test_email_touch_carries_the_variant_and_its_subject(config, revenue_teams):
    # Given the guide step's subject-line experiment
    lead = a_lead()
    variant = assign_variant(lead.lead_id, revenue_teams.steps[0])
    subjects = {v.id: v.subject for v in revenue_teams.steps[0].variants}
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the email uses the lead's variant and its subject, remembered on the enrollment
    assert (decision.variant, decision.subject) == (variant, subjects[variant])
    assert enrollment.variants == {"mql-guide-subject": variant}


def test_email_touch_without_a_subject_uses_the_content_title(config):
    # Given a step with neither a subject nor an experiment
    lead = a_lead(buying_stage="problem_identification")
    track = a_track(steps=(a_step(content=("blog-why-leads-go-cold",)),))
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the piece's title is the subject
    assert (decision.variant, decision.subject) == (None, "Why 70% of your leads go cold")


def test_touch_schedules_the_wake_for_the_following_step(config, revenue_teams):
    # Given the guide step due on Monday at 10:00; the retargeting step follows one business day later
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))

    # When the guide goes out
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the timeline wakes on Tuesday 10:00 for the next step
    assert decision.wake_at == june(TUESDAY, 10)
    assert enrollment.due_at == june(TUESDAY, 10)


def test_pending_touch_is_completed_on_the_next_wake(config, revenue_teams):
    # Given the guide was handed to the email channel on Monday
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))
    first = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # When the timeline wakes for the next step
    decide(enrollment, lead, revenue_teams, config, first.wake_at, touches=[], goal_events=set())

    # Then the guide step is done and the enrollment moved on to the retargeting step
    assert enrollment.step == 1
    assert enrollment.status == "active"


def test_step_after_a_touch_runs_when_the_timeline_wakes_for_it(config, revenue_teams):
    # Given the guide sent on Monday 10:00 and the retargeting step one day later (the wake is Tuesday 10:00)
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))
    first = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())
    assert first.wake_at == june(TUESDAY, 10)

    # When the timeline wakes on Tuesday 10:00
    decision = decide(enrollment, lead, revenue_teams, config, first.wake_at, touches=[], goal_events=set())

    # Then the retargeting step runs then, one day after the guide, not on Wednesday
    assert (decision.action, decision.step_id) == ("retargeting", "retarget-platform")


def test_retargeting_step_hands_the_lead_to_its_audience(config, revenue_teams):
    # Given an enrollment at the retargeting step, due now, for a lead who last read the pricing page
    lead = a_lead(consumed=["wp-revenue-analytics-guide", "pricing-page"])
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10), due_at=june(TUESDAY, 10), step=1)

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, june(TUESDAY, 10), touches=[], goal_events=set())

    # Then the lead is handed to the retargeting audience; no content is claimed,
    # so an ad never uses up a piece the lead could still be emailed
    assert (decision.action, decision.step_id, decision.audience) == (
        "retargeting",
        "retarget-platform",
        "nurture-revenue-teams",
    )
    assert decision.content_id is None
    assert enrollment.pending == {"step": 1, "step_id": "retarget-platform", "channel": "retargeting"}


def test_retargeting_step_ignores_quiet_hours(config, revenue_teams):
    # Given the retargeting step due on Saturday night
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10), due_at=june(SATURDAY, 22), step=1)

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, june(SATURDAY, 22), touches=[], goal_events=set())

    # Then ads are not emails: the hand-off happens now
    assert decision.action == "retargeting"


def test_sales_call_step_hands_the_lead_to_sales(config, revenue_teams):
    # Given an enrollment at the last step, a sales call, due now
    lead = a_lead(consumed=["webinar-pipeline-hygiene"])
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10), due_at=june(FRIDAY, 10), step=4)

    # When the timeline wakes
    decision = decide(enrollment, lead, revenue_teams, config, june(FRIDAY, 10), touches=[], goal_events=set())

    # Then sales gets the lead with a reason grounded in what it consumed; with
    # no step after it the timeline comes straight back
    assert (decision.action, decision.step_id, decision.audience) == ("sales_call", "sales-check-in", None)
    assert decision.content_id is None
    assert decision.reason == (
        "Engaged with Pipeline hygiene: a RevOps playbook during nurture; offer a forecast health check"
    )
    assert decision.wake_at == june(FRIDAY, 10)


def test_a_touch_wakes_the_timeline_when_the_next_email_can_go_not_when_it_is_due(config, revenue_teams):
    # Given a lead that paused its email until Wednesday noon next week, and
    # the retargeting step due Tuesday, whose following email (proof) falls
    # due four days later, on the next business day (Monday 10:00)
    lead = a_lead(preferences={"paused_until": june(NEXT_MONDAY + 2, 12)})
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10), due_at=june(TUESDAY, 10), step=1)

    # When the timeline wakes on Tuesday and hands the lead to retargeting
    decision = decide(enrollment, lead, revenue_teams, config, june(TUESDAY, 10), touches=[], goal_events=set())

    # Then the step stays due on Monday, but the timeline sleeps until the
    # pause ends: no wake only to be deferred
    assert (decision.action, decision.ends) == ("retargeting", False)
    assert enrollment.due_at == june(NEXT_MONDAY, 10)
    assert decision.wake_at == june(NEXT_MONDAY + 2, 12)


def test_an_email_touch_counts_itself_toward_the_cap_of_the_next_wake(config, revenue_teams):
    # Given a lead emailed by another track on Tuesday at 15:00, and this
    # track's proof email due Wednesday, its next email due six days later
    # (the following Tuesday at 14:00)
    lead = a_lead()
    other = Touch(lead.lead_id, "other-1", "other", "s1", "email", june(TUESDAY, 15), content_id="blog-forecast-misses")
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10), due_at=june(WEDNESDAY, 10), step=2)

    # When the proof email is decided
    decision = decide(enrollment, lead, revenue_teams, config, june(WEDNESDAY, 10), touches=[other], goal_events=set())

    # Then the next wake is when the cap (2 in 7 days), counting the proof
    # email, lets a third go: a week after the other track's, not at 14:00
    assert decision.action == "email"
    assert enrollment.due_at == june(NEXT_MONDAY + 1, 14)
    assert decision.wake_at == june(NEXT_MONDAY + 1, 15)


def test_the_last_steps_touch_ends_the_timeline_and_completes_the_enrollment(config, revenue_teams):
    # Given the last step (the sales call) is due
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10), due_at=june(FRIDAY, 10), step=4)

    # When the timeline wakes and hands it off
    decision = decide(enrollment, lead, revenue_teams, config, june(FRIDAY, 10), touches=[], goal_events=set())

    # Then the touch is the timeline's last state: it ends there, with no wake
    # after it, and the enrollment is completed with every step done
    assert (decision.action, decision.ends) == ("sales_call", True)
    assert decision.to_state("d", enrollment, lead)["end"] is True
    assert (enrollment.status, enrollment.exit_reason, enrollment.ended_at, enrollment.step) == (
        "completed",
        "all steps done",
        june(FRIDAY, 10),
        5,
    )


# --- decide: a step whose content is exhausted ---------------------------------------------------


def test_exhausted_step_is_skipped_and_reported(config):
    # Given a finance lead and a first step whose only piece is for RevOps and IT
    lead = a_lead(buying_stage="requirements_building", profile={"persona": "finance"})
    track = a_track(
        on_exhausted="skip",
        steps=(
            a_step("integrations", content=("integrations-page",)),
            a_step("security", after_days=2, at=(9, 0), content=("security-whitepaper",)),
        ),
    )
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the first step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then it is skipped, listed as exhausted, and the timeline waits two full days for the next step's 09:00
    assert (decision.action, decision.step_id, decision.wake_at) == ("wait", "security", june(THURSDAY, 9))
    assert decision.exhausted == ["integrations"]
    assert (enrollment.step, enrollment.status) == (1, "active")


def test_exhausted_step_skipped_straight_into_a_due_step_touches_with_it(config):
    # Given a track whose first step has nothing left for the lead and whose second step is due at once
    lead = a_lead(buying_stage="requirements_building", profile={"persona": "finance"})
    track = a_track(
        steps=(
            a_step("integrations", content=("integrations-page",)),
            a_step("security", content=("security-whitepaper",)),
        )
    )
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the first step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the second step's email goes out now, still reporting the exhausted step
    assert (decision.action, decision.step_id, decision.content_id) == ("email", "security", "security-whitepaper")
    assert decision.exhausted == ["integrations"]


def test_exhausted_step_exits_when_the_track_says_so(config):
    # Given a track that exits when it runs out of content
    lead = a_lead(buying_stage="requirements_building", profile={"persona": "finance"})
    track = a_track(
        on_exhausted="exit",
        steps=(
            a_step("integrations", content=("integrations-page",)),
            a_step("security", content=("security-whitepaper",)),
        ),
    )
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the first step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the enrollment exits, reporting the step
    assert (decision.action, decision.reason, decision.exhausted) == ("exit", "content exhausted", ["integrations"])
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "content exhausted")


def test_last_step_exhausted_completes_the_enrollment(config):
    # Given a one-step track whose only piece the lead already received
    lead = a_lead(buying_stage="problem_identification")
    track = a_track(steps=(a_step("only", content=("blog-why-leads-go-cold",)),))
    touches = [an_email_touch(june(MONDAY, 10) - 30 * DAY, "blog-why-leads-go-cold")]
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=touches, goal_events=set())

    # Then the step is skipped and nothing is left: the enrollment completes
    assert (decision.action, decision.reason, decision.exhausted) == ("exit", "all steps done", ["only"])
    assert enrollment.status == "completed"


# --- the decision as the state machine sees it ----------------------------------------------------


def test_decision_state_carries_the_touch_for_the_channel(config, revenue_teams):
    # Given an email decision for the guide step
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 10))
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 10), touches=[], goal_events=set())

    # When it is turned into the state machine's $.decision
    state = decision.to_state("mql-revenue-teams-lead-ana-1:1", enrollment, lead)

    # Then it routes on the action, waits until an ISO time in UTC and carries the touch
    assert state["id"] == "mql-revenue-teams-lead-ana-1:1"
    assert (state["action"], state["wake_at"]) == ("email", "2025-06-03T14:00:00Z")
    assert state["touch"] == {
        "enrollment_id": "mql-revenue-teams-lead-ana-1",
        "lead_id": "lead-ana",
        "track_id": "mql-revenue-teams",
        "step_id": "guide",
        "channel": "email",
        "content_id": "wp-revenue-analytics-guide",
        "variant": decision.variant,
        "subject": decision.subject,
        "audience": None,
        "decided_at": june(MONDAY, 10),
        "note": "step guide",
    }


def test_wait_decision_state_has_no_touch(config, revenue_teams):
    # Given a wait decision
    lead = a_lead()
    enrollment = an_enrollment(revenue_teams, lead, started_at=june(MONDAY, 9), due_at=june(TUESDAY, 10))
    decision = decide(enrollment, lead, revenue_teams, config, june(MONDAY, 11), touches=[], goal_events=set())

    # When it is turned into the state machine's $.decision
    state = decision.to_state("e:1", enrollment, lead)

    # Then there is nothing to hand to a channel
    assert (state["action"], state["touch"], state["wake_at"]) == ("wait", None, "2025-06-03T14:00:00Z")


# --- experiments and holdouts -------------------------------------------------------------------


def test_variant_is_stable_for_a_lead_and_experiment():
    # Given a two-variant experiment
    step = a_step(**an_experiment("subject-test", plain=1, question=1))

    # When the same lead is assigned many times
    variants = {assign_variant("lead-ana", step) for _ in range(20)}

    # Then it always gets the same variant
    assert len(variants) == 1


def test_variant_differs_across_leads():
    # Given a two-variant experiment
    step = a_step(**an_experiment("subject-test", plain=1, question=1))

    # When forty leads are assigned
    variants = [assign_variant(f"lead-{n}", step) for n in range(40)]

    # Then both variants are in use
    assert set(variants) == {"plain", "question"}


def test_variant_assignment_differs_across_experiments():
    # Given two experiments with the same variants
    first = a_step(**an_experiment("first-test", a=1, b=1))
    second = a_step(**an_experiment("second-test", a=1, b=1))

    # When the same leads are assigned in both
    pairs = [(assign_variant(f"lead-{n}", first), assign_variant(f"lead-{n}", second)) for n in range(200)]

    # Then a lead's bucket in one experiment does not decide its bucket in the other
    assert any(a != b for a, b in pairs)


def test_variant_weights_are_honoured():
    # Given an experiment weighted 1:3
    step = a_step(**an_experiment("weighted-test", control=1, treatment=3))

    # When 10,000 leads are assigned
    variants = [assign_variant(f"lead-{n}", step) for n in range(10_000)]

    # Then about a quarter get the control
    assert variants.count("control") / len(variants) == pytest.approx(0.25, abs=0.02)


def test_step_without_an_experiment_has_no_variant():
    # Given a step with no experiment
    # When a lead is assigned
    # Then there is no variant
    assert assign_variant("lead-ana", a_step()) is None


def test_holdout_share_matches_the_tracks_holdout():
    # Given a track holding out 10%
    track = a_track(holdout=0.1)

    # When 10,000 leads are checked
    held = sum(in_holdout(f"lead-{n}", track) for n in range(10_000))

    # Then about 10% are held out
    assert held / 10_000 == pytest.approx(0.1, abs=0.01)


def test_holdout_is_stable_for_a_lead():
    # Given a track holding out 10%, and the first 100 leads' groups
    track = a_track(holdout=0.1)
    first = [in_holdout(f"lead-{n}", track) for n in range(100)]

    # When they are checked again
    again = [in_holdout(f"lead-{n}", track) for n in range(100)]

    # Then every lead is in the same group
    assert first == again


def test_track_without_a_holdout_holds_no_one_out():
    # Given a track with no holdout
    track = a_track(holdout=0.0)

    # When 1,000 leads are checked
    # Then none is held out
    assert not any(in_holdout(f"lead-{n}", track) for n in range(1_000))


# --- may_enroll: re-entry ------------------------------------------------------------------------


def ended(track, *, started_at: float, ended_at: float | None, seq: int = 1, status: str = "exited"):
    enrollment = an_enrollment(track, a_lead(), started_at=started_at, seq=seq)
    enrollment.status, enrollment.ended_at = status, ended_at
    return enrollment


def test_first_enrollment_is_allowed():
    # Given a track the lead was never in
    # When it may enroll
    # Then yes
    assert may_enroll(a_track(), [], june(MONDAY)) == (True, "first enrollment")


def test_lead_already_active_in_the_track_is_not_enrolled_again():
    # Given a lead active in a track that allows re-entry
    track = a_track(reentry_after_days=1, reentry_max_times=5)
    active = an_enrollment(track, a_lead(), started_at=june(MONDAY) - 30 * DAY)

    # When it may enroll a month later
    # Then no: it is already enrolled
    assert may_enroll(track, [active], june(MONDAY)) == (False, "already enrolled")


def test_track_that_never_re_enrolls_refuses_a_second_time():
    # Given a lead whose enrollment in a never-re-enter track ended a year ago
    track = a_track(reentry_after_days=None)
    previous = ended(track, started_at=june(MONDAY) - 400 * DAY, ended_at=june(MONDAY) - 365 * DAY)

    # When it may enroll again
    # Then no
    assert may_enroll(track, [previous], june(MONDAY)) == (False, "this track never re-enrolls")


def test_re_entry_before_the_waiting_period_is_refused():
    # Given a track allowing re-entry 120 days after the last enrollment ended, which was 119 days ago
    track = a_track(reentry_after_days=120, reentry_max_times=3)
    previous = ended(track, started_at=june(MONDAY) - 150 * DAY, ended_at=june(MONDAY) - 119 * DAY)

    # When it may enroll again
    # Then not yet
    assert may_enroll(track, [previous], june(MONDAY)) == (False, "re-entry only 120 days after the last enrollment")


def test_re_entry_after_the_waiting_period_is_allowed():
    # Given the same track, the last enrollment ended exactly 120 days ago
    track = a_track(reentry_after_days=120, reentry_max_times=3)
    previous = ended(track, started_at=june(MONDAY) - 150 * DAY, ended_at=june(MONDAY) - 120 * DAY)

    # When it may enroll again
    # Then yes, as a re-entry
    assert may_enroll(track, [previous], june(MONDAY)) == (True, "re-entry")


def test_re_entry_waits_from_when_the_last_enrollment_ended_not_started():
    # Given an enrollment that started 200 days ago but ended only 10 days ago
    track = a_track(reentry_after_days=120, reentry_max_times=3)
    previous = ended(track, started_at=june(MONDAY) - 200 * DAY, ended_at=june(MONDAY) - 10 * DAY)

    # When it may enroll again
    allowed, _ = may_enroll(track, [previous], june(MONDAY))

    # Then not yet
    assert allowed is False


def test_re_entry_stops_at_the_maximum_number_of_enrollments():
    # Given a track allowing 2 enrollments in all, and a lead enrolled twice long ago
    track = a_track(reentry_after_days=30, reentry_max_times=2)
    previous = [
        ended(track, started_at=june(MONDAY) - 400 * DAY, ended_at=june(MONDAY) - 390 * DAY, seq=1),
        ended(track, started_at=june(MONDAY) - 300 * DAY, ended_at=june(MONDAY) - 290 * DAY, seq=2),
    ]

    # When it may enroll a third time
    # Then no
    assert may_enroll(track, previous, june(MONDAY)) == (False, "already enrolled 2 times")


# --- matching_track -------------------------------------------------------------------------------


def test_highest_priority_matching_track_wins(config):
    # Given a RevOps A-fit lead: both warm-lead tracks would take it
    lead = a_lead(profile={"persona": "revops"}, fit_grade="A")

    # When a warm trigger looks for its track
    track = matching_track(config, "lead.became_warm", lead)

    # Then the revenue-teams track (priority 20) wins over everyone-else (priority 10)
    assert track.id == "mql-revenue-teams"


def test_lead_outside_a_tracks_audience_falls_to_the_next_track(config):
    # Given a finance lead, not in the revenue-teams audience
    lead = a_lead(profile={"persona": "finance"}, fit_grade="A")

    # When a warm trigger looks for its track
    track = matching_track(config, "lead.became_warm", lead)

    # Then the catch-all track takes it
    assert track.id == "mql-everyone-else"


def test_no_track_when_the_audience_does_not_match(config):
    # Given only the revenue-teams track, and a C-fit RevOps lead
    only_revenue_teams = with_tracks(config, shipped_track(config, "mql-revenue-teams"))
    lead = a_lead(profile={"persona": "revops"}, fit_grade="C")

    # When a warm trigger looks for its track
    # Then there is none
    assert matching_track(only_revenue_teams, "lead.became_warm", lead) is None


def test_no_track_listens_for_an_unknown_trigger(config):
    # Given a lead every warm-lead track would take
    lead = a_lead()

    # When a trigger no track listens for looks for its track
    # Then there is none
    assert matching_track(config, "form_submitted", lead) is None


def test_trigger_picks_the_track_listening_for_it(config):
    # Given a lead that became a customer
    lead = a_lead(lifecycle="customer")

    # When the customer trigger looks for its track
    track = matching_track(config, "lead.became_customer", lead)

    # Then it is customer onboarding
    assert track.id == "customer-onboarding"


# --- choose_content: interests ----------------------------------------------------------------------


def test_equally_fitting_pieces_are_tried_in_pool_order(config):
    # Given a RevOps lead exploring solutions, no interests, and two pieces for that stage
    lead = a_lead(buying_stage="solution_exploration")
    step = a_step(content=("wp-revenue-analytics-guide", "webinar-pipeline-hygiene"))

    # When content is chosen
    chosen = choose_content(step, lead, set(), config, june(MONDAY))

    # Then the first in the pool wins
    assert chosen.id == "wp-revenue-analytics-guide"


def test_topic_of_interest_wins_among_equally_fitting_pieces(config):
    # Given the same lead, recently interested in RevOps (a topic only the webinar covers)
    lead = a_lead(buying_stage="solution_exploration", interests={"revops": [2.0, june(MONDAY) - DAY]})
    step = a_step(content=("wp-revenue-analytics-guide", "webinar-pipeline-hygiene"))

    # When content is chosen
    chosen = choose_content(step, lead, set(), config, june(MONDAY))

    # Then the webinar wins
    assert chosen.id == "webinar-pipeline-hygiene"


def test_content_without_a_link_is_never_chosen(config):
    # Given a lead choosing a supplier; the pricing and comparison pages have no url (not sendable)
    lead = a_lead(buying_stage="supplier_selection", profile={"persona": "finance"})
    step = a_step(content=("pricing-page", "comparison-page"))

    # When content is chosen
    # Then there is none
    assert choose_content(step, lead, set(), config, june(MONDAY)) is None


def test_whole_library_leaves_out_pieces_two_stages_away(config):
    # Given a marketing leader identifying the problem, who received every piece for it within one stage;
    # the ROI calculator and business-case template suit it too, but are validation and consensus pieces
    lead = a_lead(buying_stage="problem_identification", profile={"persona": "marketing_leader"})
    sent = {"blog-why-leads-go-cold", "wp-revenue-analytics-guide", "product-tour"}

    # When content is chosen from the whole library
    chosen = choose_content(a_step(), lead, sent, config, june(MONDAY))

    # Then nothing two or more stages away is offered instead
    assert chosen is None


def test_fixed_pool_is_sent_even_far_from_the_buying_stage(config, revenue_teams):
    # Given the shipped track with its guide step's pool reduced to the ROI calculator (validation and later)
    guide = replace(revenue_teams.steps[0], content=("roi-calculator",))
    track = replace(revenue_teams, steps=(guide, *revenue_teams.steps[1:]))
    lead = a_lead(buying_stage="solution_exploration", profile={"persona": "sales_leader"})
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then a fixed pool is ranked by fit, not filtered by stage: the calculator goes out
    assert (decision.action, decision.content_id) == ("email", "roi-calculator")


def test_a_piece_the_lead_already_read_on_the_site_is_not_emailed(config):
    # Given a lead that downloaded the buyer's guide from the website
    lead = a_lead(consumed=["wp-revenue-analytics-guide"])
    track = a_track(steps=(a_step("guide", content=("wp-revenue-analytics-guide", "blog-why-leads-go-cold")),))
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When a step whose pool starts with that guide is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the next piece is sent instead
    assert (decision.action, decision.content_id) == ("email", "blog-why-leads-go-cold")


def test_an_exhausted_step_of_a_pausing_track_waits_and_looks_again(config):
    # Given a finance lead, and a pausing track whose only step has nothing for it
    lead = a_lead(buying_stage="requirements_building", profile={"persona": "finance"})
    track = a_track(on_exhausted="pause", steps=(a_step("integrations", content=("integrations-page",)),))
    enrollment = an_enrollment(track, lead, started_at=june(MONDAY, 10))

    # When the step is due
    decision = decide(enrollment, lead, track, config, june(MONDAY, 10), touches=[], goal_events=set())

    # Then the timeline waits a week on the same step, reporting the exhaustion
    assert (decision.action, decision.step_id, decision.exhausted) == ("wait", "integrations", ["integrations"])
    assert decision.wake_at == june(MONDAY, 10) + 7 * 86400
    assert (enrollment.step, enrollment.status) == (0, "active")
