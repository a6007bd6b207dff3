"""GET /v1/leads/{lead}: one lead explained, with an engagement breakdown
that adds up to the score."""

from __future__ import annotations

import pytest

from nurture.core.errors import NotFoundError
from nurture.leads.view import describe_lead
from nurture.store.lookup import find_lead
from tests.unit.builders import DAY, ICP_TRAITS, T0, identify, lead_by, page, track, tracking_events

TEN_DAYS_LATER = T0 + 10 * DAY


def process(tracker, *calls, at: float = T0) -> None:
    tracker.process([(f"rec-{at}", tracking_events(*calls, received_at=at))], now=at)


@pytest.fixture
def ana(tracker, store):
    """An ideal-customer lead active over a week: pages, a webinar and a trial."""
    process(
        tracker,
        identify("ana@globex.com", user_id="u-ana", **ICP_TRAITS),
        page("/pricing", user_id="u-ana"),
        page("/product/forecasting", user_id="u-ana"),
    )
    day_2, day_5 = T0 + 2 * DAY, T0 + 5 * DAY
    process(
        tracker,
        page("/customers/fintech", user_id="u-ana", at=day_2),
        page("/blog/forecast-misses", user_id="u-ana", at=day_2),
        track("Webinar Attended", user_id="u-ana", at=day_2, webinar_id="pipeline-hygiene"),
        at=day_2,
    )
    process(
        tracker,
        track("Trial Started", user_id="u-ana", at=day_5),
        page("/careers", user_id="u-ana", at=day_5),
        page("/product/integrations", user_id="u-ana", at=day_5),
        at=day_5,
    )
    return lead_by(store, "user", "u-ana")


def test_engagement_explanation_adds_up_to_the_score(store, config, ana):
    # Given a lead with a week of scored activity
    # When it is described ten days later
    view = describe_lead(store, config, ana.lead_id, TEN_DAYS_LATER)

    # Then the decayed points per rule add up to the score
    engagement = view["engagement"]
    rows = engagement["explanation"]
    assert {row["rule"] for row in rows} == {
        "pricing-page",
        "product-page",
        "case-study-page",
        "blog-visit",
        "webinar-attended",
        "trial-started",
        "careers-page",
    }
    assert sum(row["points_now"] for row in rows) == pytest.approx(engagement["score"], abs=0.01)
    assert engagement["score"] < 15 + 3 + 5 + 1 + 15 + 30 - 10 + 3


def test_engagement_rows_count_hits_and_awarded_points(store, config, ana):
    # Given a lead that viewed two product pages
    # When it is described
    view = describe_lead(store, config, ana.lead_id, TEN_DAYS_LATER)

    # Then the product-page row shows both hits at full value
    (row,) = [row for row in view["engagement"]["explanation"] if row["rule"] == "product-page"]
    assert (row["hits"], row["points_awarded"]) == (2, 6.0)


def test_lead_is_found_by_email_whatever_its_case(store, ana):
    # Given a lead known by ana@globex.com
    # When it is looked up by a differently cased address
    lead = find_lead(store, "  Ana@GLOBEX.com ")

    # Then it is found
    assert lead.lead_id == ana.lead_id


def test_lead_is_found_by_id(store, config, ana):
    # Given a lead
    # When it is described by its id
    view = describe_lead(store, config, ana.lead_id, TEN_DAYS_LATER)

    # Then the view is of that lead
    assert (view["lead_id"], view["email"], view["user_id"]) == (ana.lead_id, "ana@globex.com", "u-ana")


@pytest.mark.parametrize("reference", ["nobody@globex.com", "p0000000000000000000", "not-an-email@"])
def test_unknown_lead_is_not_found(store, reference):
    # Given an empty store
    # When a lead is looked up
    with pytest.raises(NotFoundError) as caught:
        find_lead(store, reference)

    # Then it is a 404 naming the lead
    assert (caught.value.status, caught.value.field) == (404, "lead")


def test_merged_lead_is_found_through_its_anonymous_id(tracker, store):
    # Given an anonymous lead merged into a known one
    process(tracker, identify("ana@globex.com", user_id="u-ana"))
    process(tracker, page("/pricing", anonymous_id="anon-a"))
    anonymous_lead = lead_by(store, "anon", "anon-a").lead_id
    process(tracker, identify("ana@globex.com", anonymous_id="anon-a"))

    # When the anonymous lead's id is looked up
    lead = find_lead(store, anonymous_lead)

    # Then the surviving lead is returned
    assert lead.email == "ana@globex.com"


def test_merged_leads_events_are_in_the_explanation(tracker, store, config):
    # Given an anonymous pricing view merged into a known lead
    process(tracker, identify("ana@globex.com", user_id="u-ana"))
    process(tracker, page("/pricing", anonymous_id="anon-a"))
    process(tracker, identify("ana@globex.com", anonymous_id="anon-a"))

    # When the known lead is described
    view = describe_lead(store, config, "ana@globex.com", TEN_DAYS_LATER)

    # Then the anonymous view explains its points
    assert [row["rule"] for row in view["engagement"]["explanation"]] == ["pricing-page"]


def test_a_lead_of_many_devices_is_described_in_a_bounded_number_of_reads(tracker, store, config):
    # Given a known lead that 30 devices merged into, each after one blog visit
    process(tracker, identify("ana@globex.com", user_id="u-ana"))
    for n in range(30):
        process(tracker, page("/blog/a", anonymous_id=f"dev-{n}"))
        process(tracker, identify("ana@globex.com", anonymous_id=f"dev-{n}"))
    reads = []
    lead_events = store.lead_events
    store.lead_events = lambda lead_id: reads.append(lead_id) or lead_events(lead_id)

    # When it is described
    view = describe_lead(store, config, "ana@globex.com", TEN_DAYS_LATER)

    # Then it reads its own history and its 20 newest devices', and says so
    assert len(reads) == 21
    assert view["merged_devices"] == {"total": 30, "history_shown": 20}


def test_lifecycle_history_lists_the_moves(store, config, ana):
    # Given a lead that became warm and then hot
    # When it is described
    view = describe_lead(store, config, ana.lead_id, TEN_DAYS_LATER)

    # Then the moves are listed in order with their reasons
    history = view["lifecycle"]["history"]
    assert [(move["from"], move["to"]) for move in history] == [("visitor", "lead"), ("lead", "warm"), ("warm", "hot")]
    assert view["lifecycle"]["stage"] == "hot"


def test_account_rolls_up_the_engaged_contacts_of_a_domain(tracker, store, config, ana):
    # Given two more contacts at globex.com: one engaged, one barely
    process(tracker, identify("bob@globex.com", user_id="u-bob", title="CFO"), track("Trial Started", user_id="u-bob"))
    process(tracker, identify("cy@globex.com", user_id="u-cy"), page("/blog/why-leads-go-cold", user_id="u-cy"))
    # and one at another company
    process(tracker, identify("dee@initech.io", user_id="u-dee"), track("Trial Started", user_id="u-dee"))

    # When Ana is described
    account = describe_lead(store, config, ana.lead_id, TEN_DAYS_LATER)["account"]

    # Then the account counts the three globex contacts, two of them engaged
    assert account["domain"] == "globex.com"
    assert (account["contacts"], account["engaged_contacts"]) == (3, 2)
    assert {member["email"] for member in account["buying_committee"]} == {"ana@globex.com", "bob@globex.com"}


def test_free_mail_lead_has_no_account(tracker, store, config):
    # Given a lead on gmail
    process(tracker, identify("ana.lopez@gmail.com", user_id="u-ana"))

    # When it is described
    view = describe_lead(store, config, "ana.lopez@gmail.com", TEN_DAYS_LATER)

    # Then there is no account roll-up
    assert view["account"] is None


def test_rounded_explanation_rows_still_add_up_to_the_score(tracker, store, config):
    # Given four rules hit at times whose decayed values all round down
    last = T0 + 15 * 3600
    process(
        tracker,
        track("Trial Started", user_id="u-1", at=T0),
        track("Webinar Attended", user_id="u-1", at=T0 + 6 * 3600),
        track("Webinar Registered", user_id="u-1", at=T0 + 12 * 3600),
        track("ROI Calculator Completed", user_id="u-1", at=T0 + 15 * 3600),
        at=last,
    )

    # When the lead is described ten days after the first event
    engagement = describe_lead(store, config, lead_by(store, "user", "u-1").lead_id, TEN_DAYS_LATER)["engagement"]

    # Then the rows as shown add up exactly to the score as shown
    assert sum(row["points_now"] for row in engagement["explanation"]) == pytest.approx(engagement["score"], abs=1e-9)
