"""The Segment HTTP Tracking API boundary: payloads exactly as the Segment and
RudderStack SDKs send them, validated and mapped to TrackingEvents.

Validation happens here, once: a call accepted is one the consumer, the table,
the lead view and the report all take (see `nurture.core.payloads` for the
table's rules on every value). Beyond the shape of each call type:

- ids (`messageId`, `userId`, `anonymousId`, `groupId`, `previousId`) at most
  256 characters and 512 bytes of UTF-8, an email at most 254 characters, so
  every key built from them stays within DynamoDB's key sizes;
- numeric traits (`employees`, `annualRevenue`...) a number from 0 to their
  limit in `nurture.core.profile.NUMERIC_LIMITS`, whether sent as a number or
  as text ("nan", "inf" and "1e400" are refused, not read as infinity);
- time: each of `timestamp`, `originalTimestamp` and `sentAt` must be an
  ISO 8601 time from 2000-01-01 to 2100-01-01, else the call is refused
  naming it (a batch's own `sentAt` is ignored instead: the calls' times
  still hold). The event's time, explicit or corrected for the client's
  clock skew, is then clamped to that window of receipt: no later than five
  minutes after receipt, no earlier than 2000-01-01 (a skew correction of
  decades lands there rather than refusing a call whose own fields are sane).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nurture.core.domain import TrackingEvent
from nurture.core.errors import BadRequestError, PayloadTooLargeError, ValidationError
from nurture.core.payloads import parse_json_object, storable
from nurture.core.profile import MAX_EMAIL_CHARS, normalize_email, profile_updates

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")
_CONTEXT_KEYS = ("ip", "userAgent", "page", "campaign", "timezone", "locale", "library", "referrer")
_MAX_FUTURE_SKEW = 300.0
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
MAX_ID_CHARS = 256
MAX_ID_BYTES = 512
# The fields a dropped call can be blamed on (the EventsRejected metric's
# `reason`): what parse_message checks, so the set is bounded.
REJECTION_REASONS = (
    "call",
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "event",
    "groupId",
    "previousId",
    "traits",
    "traits.email",
    "properties",
    "context",
    "timestamp",
    "originalTimestamp",
    "sentAt",
)


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """Inflate gzip/deflate bodies, refusing any that inflate past the batch limit."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity") and raw[:2] != b"\x1f\x8b":
        if len(raw) > MAX_BATCH_BYTES:
            raise PayloadTooLargeError(
                f"request body is {len(raw)} bytes; the limit is {MAX_BATCH_BYTES}", field="body"
            )
        return raw
    if encoding not in ("", "identity", "gzip", "deflate"):
        raise BadRequestError(f"unsupported Content-Encoding {encoding!r}; use gzip or none", field="Content-Encoding")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise BadRequestError(f"body is not valid {encoding or 'gzip'} data: {exc}", field="body") from exc
    if len(body) > MAX_BATCH_BYTES or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed body exceeds {MAX_BATCH_BYTES} bytes", field="body")
    return body


def parse_time(value: Any, field: str) -> float | None:
    """Unix seconds of an ISO 8601 time from 2000-01-01 to 2100-01-01 (UTC
    when it names no offset); a ValidationError naming `field` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationError("expected an ISO 8601 timestamp string", field=field)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    except (ValueError, OverflowError) as exc:
        raise ValidationError(f"{value!r} is not an ISO 8601 timestamp", field=field) from exc
    if not EARLIEST_TIME <= seconds < LATEST_TIME:
        raise ValidationError(f"{value!r} is not between 2000-01-01 and 2100-01-01", field=field)
    return seconds


def _object(message: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("expected a JSON object", field=f"{at}{key}")
    return value


def _optional_id(message: Mapping[str, Any], key: str, at: str) -> str | None:
    value = message.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError("expected a string", field=f"{at}{key}")
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS or len(text.encode("utf-8")) > MAX_ID_BYTES:
        raise ValidationError(
            f"longer than {MAX_ID_CHARS} characters or {MAX_ID_BYTES} bytes of UTF-8", field=f"{at}{key}"
        )
    return text or None


def event_time(message: Mapping[str, Any], batch_sent_at: float | None, received_at: float, at: str) -> float:
    """Segment's rule: an explicit timestamp wins; otherwise the client's clock
    skew (sentAt - originalTimestamp) is corrected against receivedAt. The
    result is clamped to no later than five minutes after receipt and no
    earlier than 2000-01-01 (or receipt, for a clock that is itself older)."""
    timestamp = parse_time(message.get("timestamp"), f"{at}timestamp")
    original = parse_time(message.get("originalTimestamp"), f"{at}originalTimestamp")
    sent_at = parse_time(message.get("sentAt"), f"{at}sentAt") or batch_sent_at
    if timestamp is None:
        if original is not None and sent_at is not None:
            timestamp = received_at - (sent_at - original)
        else:
            timestamp = original if original is not None else received_at
    return max(min(timestamp, received_at + _MAX_FUTURE_SKEW), min(EARLIEST_TIME, received_at))


def parse_message(
    message: Any, call_type: str | None, source: str, received_at: float, batch_sent_at: float | None, at: str = ""
) -> TrackingEvent:
    """Validate one Segment call and map it to a TrackingEvent; errors name the field."""
    if not isinstance(message, dict):
        raise ValidationError("expected a JSON object", field=at.rstrip(".") or "body")
    storable(message, at.rstrip("."))  # before anything walks it: bounded depth, finite numbers, valid text
    size = len(json.dumps(message, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise PayloadTooLargeError(
            f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}", field=at.rstrip(".") or "body"
        )
    kind = message.get("type", call_type)
    if call_type is not None and kind != call_type:
        raise ValidationError(f"{kind!r} sent to the /v1/{call_type} endpoint", field=f"{at}type")
    if kind not in CALL_TYPES:
        raise ValidationError(f"{kind!r} is not one of {', '.join(CALL_TYPES)}", field=f"{at}type")
    user_id = _optional_id(message, "userId", at)
    anonymous_id = _optional_id(message, "anonymousId", at)
    if user_id is None and anonymous_id is None:
        raise ValidationError("userId or anonymousId is required", field=f"{at}userId")
    traits = _object(message, "traits", at)
    properties = _object(message, "properties", at)
    context = _object(message, "context", at)
    context_traits = context.get("traits") if isinstance(context.get("traits"), dict) else {}
    all_traits = {**context_traits, **traits}
    previous_id = group_id = None
    if kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("track calls need a non-empty event name", field=f"{at}event")
        name = name.strip()[:200]
    elif kind in ("page", "screen"):
        name = kind
        properties = _page_properties(message, properties, context)
    elif kind == "group":
        name = "group"
        group_id = _optional_id(message, "groupId", at)
        if group_id is None:
            raise ValidationError("group calls need a groupId", field=f"{at}groupId")
    elif kind == "alias":
        name = "alias"
        previous_id = _optional_id(message, "previousId", at)
        if previous_id is None or user_id is None:
            raise ValidationError("alias calls need previousId and userId", field=f"{at}previousId")
    else:
        name = "identify"
    email = normalize_email(all_traits.get("email")) if kind != "group" else None
    if kind != "group" and traits.get("email") not in (None, "") and email is None:
        raise ValidationError(not_an_email(traits["email"]), field=f"{at}traits.email")
    _check_traits(traits, context_traits, at)
    message_id = _optional_id(message, "messageId", at) or _derived_id(message)
    return TrackingEvent(
        message_id=message_id,
        kind=kind,
        name=name,
        timestamp=event_time(message, batch_sent_at, received_at, at),
        received_at=received_at,
        source=source,
        user_id=user_id,
        anonymous_id=anonymous_id,
        email=email,
        previous_id=previous_id,
        group_id=group_id,
        traits=all_traits,
        properties=properties,
        context={key: context[key] for key in _CONTEXT_KEYS if key in context},
    )


def not_an_email(value: Any) -> str:
    """Why a value is refused as an email address."""
    if isinstance(value, str) and len(value.strip()) > MAX_EMAIL_CHARS:
        return f"an email address has at most {MAX_EMAIL_CHARS} characters, not {len(value.strip())}"
    return f"{value!r:.300} is not an email address"


def _check_traits(traits: Mapping[str, Any], context_traits: Mapping[str, Any], at: str) -> None:
    """Refuse a numeric trait out of its range (NaN, "inf", 1e200, a negative
    count), naming it, rather than let the lead's profile drop it silently."""

    def refuse(path: str, reason: str) -> None:
        raise ValidationError(reason, field=f"{at}{path}")

    profile_updates(context_traits, refuse, "context.traits.")
    profile_updates(traits, refuse, "traits.")


def _page_properties(
    message: Mapping[str, Any], properties: dict[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    page = context.get("page") if isinstance(context.get("page"), dict) else {}
    result = dict(properties)
    for key in ("path", "url", "title", "referrer", "search"):
        if key not in result and key in page:
            result[key] = page[key]
    if "path" not in result and isinstance(result.get("url"), str):
        from urllib.parse import urlsplit

        result["path"] = urlsplit(result["url"]).path or "/"
    if message.get("name") and "name" not in result:
        result["name"] = message["name"]
    if message.get("category") and "category" not in result:
        result["category"] = message["category"]
    return result


def _derived_id(message: Mapping[str, Any]) -> str:
    """A stable id for SDKs that omit messageId, so an identical resend is still a duplicate."""
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "derived-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Rejection:
    """One call of a batch that was dropped: where it was and why."""

    index: int
    field: str  # the field at fault, relative to the call (e.g. "userId", "traits.email")
    message: str

    def to_body(self) -> dict[str, Any]:
        return {"index": self.index, "field": f"batch[{self.index}].{self.field}", "message": self.message}


@dataclass
class ParsedRequest:
    events: list[TrackingEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def parse_request(body: bytes, call_type: str | None, source: str, received_at: float) -> ParsedRequest:
    """Parse a /v1/batch (call_type None) or single-call body (see parse_document)."""
    return parse_document(parse_json_object(body, checked=False), call_type, source, received_at)


def parse_document(document: dict[str, Any], call_type: str | None, source: str, received_at: float) -> ParsedRequest:
    """Map a /v1/batch (call_type None) or single-call JSON object to events.

    A batch is taken call by call, as Segment's own API does: every valid call
    is kept and each invalid one is dropped with its reason, so one bad call
    never costs the good ones (the SDKs treat a 4xx as final and would discard
    the whole batch). Only what makes the request itself unusable raises: a
    body that is not a JSON object, a batch that is not a list, a call over
    32 KB (413). A single-call request has no neighbours: an invalid call raises.
    The document may come unchecked (`parse_json_object(..., checked=False)`):
    each call is checked on its own, so one call's NaN refuses that call only.
    """
    if call_type is not None:
        return ParsedRequest([parse_message(document, call_type, source, received_at, None)])
    batch = document.get("batch")
    if not isinstance(batch, list):
        raise ValidationError("expected a list of calls", field="batch")
    if not batch:
        raise ValidationError("the batch is empty", field="batch")
    try:
        sent_at = parse_time(document.get("sentAt"), "sentAt")
    except ValidationError:
        sent_at = None  # each call's own timestamps still hold; without them, receipt time
    shared_context = document.get("context") if isinstance(document.get("context"), dict) else None
    parsed = ParsedRequest()
    for index, message in enumerate(batch):
        if shared_context and isinstance(message, dict) and "context" not in message:
            message = {**message, "context": shared_context}
        at = f"batch[{index}]."
        try:
            parsed.events.append(parse_message(message, None, source, received_at, sent_at, at=at))
        except ValidationError as error:
            relative = (error.field or "").removeprefix(at).removeprefix(at.rstrip("."))
            parsed.rejected.append(Rejection(index, relative or "call", error.message))
    return parsed
