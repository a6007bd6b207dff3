"""Reading requests: a header whatever its case, and a JSON object body (or a
400 naming the field)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nurture.core.errors import BadRequestError, ValidationError


def parse_json_object(body: bytes, field: str = "body") -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}", field=field) from exc
    if not isinstance(document, dict):
        raise ValidationError("expected a JSON object", field=field)
    return document


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by name, whatever its case (API Gateway passes them as
    the client sent them, Chalice and the local gateway lower-case them)."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value
