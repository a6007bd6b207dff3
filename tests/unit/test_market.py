"""The demo's synthetic market: the same seed builds the same market."""

from __future__ import annotations

from dataclasses import asdict

from nurture.config.loader import load_config
from nurture.core.domain import Lead
from nurture.core.profile import profile_updates
from nurture.scoring.scores import grade_fit
from nurture_tools.local.market import build_market, rng
from tests.conftest import CONFIG_DIR

START = 1_772_409_600.0  # 2026-03-02, a Monday


def test_the_same_seed_builds_the_same_market():
    first, again = build_market(5, 60, START, 30), build_market(5, 60, START, 30)
    assert [asdict(p) for p in first.people] == [asdict(p) for p in again.people]


def test_another_seed_builds_another_market():
    assert [p.email for p in build_market(5, 60, START, 30).people] != [
        p.email for p in build_market(6, 60, START, 30).people
    ]


def test_a_decision_draws_the_same_whatever_was_drawn_before():
    assert rng(1, "p-1", "email", "t#guide").random() == rng(1, "p-1", "email", "t#guide").random()
    assert rng(1, "p-1", "email", "t#guide").random() != rng(1, "p-2", "email", "t#guide").random()


def test_the_market_has_committees_and_a_spread_of_fit():
    # Given a market of 200 people scored by the example configuration
    market = build_market(7, 200, START, 45)
    config = load_config(CONFIG_DIR)
    grades = set()
    for person in market.people:
        traits = {
            "title": person.title,
            "industry": person.account.industry,
            "employees": person.account.employees,
            "country": person.account.country,
        }
        lead = Lead(lead_id=person.key, email=person.email, profile=profile_updates(traits))
        grade_fit(lead, config)
        grades.add(lead.fit_grade)

    # Then accounts hold buying committees and every fit grade occurs
    assert len(market.people) == 200
    assert any(sum(p.account is a for p in market.people) >= 3 for a in market.accounts)
    assert grades == {"A", "B", "C", "D"}
    assert all(START <= p.arrives_at <= START + 45 * 86400 for p in market.people)
