"""Reading requests: a header whatever its case, and JSON bodies checked once,
at the door, against what the table will take (or a 400 naming the field).

Whatever the API accepts is queued and written to DynamoDB later, by a
consumer that cannot answer the client any more; a value DynamoDB refuses
there fails the whole SQS batch on every redelivery. So every value of a body
is held to DynamoDB's rules here, before anything is queued:

- numbers finite and storable: an integer of at most 38 digits, any other
  number 0 or of a magnitude between 1e-129 and 1e125 (DynamoDB's range with
  the store's 12-digit formatting of floats; JSON's NaN and Infinity, and
  1e400, which Python reads as infinity, are refused);
- strings and object keys valid Unicode (JSON's `\\ud800` escapes decode to
  lone surrogates, which cannot be encoded as UTF-8), object keys non-empty
  (DynamoDB refuses an empty attribute name at any depth);
- nesting at most `MAX_DEPTH` levels (DynamoDB nests 32; a lead's outbox
  holds request values some levels down).

A body that cannot be read at all (not UTF-8, not JSON, nested past what the
parser takes, an integer of thousands of digits) is a 400 naming the body;
a value at fault is a 400 naming its path (`traits.employees`, `batch[3]`...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from nurture.core.errors import BadRequestError, ValidationError

MAX_DEPTH = 16
MAX_INTEGER_DIGITS = 38
LARGEST_NUMBER = 1e125
SMALLEST_NUMBER = 1e-129
_LARGEST_INTEGER = 10**MAX_INTEGER_DIGITS
_READABLE_DIGITS = 1000  # longer integer literals are read as infinity, then refused by field


def _integer(text: str) -> int | float:
    # int() refuses literals over 4,300 digits with a ValueError, and converts
    # long ones in quadratic time; either way the number is refused by field later
    return int(text) if len(text) <= _READABLE_DIGITS else math.inf


def parse_json(body: bytes, field: str = "body") -> Any:
    """A JSON document, or a 400 naming `field` when the body cannot be read."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_int=_integer)
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"body is not UTF-8: {exc.reason} at byte {exc.start}", field=field) from exc
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}", field=field) from exc
    except RecursionError as exc:
        raise BadRequestError("body nests too deeply to be read", field=field) from exc
    except ValueError as exc:  # a number the parser cannot represent
        raise BadRequestError(f"body is not readable JSON: {exc}", field=field) from exc


def parse_json_object(body: bytes, field: str = "body", checked: bool = True) -> dict[str, Any]:
    """A JSON object body; unless `checked` is False (the caller checks its
    parts, as a batch does call by call), every value is held to the table's
    rules with `storable`."""
    document = parse_json(body, field)
    if not isinstance(document, dict):
        raise ValidationError("expected a JSON object", field=field)
    if checked:
        storable(document)
    return document


def storable_number(value: int | float) -> bool:
    """Whether DynamoDB stores this number as the store formats it."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_LARGEST_INTEGER < value < _LARGEST_INTEGER
    return math.isfinite(value) and (value == 0 or SMALLEST_NUMBER <= abs(value) <= LARGEST_NUMBER)


def storable_text(value: str) -> bool:
    """Whether the text is valid Unicode (no lone surrogates), so it encodes as UTF-8."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _path(at: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{at}[{key}]"
    return f"{at}.{key}" if at else key


def _shown(key: str) -> str:
    return key if storable_text(key) else key.encode("ascii", "backslashreplace").decode("ascii")


def storable(value: Any, at: str = "") -> None:
    """ValidationError naming the path (under `at`) of the first value of a
    JSON document the table would refuse; see the module's docstring. Walks
    iteratively, so no document can exhaust the stack."""
    pending: list[tuple[Any, str, int]] = [(value, at, 0)]
    while pending:
        current, path, depth = pending.pop()
        if isinstance(current, str):
            if not storable_text(current):
                raise ValidationError("is not valid Unicode (it holds a lone surrogate)", field=path or "body")
        elif isinstance(current, int | float):
            if not storable_number(current):
                raise ValidationError(
                    f"{current!r:.40} is not a storable number: finite, at most {MAX_INTEGER_DIGITS} digits, "
                    f"of magnitude {SMALLEST_NUMBER:g} to {LARGEST_NUMBER:g}",
                    field=path or "body",
                )
        elif isinstance(current, Mapping | list):
            if depth >= MAX_DEPTH:
                raise ValidationError(f"nests deeper than {MAX_DEPTH} levels", field=path or "body")
            if isinstance(current, list):
                pending.extend((item, _path(path, index), depth + 1) for index, item in enumerate(current))
                continue
            for key, item in current.items():
                if not isinstance(key, str) or not key:
                    raise ValidationError("holds a member with an empty name", field=path or "body")
                if not storable_text(key):
                    raise ValidationError("name is not valid Unicode", field=_path(path, _shown(key)))
                pending.append((item, _path(path, key), depth + 1))
        elif current is not None and not isinstance(current, bool):
            raise ValidationError(f"unexpected {type(current).__name__}", field=path or "body")


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
