"""The report's figures, from hand-made records whose right answers are known."""

from __future__ import annotations

import pytest

from nurture_tools.report import (
    acceleration,
    build_report,
    compare_proportions,
    difference_interval,
    engagement,
    experiments,
    fisher_exact,
    holdout_lift,
    outcomes,
    percentile,
)
from nurture_tools.report_render import render_html, render_text

DAY = 86400.0
T0 = 1_780_000_000.0


def lead(lead_id, *enrollments, **fields):
    return {
        "lead_id": lead_id,
        "lifecycle": "warm",
        "consent": "subscribed",
        "enrollments": list(enrollments),
        **fields,
    }


def enrollment(lead_id, track="mql", status="completed", started_at=T0):
    return {
        "enrollment_id": f"{track}-{lead_id}-1",
        "track_id": track,
        "seq": 1,
        "status": status,
        "started_at": started_at,
    }


def move(lead_id, to, at):
    return {
        "lead_id": lead_id,
        "id": f"{lead_id}-{to}",
        "kind": "lifecycle",
        "name": "lead.stage_changed",
        "at": at,
        "properties": {"to": to},
    }


def email(lead_id, step="guide", content="wp", variant=None, track="mql", at=T0):
    return {
        "lead_id": lead_id,
        "enrollment_id": f"{track}-{lead_id}-1",
        "track_id": track,
        "step_id": step,
        "channel": "email",
        "at": at,
        "content_id": content,
        "variant": variant,
        "status": "sent",
        "klass": "marketing",
    }


def ses(lead_id, name, step="guide", track="mql"):
    touch = f"{track}-{lead_id}-1#{step}"
    return {
        "lead_id": lead_id,
        "id": f"{name}-{touch}",
        "kind": "track",
        "name": name,
        "at": T0 + 3600,
        "properties": {"touch": touch},
    }


# --- statistics ---------------------------------------------------------------------


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([1, 2, 3, 4, 5], 0.75) == 4
    assert percentile([], 0.5) is None


def test_fisher_exact_matches_the_textbook_tea_tasting_table():
    # Fisher's lady tasting tea: 3 of 4 right each way; two-sided p = 0.4857
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857, abs=1e-4)


def test_large_counts_use_the_z_test_and_find_a_real_difference():
    # Given 30% vs 20% on 1,000 each
    result = compare_proportions(300, 1000, 200, 1000)
    # Then the pooled z is 0.1 / sqrt(0.25 * 0.75 * 2 / 1000) = 5.164 and p far below 0.001
    assert result["method"] == "z_test"
    assert result["z"] == pytest.approx(5.164, abs=0.001)
    assert result["p_value"] < 0.001


def test_small_counts_use_fishers_exact_test():
    result = compare_proportions(2, 10, 0, 3)
    assert result["method"] == "fisher_exact"
    assert result["p_value"] == pytest.approx(1.0)


def test_difference_interval_matches_newcombes_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80
    assert difference_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_difference_interval_of_large_groups_is_close_to_symmetric_around_the_difference():
    low, high = difference_interval(300, 1000, 200, 1000)
    assert (low + high) / 2 == pytest.approx(0.1, abs=2e-3)
    assert low > 0


def test_a_tiny_holdout_gives_an_interval_that_agrees_with_the_exact_test():
    # Given 11 of 34 nurtured leads and 0 of 2 held-out leads became sales-ready
    low, high = difference_interval(11, 34, 0, 2)

    # Then the interval includes no difference, as Fisher's test (p = 1) says
    assert low < 0 < high
    assert compare_proportions(11, 34, 0, 2)["p_value"] > 0.05


# --- sections ------------------------------------------------------------------------


def test_engagement_counts_human_opens_and_clicks_per_email_and_leaves_machine_ones_out():
    # Given three emails: one opened by a person, one clicked (no open recorded), one opened by a proxy
    touches = [email("a"), email("b"), email("c")]
    events = [ses("a", "Email Opened"), ses("b", "Email Link Clicked"), ses("c", "Email Opened (machine)")]

    # When engagement is computed
    by_track = engagement(touches, events)["track"]

    # Then two of three were read by a person, one clicked, one machine-opened
    assert by_track == [
        {
            "key": ["mql"],
            "sent": 3,
            "opened": 2,
            "clicked": 1,
            "machine_opened": 1,
            "open_rate": 0.6667,
            "click_rate": 0.3333,
        }
    ]


def test_acceleration_compares_days_from_warm_to_hot_for_nurtured_and_holdout_leads():
    # Given two nurtured leads hot 2 and 4 days after warm, and a holdout lead hot after 10
    leads = [lead("a", enrollment("a")), lead("b", enrollment("b")), lead("h", enrollment("h", status="holdout"))]
    events = [
        move("a", "warm", T0),
        move("a", "hot", T0 + 2 * DAY),
        move("b", "warm", T0),
        move("b", "hot", T0 + 4 * DAY),
        move("h", "warm", T0),
        move("h", "hot", T0 + 10 * DAY),
    ]

    # When acceleration is computed
    warm_to_hot = next(row for row in acceleration(leads, events) if (row["from"], row["to"]) == ("warm", "hot"))

    # Then the medians are 3 and 10 days
    assert warm_to_hot["nurtured"]["median_days"] == 3.0
    assert warm_to_hot["nurtured"]["p75_days"] == 3.5
    assert warm_to_hot["holdout"]["median_days"] == 10.0


def test_a_lead_jumping_stages_has_reached_the_ones_it_skipped():
    # Given a lead that went from lead straight to hot
    leads = [lead("a", enrollment("a"))]
    events = [move("a", "hot", T0)]

    # Then it counts as warm and hot at the same moment (zero days between)
    row = next(r for r in acceleration(leads, events) if (r["from"], r["to"]) == ("warm", "hot"))
    assert row["nurtured"]["median_days"] == 0.0


def test_holdout_lift_compares_sales_ready_shares_after_enrolling():
    # Given 4 nurtured leads (2 became hot after enrolling, 1 was hot before) and 2 held out (none hot)
    leads = [lead(x, enrollment(x, started_at=T0)) for x in "abcd"] + [
        lead(x, enrollment(x, status="holdout", started_at=T0)) for x in "gh"
    ]
    events = [move("a", "hot", T0 + DAY), move("b", "opportunity", T0 + DAY), move("c", "hot", T0 - DAY)]

    # When the lift is computed
    (row,) = holdout_lift(leads, events)

    # Then 2 of 4 against 0 of 2, tested with Fisher's exact test (small counts)
    assert row["nurtured"] == {"leads": 4, "converted": 2, "rate": 0.5}
    assert row["holdout"] == {"leads": 2, "converted": 0, "rate": 0.0}
    assert row["difference"] == 0.5
    assert row["lift"] is None  # relative lift over zero is undefined
    assert row["test"]["method"] == "fisher_exact"


def test_experiments_test_each_variant_against_the_first():
    # Given 40 emails per variant of one step: plain opened 8 times, question 20 times
    touches = [email(f"p{i}", variant="plain") for i in range(40)] + [
        email(f"q{i}", variant="question") for i in range(40)
    ]
    events = [ses(f"p{i}", "Email Opened") for i in range(8)] + [ses(f"q{i}", "Email Opened") for i in range(20)]

    # When the experiments are evaluated
    (experiment,) = experiments(touches, events)

    # Then question beats plain on opens (20/40 vs 8/40), significantly
    plain, question = experiment["variants"]
    assert (plain["variant"], plain["open_rate"]) == ("plain", 0.2)
    assert (question["variant"], question["open_rate"]) == ("question", 0.5)
    assert question["vs"] == "plain"
    assert question["open_test"]["method"] == "z_test"
    assert question["open_test"]["p_value"] < 0.01


def test_outcomes_count_stages_reached_and_revenue_won():
    events = [
        move("a", "hot", T0),
        move("a", "opportunity", T0 + DAY),
        move("a", "customer", T0 + 9 * DAY),
        move("b", "hot", T0),
        {
            "lead_id": "a",
            "id": "o1",
            "kind": "outcome",
            "name": "sales_outcome",
            "at": T0,
            "properties": {"outcome": "won", "revenue": 42000, "currency": "USD"},
        },
        {
            "lead_id": "b",
            "id": "o2",
            "kind": "outcome",
            "name": "sales_outcome",
            "at": T0,
            "properties": {"outcome": "accepted"},
        },
    ]
    result = outcomes([], events)
    assert (result["sales_ready"], result["opportunities"], result["customers"]) == (2, 1, 1)
    assert result["recorded_outcomes"] == {"accepted": 1, "won": 1}
    assert (result["revenue_won"], result["currency"]) == (42000, "USD")


def test_the_report_renders_as_text_and_self_contained_html():
    # Given a report on a small simulated run
    leads = [lead("a", enrollment("a")), lead("h", enrollment("h", status="holdout"))]
    report = build_report(
        leads,
        [email("a", variant="plain")],
        [move("a", "warm", T0), ses("a", "Email Opened")],
        source={"simulated": True, "seed": 1, "leads": 2, "days": 3},
        notes=["The market in this report is simulated."],
    )

    # When it is rendered
    text, html = render_text(report), render_html(report)

    # Then both say the market is simulated, and the page fetches nothing
    assert "simulated" in text
    assert "simulated market" in html and "<svg" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
