"""JSON bodies read once at the door and held to what the table stores."""

from __future__ import annotations

import json

import pytest

from nurture.core.errors import BadRequestError, ValidationError
from nurture.core.payloads import MAX_DEPTH, parse_json, parse_json_object, storable


def refused_field(document) -> str:
    with pytest.raises(ValidationError) as raised:
        storable(document)
    return raised.value.field


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion
        b'{"email": "\xff"}',  # not UTF-8
        b'{"a": 1,}',  # not JSON
    ],
    ids=["deep", "not utf-8", "not json"],
)
def test_a_body_that_cannot_be_read_is_400_naming_the_body(body):
    # When an unreadable body is parsed
    with pytest.raises(BadRequestError) as raised:
        parse_json_object(body)

    # Then a 400 names the body (never a RecursionError or UnicodeDecodeError)
    assert raised.value.field == "body"


def test_an_integer_of_thousands_of_digits_is_refused_by_field():
    # Given an integer past int()'s 4,300-digit limit (a ValueError if read as such)
    body = b'{"n": ' + b"9" * 5000 + b"}"

    # When it is parsed
    with pytest.raises(ValidationError) as raised:
        parse_json_object(body)

    # Then the number is refused by its field
    assert raised.value.field == "n"


@pytest.mark.parametrize(
    ("literal", "field"),
    [
        ("NaN", "revenue"),
        ("Infinity", "revenue"),
        ("-Infinity", "revenue"),
        ("1e400", "revenue"),
        ("1e200", "revenue"),
        ("1e-200", "revenue"),
        ("1" * 39, "revenue"),
    ],
)
def test_numbers_the_table_cannot_store_are_refused_by_field(literal, field):
    # Given a body whose revenue is not a number DynamoDB stores
    body = f'{{"outcome": "won", "revenue": {literal}}}'.encode()

    # When it is parsed
    with pytest.raises(ValidationError) as raised:
        parse_json_object(body)

    # Then the field is named
    assert raised.value.field == field


@pytest.mark.parametrize("number", [0, -0.0, 1e125, -1e125, 1e-129, 10**38 - 1, 3.14, True])
def test_numbers_within_the_tables_range_are_kept(number):
    document = {"value": number}

    storable(document)

    assert parse_json_object(json.dumps(document).encode()) == document


def test_a_lone_surrogate_is_refused_naming_its_path():
    # Given text that JSON can escape but UTF-8 cannot encode
    body = b'{"properties": {"plan": ["ok", "\\ud800"]}}'

    # When it is parsed
    with pytest.raises(ValidationError) as raised:
        parse_json_object(body)

    # Then its path is named
    assert raised.value.field == "properties.plan[1]"


def test_names_must_be_valid_unicode_and_not_empty():
    assert refused_field({"properties": {"\ud800": 1}}) == "properties.\\ud800"
    assert refused_field({"properties": {"\u00e9\ud800": 1}}) == "properties.\\xe9\\ud800"
    assert refused_field({"properties": {"": 1}}) == "properties"


def test_nesting_past_the_limit_is_refused_naming_where():
    # Given a document nested one level past the limit under "properties"
    document: dict = {}
    inner = document
    for _ in range(MAX_DEPTH):
        inner["x"] = {}
        inner = inner["x"]

    # When it is checked under a call's path
    with pytest.raises(ValidationError) as raised:
        storable({"properties": document}, "batch[2]")

    # Then the deepest level at fault is named
    assert raised.value.field.startswith("batch[2].properties.x.x")


def test_an_unchecked_parse_leaves_the_checking_to_the_caller():
    # A batch is checked call by call, so one call's NaN costs only that call
    document = parse_json_object(b'{"batch": [{"n": NaN}]}', checked=False)

    assert refused_field(document["batch"][0]) == "n"


def test_parse_json_reads_any_document():
    assert parse_json(b"[1, 2]") == [1, 2]
