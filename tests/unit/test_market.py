"""The demo's synthetic market: the same seed builds the same market."""

from __future__ import annotations

from dataclasses import asdict

from nurture.config.loader import load_config
from nurture.core.domain import Lead
from nurture.core.profile import profile_updates
from nurture.scoring.scores import grade_fit
from nurture_tools.local.market import build_market, rng, site_habits, website_visitors
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


def test_the_website_sees_the_market_and_a_few_competitors():
    # Given the people on the website for a market of 1,000
    people = website_visitors(7, 1000, START, 30)
    market = build_market(7, 1000 - 3, START, 30)
    competitors = load_config(CONFIG_DIR).lists["competitor_domains"]

    # Then they are the market's people, and three competitors' staff from the configuration's list
    assert len(people) == 1000
    assert [asdict(p) for p in people[:-3]] == [asdict(p) for p in market.people]
    assert {p.email.split("@")[1] for p in people[-3:]} <= competitors
    assert not any(p.account.in_market for p in people[-3:])


def test_site_habits_are_drawn_apart_from_the_market():
    # Given a market, and the same market again after each person's site habits were drawn
    first = build_market(5, 60, START, 30)
    habits = [site_habits(5, person) for person in first.people]
    again = build_market(5, 60, START, 30)

    # Then drawing habits changed nothing the market draws, and the same seed draws the same habits
    assert [asdict(p) for p in first.people] == [asdict(p) for p in again.people]
    assert [asdict(h) for h in habits] == [asdict(site_habits(5, person)) for person in again.people]
    assert all(h.devices[0].anonymous_id == p.anonymous_id for h, p in zip(habits, first.people, strict=True))


def test_a_country_is_typed_into_forms_as_people_type_it():
    # Given the site habits of people at accounts in the United Kingdom
    people = [p for p in build_market(3, 400, START, 30).people if p.account.country == "GB"]

    # Then they type the country one way or another, never as its code
    assert people
    assert {site_habits(3, p).country_typed for p in people} <= {"United Kingdom", "UK"}
