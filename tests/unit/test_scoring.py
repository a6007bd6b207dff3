"""Two-axis scoring: fit grade, decaying engagement, buying stage, lifecycle."""

from __future__ import annotations

import itertools

import pytest

from nurture.core.domain import Lead
from nurture.core.profile import profile_updates
from nurture.scoring.scores import (
    consume_content,
    decayed,
    engagement_at,
    fit_reasons,
    grade_fit,
    lifecycle_events,
    next_lifecycle,
    score_event,
)
from tests.unit.builders import DAY, ICP_TRAITS, T0, page, track, tracking_event


def lead_with(email: str | None = "ana@globex.com", **traits) -> Lead:
    """A lead whose profile comes from `traits` as an identify would set it."""
    lead = Lead(lead_id="p-test", email=email)
    lead.profile.update(profile_updates(traits))
    return lead


def view(lead: Lead, path: str, at: float, config) -> list:
    return score_event(lead, tracking_event(page(path, anonymous_id="anon-1", at=at), received_at=at), config)


def read(lead: Lead, path: str, at: float, config) -> list[str]:
    return consume_content(lead, tracking_event(page(path, anonymous_id="anon-1", at=at), received_at=at), config)


def test_decay_halves_after_one_half_life(config):
    # Given 40 points earned at T0
    # When one half-life (30 days) has passed
    value = decayed(40.0, T0, T0 + config.half_life_seconds, config.half_life_seconds)

    # Then 20 are left
    assert value == pytest.approx(20.0)


def test_decay_never_runs_backwards(config):
    # Given points earned at T0
    # When read at an earlier time
    value = decayed(40.0, T0, T0 - DAY, config.half_life_seconds)

    # Then they are unchanged
    assert value == 40.0


def test_ideal_customer_is_graded_a(config):
    # Given a VP of Marketing at a 350-person US software company
    lead = lead_with(**ICP_TRAITS)

    # When fit is graded
    grade_fit(lead, config)

    # Then the lead is an A with the reasons that made it one
    assert lead.fit_grade == "A"
    assert lead.fit_score == 90
    assert {rule for rule, _ in fit_reasons(lead, config)} == {
        "target-industry",
        "mid-market-or-enterprise",
        "core-country",
        "decision-maker",
        "buyer-persona",
    }


def test_competitor_domain_is_graded_d(config):
    # Given the same profile at a competitor's domain
    lead = lead_with("analyst@pipelineiq.example", **ICP_TRAITS)

    # When fit is graded
    grade_fit(lead, config)

    # Then the competitor rule sinks it to D
    assert lead.fit_grade == "D"
    assert ("competitor", -100.0) in fit_reasons(lead, config)


def test_small_company_on_free_mail_is_graded_d(config):
    # Given a founder of a 10-person company using gmail
    lead = lead_with("founder@gmail.com", title="Founder", employees="1-20")

    # When fit is graded
    grade_fit(lead, config)

    # Then penalties outweigh seniority
    assert lead.fit_grade == "D"
    assert lead.fit_score == 20 - 15 - 20


@pytest.mark.parametrize(
    ("title", "seniority", "persona"),
    [
        ("VP of Marketing", "vp", "marketing_leader"),
        ("Director, Revenue Operations", "director", "revops"),
        ("Chief Revenue Officer", "executive", "sales_leader"),
        ("Senior Data Engineer", "individual", "it"),
        ("Sales Operations Manager", "manager", "revops"),
    ],
)
def test_persona_and_seniority_come_from_the_title(config, title, seniority, persona):
    # Given a lead with a job title
    lead = lead_with(title=title)

    # When fit is graded
    grade_fit(lead, config)

    # Then the first matching pattern of each kind is recorded
    assert (lead.profile["seniority"], lead.profile["persona"]) == (seniority, persona)


def test_pricing_cap_stops_a_second_view_within_seven_days(config):
    # Given a lead who viewed pricing at T0
    lead = lead_with()
    view(lead, "/pricing", T0, config)

    # When pricing is viewed again six days later
    hits = view(lead, "/pricing", T0 + 6 * DAY, config)

    # Then no points are awarded the second time
    assert hits == []
    assert lead.engagement == pytest.approx(15.0)


def test_pricing_cap_allows_a_view_eight_days_later(config):
    # Given a lead who viewed pricing at T0
    lead = lead_with()
    view(lead, "/pricing", T0, config)

    # When pricing is viewed again eight days later
    hits = view(lead, "/pricing", T0 + 8 * DAY, config)

    # Then it scores again, on top of the decayed first view
    assert hits == [["pricing-page", 15.0]]
    assert engagement_at(lead, T0 + 8 * DAY, config) == pytest.approx(15 * 0.5 ** (8 / 30) + 15)


def test_late_event_is_capped_by_an_earlier_hit_in_its_window(config):
    # Given pricing views scored at day 0 and day 10
    lead = lead_with()
    view(lead, "/pricing", T0, config)
    view(lead, "/pricing", T0 + 10 * DAY, config)

    # When a pricing view from day 1 arrives late
    hits = view(lead, "/pricing", T0 + 1 * DAY, config)

    # Then the day-0 view, one day before it, caps it
    assert hits == []


def test_a_late_event_takes_the_place_of_a_later_hit_of_its_period(config):
    # Given product views (at most 3 per 7 days) scored on days 0, 1 and 2 of a week, then day 8
    lead = lead_with()
    for day in (0, 1, 2, 8):
        view(lead, "/product/forecasting", T0 + day * DAY, config)

    # When a product view from day 1.5 arrives late
    hits = view(lead, "/product/forecasting", T0 + 1.5 * DAY, config)

    # Then it counts in place of the day-2 view: the score is the one the views give in order
    in_order = lead_with()
    for day in (0, 1, 1.5, 2, 8):
        view(in_order, "/product/forecasting", T0 + day * DAY, config)
    assert hits == [["product-page", 3.0]]
    assert engagement_at(lead, T0 + 9 * DAY, config) == pytest.approx(engagement_at(in_order, T0 + 9 * DAY, config))
    assert sorted(lead.caps["product-page"]) == sorted(in_order.caps["product-page"])


@pytest.mark.parametrize("order", list(itertools.permutations([0, 3, 8])))
def test_the_same_views_score_the_same_in_any_order(config, order):
    # Given pricing views (at most 1 per 7 days) on days 0, 3 and 8, arriving in `order`
    lead = lead_with()
    for day in order:
        view(lead, "/pricing", T0 + day * DAY, config)

    # Then the score is the in-order one: day 0 and day 8 count, day 3 shares day 0's week
    expected = 15 * 0.5 ** (8 / 30) + 15
    assert engagement_at(lead, T0 + 8 * DAY, config) == pytest.approx(expected)


def test_a_straggler_behind_the_horizon_scores_no_capped_points(config):
    # Given a pricing view scored today
    lead = lead_with()
    view(lead, "/pricing", T0 + 60 * DAY, config)

    # When a pricing view from two months earlier arrives
    hits = view(lead, "/pricing", T0, config)

    # Then its week's hits are no longer kept, so it scores nothing rather than guessing
    assert hits == []


def test_careers_page_lowers_engagement(config):
    # Given a lead with some engagement
    lead = lead_with()
    view(lead, "/pricing", T0, config)

    # When the lead browses the careers page
    hits = view(lead, "/careers/openings", T0, config)

    # Then the negative rule takes points away
    assert hits == [["careers-page", -10.0]]
    assert lead.engagement == pytest.approx(5.0)


def test_event_matching_no_rule_scores_nothing(config):
    # Given a lead
    lead = lead_with()

    # When a track event no rule mentions arrives
    hits = score_event(lead, tracking_event(track("Logged In", user_id="u-1")), config)

    # Then nothing changes
    assert hits == [] and lead.engagement == 0.0


def test_late_event_adds_its_decayed_points(config):
    # Given a lead whose engagement is kept as of day 10
    lead = lead_with()
    day_10 = T0 + 10 * DAY
    score_event(lead, tracking_event(track("Trial Started", user_id="u-1", at=day_10), received_at=day_10), config)

    # When a webinar attendance from day 0 arrives afterwards
    score_event(lead, tracking_event(track("Webinar Attended", user_id="u-1", at=T0), received_at=day_10), config)

    # Then it counts as if it had arrived in order
    assert engagement_at(lead, day_10, config) == pytest.approx(30 + 15 * 0.5 ** (10 / 30))


def test_buying_stage_follows_the_content_consumed(config):
    # Given a lead
    lead = lead_with()

    # When the lead reads the pricing page
    consumed = read(lead, "/pricing", T0, config)

    # Then the content is recorded and the lead is selecting a supplier
    assert consumed == ["pricing-page"]
    assert lead.buying_stage == "supplier_selection"


def test_buying_stage_moves_back_when_the_lead_returns_to_problem_content(config):
    # Given a lead who read pricing at T0
    lead = lead_with()
    read(lead, "/pricing", T0, config)

    # When, four weeks later, the lead reads several problem-identification articles
    for n, path in enumerate(["/blog/why-leads-go-cold", "/blog/forecast-misses", "/blog/why-leads-go-cold"]):
        read(lead, path, T0 + 28 * DAY + n * 3600, config)

    # Then the stage moves back to problem identification
    assert lead.buying_stage == "problem_identification"
    assert lead.consumed == ["pricing-page", "blog-forecast-misses", "blog-why-leads-go-cold"]


def lead_at(stage: str, grade: str, engagement: float, email: str | None = "ana@globex.com") -> Lead:
    return Lead(
        lead_id="p-test", email=email, fit_grade=grade, engagement=engagement, engagement_at=T0, lifecycle=stage
    )


@pytest.mark.parametrize(
    ("grade", "engagement", "expected"),
    [
        ("A", 19.9, "lead"),
        ("A", 20, "warm"),
        ("A", 54.9, "warm"),
        ("A", 55, "hot"),
        ("B", 29.9, "lead"),
        ("B", 30, "warm"),
        ("B", 70, "hot"),
        ("C", 45, "warm"),
        ("C", 95, "hot"),
        ("D", 500, "lead"),
    ],
)
def test_thresholds_depend_on_the_fit_grade(config, grade, engagement, expected):
    # Given a lead with a fit grade and an engagement score
    lead = lead_at("lead", grade, engagement)

    # When its lifecycle stage is evaluated
    stage = next_lifecycle(lead, T0, config)

    # Then the grade's thresholds decide it
    assert stage == expected


@pytest.mark.parametrize(
    ("stage", "engagement", "expected"),
    [
        ("hot", 44.0, "hot"),  # 55 x 0.8 = 44: still hot
        ("hot", 43.9, "warm"),
        ("warm", 16.0, "warm"),  # 20 x 0.8 = 16: still warm
        ("warm", 15.9, "lead"),
        ("hot", 15.9, "lead"),
    ],
)
def test_demotion_only_below_threshold_times_demote_ratio(config, stage, engagement, expected):
    # Given a grade-A lead already at a stage
    lead = lead_at(stage, "A", engagement)

    # When its score has fallen
    new_stage = next_lifecycle(lead, T0, config)

    # Then it keeps the stage until below threshold x demote_ratio
    assert new_stage == expected


def test_decay_alone_demotes_a_lead_over_time(config):
    # Given a hot grade-A lead at 60 points
    lead = lead_at("hot", "A", 60)

    # When a month passes without activity (60 -> 30)
    stage = next_lifecycle(lead, T0 + 30 * DAY, config)

    # Then the lead is warm
    assert stage == "warm"


@pytest.mark.parametrize("stage", ["customer", "lost", "opportunity", "recycled", "disqualified"])
def test_sales_owned_stages_are_never_moved(config, stage):
    # Given a lead in a stage owned by sales, with a score far above hot
    lead = lead_at(stage, "A", 500)

    # When its stage is evaluated
    new_stage = next_lifecycle(lead, T0, config)

    # Then it stays where sales put it
    assert new_stage == stage


def test_lead_without_email_stays_a_visitor(config):
    # Given an anonymous visitor with a high score
    lead = lead_at("visitor", "A", 500, email=None)

    # When its stage is evaluated
    stage = next_lifecycle(lead, T0, config)

    # Then it is still a visitor
    assert stage == "visitor"


def test_subscriber_below_warm_stays_a_subscriber(config):
    # Given a subscriber with little engagement
    lead = lead_at("subscriber", "A", 5)

    # When its stage is evaluated
    stage = next_lifecycle(lead, T0, config)

    # Then it remains a subscriber
    assert stage == "subscriber"


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        ("lead", "hot", ["lead.became_warm", "lead.became_hot", "lead.stage_changed"]),
        ("lead", "warm", ["lead.became_warm", "lead.stage_changed"]),
        ("warm", "hot", ["lead.became_hot", "lead.stage_changed"]),
        ("visitor", "lead", ["lead.stage_changed"]),
        ("hot", "warm", ["lead.stage_changed"]),
        ("warm", "warm", []),
    ],
)
def test_lifecycle_events_for_a_move(before, after, events):
    # Given a move between stages
    # When its bus events are listed
    names = lifecycle_events(before, after)

    # Then each threshold crossed upwards is announced once, then the change itself
    assert names == events
