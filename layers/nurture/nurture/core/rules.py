"""Conditions shared by fit rules, behaviour rules and content tags.

A condition is `path: spec` where path is dotted (`properties.path`,
`traits.industry`, `email_domain`) and spec is a scalar (equals), a list (one
of), or a one-key mapping naming an operator. String comparisons ignore case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = (
    "equals",
    "in",
    "not_in",
    "in_list",
    "not_in_list",
    "prefix",
    "contains",
    "regex",
    "gte",
    "lte",
    "between",
    "exists",
)


@dataclass(frozen=True)
class Condition:
    path: str
    op: str
    value: Any

    def matches(self, subject: Mapping[str, Any], lists: Mapping[str, frozenset[str]]) -> bool:
        actual = lookup(subject, self.path)
        op, expected = self.op, self.value
        if op == "exists":
            return (actual not in (None, "")) == bool(expected)
        if actual is None:
            return op in ("not_in", "not_in_list")
        if op in ("gte", "lte", "between"):
            number = _number(actual)
            if number is None:
                return False
            if op == "gte":
                return number >= expected
            if op == "lte":
                return number <= expected
            return expected[0] <= number <= expected[1]
        text = _text(actual)
        if op == "equals":
            return text == expected
        if op == "in":
            return text in expected
        if op == "not_in":
            return text not in expected
        if op == "in_list":
            return text in lists[expected]
        if op == "not_in_list":
            return text not in lists[expected]
        if op == "prefix":
            return text.startswith(expected)
        if op == "contains":
            return expected in text
        if op == "regex":
            return expected.search(text) is not None
        raise AssertionError(op)


def all_match(
    conditions: tuple[Condition, ...],
    subject: Mapping[str, Any],
    lists: Mapping[str, frozenset[str]],
) -> bool:
    return all(condition.matches(subject, lists) for condition in conditions)


def lookup(subject: Mapping[str, Any], path: str) -> Any:
    current: Any = subject
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
        if current is None:
            return None
    return current


def _text(value: Any) -> str:
    return str(value).strip().lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


def parse_condition(path: str, spec: Any, where: str, fail) -> Condition:
    """Build a Condition from YAML; `fail(path, reason)` raises ConfigError."""
    if isinstance(spec, list):
        return Condition(path, "in", frozenset(_text(v) for v in spec))
    if not isinstance(spec, Mapping):
        if spec is None:
            fail(where, "a condition needs a value (use {exists: true} to test presence)")
        return Condition(path, "equals", _text(spec))
    if len(spec) != 1:
        fail(where, f"a condition has exactly one operator, got {sorted(spec)}")
    op, value = next(iter(spec.items()))
    if op not in OPERATORS:
        fail(f"{where}.{op}", f"unknown operator; use one of {', '.join(OPERATORS)}")
    at = f"{where}.{op}"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            fail(at, "expected a non-empty list")
        return Condition(path, op, frozenset(_text(v) for v in value))
    if op in ("gte", "lte"):
        if _number(value) is None:
            fail(at, "expected a number")
        return Condition(path, op, _number(value))
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_number(v) is not None for v in value)):
            fail(at, "expected [low, high]")
        return Condition(path, op, (_number(value[0]), _number(value[1])))
    if op == "exists":
        if not isinstance(value, bool):
            fail(at, "expected true or false")
        return Condition(path, op, value)
    if op == "regex":
        try:
            return Condition(path, op, re.compile(str(value), re.IGNORECASE))
        except re.error as exc:
            fail(at, f"invalid regular expression: {exc}")
    if isinstance(value, list | Mapping) or value is None:
        fail(at, "expected a single value")
    return Condition(path, op, _text(value))
