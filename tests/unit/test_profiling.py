"""Progressive profiling: the next unknown fields a form should ask, in the
configured order, at most N; submissions never blank a known value."""

from __future__ import annotations

import pytest

from nurture.config.loader import load_config
from nurture.core.errors import NotFoundError, ValidationError
from nurture.ingest.api import form_event
from nurture.ingest.profiling import ProfileAdvisor
from tests.conftest import CONFIG_DIR
from tests.unit.builders import T0, identify, lead_by, tracking_events


def known_lead(tracker, **traits) -> str:
    tracker.process([("r1", tracking_events(identify("kim@initech.com", user_id="u-kim", **traits)))], T0)
    return lead_by(tracker.store, "email", "kim@initech.com").lead_id


def test_a_new_visitor_is_asked_the_first_fields(store, config):
    answer = ProfileAdvisor(store, config).next_fields("someone@new.com", "demo-request")

    assert answer == {"form": "demo-request", "lead_id": None, "fields": ["company", "title", "employees"], "max": 3}


def test_known_fields_are_skipped_in_priority_order(tracker, store, config):
    # Given a lead whose company and title are known
    lead_id = known_lead(tracker, company="Initech", title="CFO")

    # When the demo form asks what to show it
    answer = ProfileAdvisor(store, config).next_fields("kim@initech.com", "demo-request")

    # Then the next three unknown fields come, in the configured order
    assert answer["lead_id"] == lead_id
    assert answer["fields"] == ["employees", "phone", "country"]


def test_a_lead_that_told_everything_is_asked_nothing(tracker, store, config):
    known_lead(
        tracker,
        company="Initech",
        title="CFO",
        employees=500,
        phone="+14155550100",
        country="US",
        product_interest="forecasting",
    )

    assert ProfileAdvisor(store, config).next_fields("kim@initech.com", "demo-request")["fields"] == []


def test_the_form_must_be_named(store, config):
    with pytest.raises(ValidationError) as raised:
        ProfileAdvisor(store, config).next_fields("kim@initech.com", None)
    assert raised.value.field == "form"


def test_an_unknown_form_is_not_found(store, config):
    with pytest.raises(NotFoundError) as raised:
        ProfileAdvisor(store, config).next_fields("kim@initech.com", "newsletter")
    assert raised.value.field == "form"


def test_a_submission_with_blank_fields_never_blanks_known_values(tracker, store):
    # Given a lead whose title and company are known
    known_lead(tracker, company="Initech", title="CFO")
    config = load_config(CONFIG_DIR)

    # When a progressive form is submitted with those fields left blank
    submission = {"contact": {"email": "kim@initech.com", "title": "", "company": "  ", "first_name": "Kim"}}
    event = form_event(config.forms["content-download"], submission, b"{}", T0 + 60)
    tracker.process([("r2", [event])], T0 + 60)

    # Then the known values stay, and the new one is added
    profile = lead_by(store, "email", "kim@initech.com").profile
    assert (profile["title"], profile["company"], profile["first_name"]) == ("CFO", "Initech", "Kim")


def test_a_public_form_key_hears_the_same_shape_for_a_known_email_as_for_an_unknown_one(tracker, store, config):
    # Given a known lead whose first name and company are known
    known_lead(tracker, first_name="Kim", company="Initech")
    advisor = ProfileAdvisor(store, config)

    # When a page with the public content-download key asks about the lead's email and about a stranger's
    known = advisor.next_fields("kim@initech.com", "content-download", by_anonymous_id=True)
    stranger = advisor.next_fields("nobody@initech.com", "content-download", by_anonymous_id=True)

    # Then both answers are the same: an email is never looked up with a public key
    assert known == stranger == {"form": "content-download", "fields": ["first_name", "company"], "max": 2}


def test_a_public_form_key_names_the_visitor_by_its_anonymous_id(tracker, store, config):
    # Given a browser whose visitor told their first name and company on an earlier visit
    calls = [identify(anonymous_id="anon-7f3c", first_name="Kim", company="Initech", user_id=None)]
    tracker.process([("r1", tracking_events(*calls))], T0)

    # When the page asks with the browser's anonymous id
    answer = ProfileAdvisor(store, config).next_fields("anon-7f3c", "content-download", by_anonymous_id=True)

    # Then the next unknown fields come, and no lead id
    assert answer == {"form": "content-download", "fields": ["title", "industry"], "max": 2}
