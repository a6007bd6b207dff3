"""The unsubscribe use case and its confirmation page."""

from __future__ import annotations

from nurture.consent import confirmation_page, unsubscribe
from nurture.domain import Lead
from nurture.store import InMemoryLeadStore

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
