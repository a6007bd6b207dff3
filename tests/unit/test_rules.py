"""Conditions shared by fit rules, behaviour rules and content tags."""

from __future__ import annotations

from typing import Any

import pytest

from nurture.core.errors import ConfigError
from nurture.core.rules import Condition, lookup, parse_condition

LISTS = {"competitor_domains": frozenset({"pipelineiq.example", "funnelforge.example"})}


def condition(path: str, spec: Any) -> Condition:
    """A condition parsed exactly as the YAML loader parses one."""

    def fail(where: str, reason: str):
        raise ConfigError("scoring.yaml", where, reason)

    return parse_condition(path, spec, f"where.{path}", fail)


def matches(path: str, spec: Any, subject: dict[str, Any]) -> bool:
    return condition(path, spec).matches(subject, LISTS)


@pytest.mark.parametrize(
    ("path_value", "expected"),
    [
        ("/pricing", True),
        ("/pricing/enterprise", True),
        ("/PRICING", True),
        ("/blog/pricing", False),
    ],
)
def test_prefix_matches_the_start_ignoring_case(path_value, expected):
    # Given a prefix condition on the page path
    # When a page's properties are tested
    result = matches("properties.path", {"prefix": "/Pricing"}, {"properties": {"path": path_value}})

    # Then only paths starting with it match
    assert result is expected


def test_list_spec_means_one_of_ignoring_case():
    # Given a condition written as a plain list
    subject = {"seniority": "VP"}

    # When it is tested
    result = matches("seniority", ["executive", "vp", "director"], subject)

    # Then it matches any member, whatever the case
    assert result is True


def test_in_operator_rejects_values_outside_the_list():
    # Given an `in` condition
    # When a value outside it is tested
    result = matches("country", {"in": ["us", "ca"]}, {"country": "de"})

    # Then it does not match
    assert result is False


@pytest.mark.parametrize(("domain", "expected"), [("PipelineIQ.example", True), ("globex.com", False)])
def test_in_list_looks_up_a_named_list(domain, expected):
    # Given an in_list condition on a configured list
    # When an email domain is tested
    result = matches("email_domain", {"in_list": "competitor_domains"}, {"email_domain": domain})

    # Then members match, case-insensitively
    assert result is expected


@pytest.mark.parametrize(
    ("employees", "expected"),
    [
        (200, True),
        (20000, True),
        (350, True),
        ("1,200", True),
        (199, False),
        (20001, False),
        ("many", False),
    ],
)
def test_between_is_inclusive_and_reads_numeric_text(employees, expected):
    # Given a between condition on company size
    # When a size is tested
    result = matches("employees", {"between": [200, 20000]}, {"employees": employees})

    # Then both bounds are inside and text numbers count
    assert result is expected


@pytest.mark.parametrize(("revenue", "expected"), [(50_000_000, True), (49_999_999.5, False), (True, False)])
def test_gte_compares_numbers_and_ignores_booleans(revenue, expected):
    # Given a gte condition
    # When a value is tested
    result = matches("annual_revenue", {"gte": 50_000_000}, {"annual_revenue": revenue})

    # Then only numbers at or above the threshold match
    assert result is expected


@pytest.mark.parametrize(("title", "expected"), [("Head of RevOps", True), ("rev ops lead", True), ("Revenue", False)])
def test_regex_searches_ignoring_case(title, expected):
    # Given a regex condition
    # When a title is tested
    result = matches("title", {"regex": r"rev ?ops"}, {"title": title})

    # Then a match anywhere, in any case, counts
    assert result is expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ({"traits": {"phone": "+1 415 555 0142"}}, True),
        ({"traits": {"phone": ""}}, False),
        ({"traits": {}}, False),
        ({}, False),
    ],
)
def test_exists_true_needs_a_non_blank_value(subject, expected):
    # Given an exists condition on a nested path
    # When subjects with and without it are tested
    result = matches("traits.phone", {"exists": True}, subject)

    # Then only a non-blank value counts as present
    assert result is expected


def test_exists_false_matches_a_missing_value():
    # Given an exists: false condition
    # When the value is missing
    result = matches("traits.phone", {"exists": False}, {"traits": {}})

    # Then it matches
    assert result is True


@pytest.mark.parametrize(("country", "expected"), [("DE", True), ("us", False), (None, True)])
def test_not_in_matches_missing_values_too(country, expected):
    # Given a not_in condition
    # When a value (or none) is tested
    result = matches("country", {"not_in": ["US", "CA"]}, {"country": country})

    # Then anything outside the list, including nothing, matches
    assert result is expected


def test_equals_ignores_case_and_surrounding_blanks():
    # Given a scalar (equals) condition
    # When a value differing only in case and blanks is tested
    result = matches("properties.form_id", "Demo-Request", {"properties": {"form_id": "  demo-request "}})

    # Then it matches
    assert result is True


def test_lookup_stops_at_non_mappings():
    # Given a dotted path running through a string
    # When it is looked up
    value = lookup({"properties": {"path": "/pricing"}}, "properties.path.length")

    # Then there is no value rather than an error
    assert value is None


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        ({"between": [1]}, "where.employees.between", "expected [low, high]"),
        ({"gte": "lots"}, "where.employees.gte", "expected a number"),
        ({"in": []}, "where.employees.in", "expected a non-empty list"),
        ({"exists": "yes"}, "where.employees.exists", "expected true or false"),
        ({"regex": "("}, "where.employees.regex", "invalid regular expression"),
        ({"gte": 1, "lte": 5}, "where.employees", "exactly one operator"),
        (None, "where.employees", "needs a value"),
    ],
)
def test_malformed_conditions_name_their_path(spec, path, reason):
    # Given a malformed condition
    # When it is parsed
    with pytest.raises(ConfigError) as caught:
        condition("employees", spec)

    # Then the error names where it is and why
    assert caught.value.path == path
    assert reason in caught.value.reason
