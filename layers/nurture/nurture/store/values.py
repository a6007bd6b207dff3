"""DynamoDB attribute values to and from plain Python values: the one
marshalling of the store, used by the models' custom attributes and by the
ingest hot path's plain items alike (no PynamoDB here, so the hot path can
import it without loading PynamoDB)."""

from __future__ import annotations

from typing import Any


def to_attribute(value: Any) -> dict[str, Any]:
    """A JSON-like value as a DynamoDB attribute value (floats to 12 significant digits)."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": format(value, ".12g")}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_attribute(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "L":
        return [from_attribute(v) for v in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "SS":
        return list(value)
    raise TypeError(f"unexpected attribute type {kind}")


def to_item(document: dict[str, Any]) -> dict[str, Any]:
    return {key: to_attribute(value) for key, value in document.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: from_attribute(value) for key, value in item.items()}


def key_item(pk: str, sk: str) -> dict[str, Any]:
    """A primary key as a request's Key."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}
