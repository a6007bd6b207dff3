"""Reading request bodies: a JSON object, or a 400 naming the field."""

from __future__ import annotations

import json
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
