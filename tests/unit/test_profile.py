"""Traits from Segment and forms mapped to the lead's profile fields."""

from __future__ import annotations

import pytest

from nurture.core.profile import apply_profile, normalize_email, profile_updates
from tests.unit.builders import load_event

FREE_MAIL = frozenset({"gmail.com", "outlook.com"})


def test_segment_reserved_traits_map_to_profile_fields():
    # Given the traits of a real analytics.js identify call
    traits = load_event("segment_identify.json")["traits"]

    # When they are mapped
    updates = profile_updates(traits)

    # Then camelCase names, the company object and the address are all understood
    assert updates == {
        "email": "ana.lopez@globex.com",
        "first_name": "Ana",
        "last_name": "Lopez",
        "title": "VP of Marketing",
        "phone": "+1 415 555 0142",
        "company": "Globex",
        "industry": "software",
        "employees": 350,
        "city": "Austin",
        "state": "TX",
        "country": "us",
        "website": "globex.com",
    }


@pytest.mark.parametrize(("country", "code"), [("United States", "us"), ("UK", "gb"), ("Germany", "de"), ("FR", "fr")])
def test_country_names_become_codes(country, code):
    # Given an address with a country name
    # When it is mapped
    updates = profile_updates({"address": {"country": country}})

    # Then the profile holds the lower-case country code
    assert updates["country"] == code


@pytest.mark.parametrize(
    ("employees", "expected"),
    [
        ("201-500", 350),
        ("10,000+", 10000),
        (" 42 ", 42),
        (120.0, 120.0),
        ("2.5", 2.5),
    ],
)
def test_employee_counts_become_numbers(employees, expected):
    # Given a company size as forms and CRMs send it
    # When it is mapped
    updates = profile_updates({"employees": employees})

    # Then it is a number (ranges take their middle)
    assert updates["employees"] == expected


@pytest.mark.parametrize("blank", ["", "   ", None, "unknown"])
def test_blank_or_unreadable_numbers_are_dropped(blank):
    # Given a size that is blank or not a number
    # When it is mapped
    updates = profile_updates({"numberOfEmployees": blank})

    # Then no employees update is produced
    assert "employees" not in updates


def test_blank_traits_never_overwrite_the_profile():
    # Given a profile with a name and a title
    profile = {"first_name": "Ana", "title": "VP of Marketing", "domain": "globex.com"}

    # When traits arrive with those fields blank
    changed = apply_profile(profile, profile_updates({"firstName": "  ", "title": "", "lastName": "Lopez"}), FREE_MAIL)

    # Then only the non-blank trait is applied
    assert changed is True
    assert profile == {"first_name": "Ana", "title": "VP of Marketing", "domain": "globex.com", "last_name": "Lopez"}


def test_unknown_and_structured_traits_are_ignored():
    # Given traits the profile has no field for
    traits = {"plan": "team", "tags": ["a", "b"], "preferences": {"newsletter": True}}

    # When they are mapped
    updates = profile_updates(traits)

    # Then nothing is produced
    assert updates == {}


def test_company_email_sets_the_company_domain():
    # Given an empty profile
    profile: dict = {}

    # When a work email is applied
    apply_profile(profile, {"email": "ana@globex.com"}, FREE_MAIL)

    # Then the company domain comes from the email (and the email itself is not a profile field)
    assert profile == {"domain": "globex.com"}


def test_free_mail_email_does_not_set_the_company_domain():
    # Given an empty profile
    profile: dict = {}

    # When a free-mail address is applied
    changed = apply_profile(profile, {"email": "ana.lopez@gmail.com"}, FREE_MAIL)

    # Then no company domain is derived
    assert changed is False
    assert "domain" not in profile


def test_free_mail_lead_takes_the_domain_from_the_website():
    # Given a free-mail lead whose company website is known
    profile: dict = {}

    # When both arrive
    apply_profile(profile, profile_updates({"email": "ana@gmail.com", "website": "https://www.globex.com/"}), FREE_MAIL)

    # Then the domain is the website's
    assert profile["domain"] == "globex.com"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ana.Lopez@Globex.COM ", "ana.lopez@globex.com"),
        ("ana@globex", None),
        ("not an email", None),
        ("ana lopez@globex.com", None),
        ("", None),
        (42, None),
        (None, None),
    ],
)
def test_normalize_email(raw, expected):
    # Given a value claimed to be an email
    # When it is normalised
    result = normalize_email(raw)

    # Then it is trimmed and lower-cased, or rejected
    assert result == expected


@pytest.mark.parametrize(
    ("traits", "path"),
    [
        ({"employees": "nan"}, "employees"),
        ({"numberOfEmployees": float("inf")}, "numberOfEmployees"),
        ({"annualRevenue": "1e400"}, "annualRevenue"),
        ({"annual_revenue": 1e200}, "annual_revenue"),
        ({"employees": -5}, "employees"),
        ({"employees": "1e400-1e401"}, "employees"),
        ({"company": {"employee_count": 10**30}}, "company.employee_count"),
    ],
)
def test_numbers_out_of_a_fields_range_are_dropped_and_reported(traits, path):
    # Given a numeric trait that reads as a number outside its field's range
    reported = []

    # When it is mapped
    updates = profile_updates(traits, lambda field, reason: reported.append(field))

    # Then it never reaches the profile, and its path is reported
    assert "employees" not in updates and "annual_revenue" not in updates
    assert reported == [path]


def test_text_fields_are_kept_to_their_length():
    updates = profile_updates({"country": "x" * 1000, "industry": "y" * 1000, "website": "z" * 300 + ".com"})

    assert (len(updates["country"]), len(updates["industry"])) == (200, 200)
    assert "website" not in updates  # longer than any DNS name


def test_an_address_longer_than_254_characters_is_not_an_email():
    assert normalize_email("a" * 250 + "@x.com") is None
    assert normalize_email("a" * 240 + "@x.com") == "a" * 240 + "@x.com"
