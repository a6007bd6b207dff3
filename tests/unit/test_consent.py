"""The unsubscribe and preference use cases and their pages."""

from __future__ import annotations

import pytest

from nurture.channels.consent import (
    ConsentKeeper,
    confirmation_page,
    parse_preferences,
    preference_page,
    unsubscribe,
)
from nurture.config.tracks import Frequency, PreferenceOptions
from nurture.core.domain import Lead
from nurture.core.errors import NotFoundError, ValidationError
from tests.fakes import InMemoryLeadStore
from tests.unit.builders import T0, RecordingPublisher

LEAD_ID = "p0123456789abcdef"


def a_stored_lead(store: InMemoryLeadStore) -> Lead:
    lead = Lead(lead_id=LEAD_ID, email="ana@globex.com", created_at=T0)
    store.save_lead(lead, expected_version=0)
    return lead


def stored(store: InMemoryLeadStore) -> Lead:
    return store.get_leads([LEAD_ID])[LEAD_ID]


def test_unsubscribe_opts_the_lead_out(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given a subscribed lead
    a_stored_lead(store)

    # When it unsubscribes
    done = unsubscribe(store, publisher, LEAD_ID, T0 + 60)

    # Then its consent is "unsubscribed"
    assert done is True
    assert stored(store).consent == "unsubscribed"


def test_unsubscribe_bumps_the_lead_version(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given a lead at version 1
    version_before = a_stored_lead(store).version

    # When it unsubscribes
    unsubscribe(store, publisher, LEAD_ID, T0 + 60)

    # Then its version moved on, so a concurrent scoring write retries on top of it
    assert stored(store).version == version_before + 1


def test_unsubscribe_publishes_lead_unsubscribed(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given a subscribed lead
    a_stored_lead(store)

    # When it unsubscribes with one click
    unsubscribe(store, publisher, LEAD_ID, T0 + 60)

    # Then one lead.unsubscribed event is published, with an id consumers can dedupe on
    event_id = f"{LEAD_ID}-unsub-{int(T0 + 60)}"
    assert publisher.entries == [
        {
            "id": event_id,
            "type": "lead.unsubscribed",
            "detail": {
                "event_id": event_id,
                "lead_id": LEAD_ID,
                "reason": "one-click",
                "occurred_at": "2025-03-03T09:01:00+00:00",
            },
        }
    ]


def test_unsubscribe_records_the_reason_given(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given a subscribed lead
    a_stored_lead(store)

    # When it unsubscribes from the confirmation page
    unsubscribe(store, publisher, LEAD_ID, T0, reason="confirmation-page")

    # Then the event says so
    assert publisher.entries[0]["detail"]["reason"] == "confirmation-page"


def test_unsubscribing_twice_leaves_the_lead_unsubscribed(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given a lead that already unsubscribed
    a_stored_lead(store)
    unsubscribe(store, publisher, LEAD_ID, T0)

    # When the link is used again
    again = unsubscribe(store, publisher, LEAD_ID, T0 + 3600)

    # Then it succeeds and the lead stays unsubscribed
    assert again is True
    assert stored(store).consent == "unsubscribed"


def test_unknown_lead_is_not_unsubscribed(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given no lead with this id
    # When it is unsubscribed
    done = unsubscribe(store, publisher, "p-nobody", T0)

    # Then the use case says so and no lead appears
    assert done is False
    assert store.get_leads(["p-nobody"]) == {}


def test_unknown_lead_publishes_nothing(store: InMemoryLeadStore, publisher: RecordingPublisher):
    # Given no lead with this id
    # When it is unsubscribed
    unsubscribe(store, publisher, "p-nobody", T0)

    # Then no event is published
    assert publisher.entries == []


def test_confirmation_page_asks_before_unsubscribing():
    # Given a link opened with GET (a person, or a mail scanner)
    # When the page is shown
    page = confirmation_page("cDE.AvrcZQK9gt0osvoLTXeRBA", "/unsubscribe/cDE.AvrcZQK9gt0osvoLTXeRBA", done=False)

    # Then it asks, with a button that POSTs the token
    assert "Unsubscribe from marketing email?" in page
    assert '<form method="post" action="/unsubscribe/cDE.AvrcZQK9gt0osvoLTXeRBA">' in page
    assert '<input type="hidden" name="token" value="cDE.AvrcZQK9gt0osvoLTXeRBA">' in page
    assert "You're unsubscribed" not in page


def test_confirmation_page_confirms_after_unsubscribing():
    # Given the form was posted
    # When the page is shown
    page = confirmation_page("cDE.AvrcZQK9gt0osvoLTXeRBA", "/unsubscribe/cDE.AvrcZQK9gt0osvoLTXeRBA", done=True)

    # Then it confirms, with nothing left to submit
    assert "You're unsubscribed" in page
    assert "<form" not in page


def test_confirmation_page_escapes_the_token_and_action():
    # Given a token and action URL carrying markup
    # When the page is shown
    page = confirmation_page('"><script>alert(1)</script>', '/u?a=1&b="><script>', done=False)

    # Then neither can break out of its attribute
    assert "<script>" not in page
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert 'action="/u?a=1&amp;b=&quot;&gt;&lt;script&gt;"' in page


# --- preferences ------------------------------------------------------------------

OPTIONS = PreferenceOptions(
    topics={"forecasting": "Forecasting", "pricing": "Pricing & packaging"},
    frequencies=(Frequency("weekly", "At most one email a week", 1, 7),),
    pause_days=(30, 90),
)


def test_the_form_turns_off_every_topic_left_unticked():
    # When the lead keeps forecasting only, a weekly frequency and no pause
    preferences = parse_preferences("topic=forecasting&frequency=weekly&pause=0", OPTIONS, T0)

    # Then pricing is off and the weekly cap chosen
    assert preferences == {"topics_off": ["pricing"], "frequency": "weekly"}


def test_a_pause_holds_email_for_the_chosen_days():
    preferences = parse_preferences("topic=forecasting&topic=pricing&frequency=regular&pause=30", OPTIONS, T0)
    assert preferences == {"paused_until": T0 + 30 * 86400}


@pytest.mark.parametrize(
    ("body", "field"),
    [("topic=golf", "topic"), ("frequency=hourly", "frequency"), ("pause=7", "pause"), ("pause=0&pause=30", "pause")],
)
def test_a_choice_the_page_does_not_offer_is_refused_naming_the_field(body, field):
    with pytest.raises(ValidationError) as refused:
        parse_preferences(body, OPTIONS, T0)
    assert refused.value.field == field


def test_saving_preferences_replaces_them_and_bumps_the_version(store: InMemoryLeadStore):
    # Given a lead with a pause
    a_stored_lead(store)
    ConsentKeeper(store, RecordingPublisher()).save_preferences(LEAD_ID, {"paused_until": T0 + 86400}, T0)
    version = stored(store).version

    # When it saves new choices
    ConsentKeeper(store, RecordingPublisher()).save_preferences(LEAD_ID, {"topics_off": ["pricing"]}, T0 + 60)

    # Then only the new choices hold, and a concurrent scoring write would retry on top of them
    assert stored(store).preferences == {"topics_off": ["pricing"]}
    assert stored(store).version == version + 1


def test_saving_preferences_of_an_unknown_lead_is_not_found(store: InMemoryLeadStore):
    with pytest.raises(NotFoundError):
        ConsentKeeper(store, RecordingPublisher()).save_preferences("nobody", {}, T0)


def test_the_preference_page_shows_the_leads_current_choices():
    # Given a lead that turned pricing off, chose weekly and paused until a date
    preferences = {"topics_off": ["pricing"], "frequency": "weekly", "paused_until": T0 + 10 * 86400}

    # When its page is rendered
    page = preference_page(OPTIONS, preferences, T0, "../unsubscribe/tok")

    # Then its choices are pre-selected, labels escaped, and a way out of all email offered
    assert '<input type="checkbox" name="topic" value="forecasting" checked>' in page
    assert '<input type="checkbox" name="topic" value="pricing"> Pricing &amp; packaging' in page
    assert '<input type="radio" name="frequency" value="weekly" checked>' in page
    assert "Paused until" in page
    assert '<a href="../unsubscribe/tok">' in page


def test_the_keeper_finds_the_lead_a_link_belongs_to_or_names_the_token(store: InMemoryLeadStore):
    a_stored_lead(store)
    keeper = ConsentKeeper(store, RecordingPublisher())
    assert keeper.lead(LEAD_ID).lead_id == LEAD_ID
    with pytest.raises(NotFoundError) as missing:
        keeper.lead("nobody")
    assert missing.value.field == "token"


@pytest.mark.parametrize("pause", ["²", "٣٠", "3⁰"])
def test_a_pause_in_digits_of_another_script_is_refused_naming_the_field(pause):
    # Given a preference form whose pause is digits, but not ASCII ones
    body = f"topic=forecasting&frequency=regular&pause={pause}"

    # When it is read, then it is refused naming the pause, not a crash
    with pytest.raises(ValidationError) as refused:
        parse_preferences(body, OPTIONS, T0)
    assert refused.value.field == "pause"
