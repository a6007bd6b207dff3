"""API use cases: authenticate a source, validate its payload, and queue the
events. A 2xx is only returned once the events are on the ingest queue.

The key is checked before the body is parsed: a request without a valid one
is refused having cost a header read (or, for analytics.js, which sends its
write key in the body, a bounded scan of the body for it). Every error is a
typed one naming the field, mapped to a 4xx by the API; nothing a client
sends makes a 500. What is accepted has been held to the table's rules
(`nurture.core.payloads`, `nurture.ingest.segment`), so the consumer never
fails on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from nurture.config.loader import Config, FormSource, SegmentSource
from nurture.core.domain import TrackingEvent
from nurture.core.errors import (
    AuthenticationError,
    NotFoundError,
    PayloadTooLargeError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from nurture.core.observability import add_metric, bounded, get_logger
from nurture.core.payloads import header, parse_json_object, storable_text
from nurture.core.ports import IngestQueue, KeyProvider
from nurture.core.profile import MAX_EMAIL_CHARS, normalize_email, profile_updates
from nurture.core.rules import lookup
from nurture.ingest.form_tools import TOOLS
from nurture.ingest.segment import (
    MAX_ID_BYTES,
    MAX_ID_CHARS,
    REJECTION_REASONS,
    ParsedRequest,
    decode_body,
    not_an_email,
    parse_document,
)

SIGNATURE_WINDOW_SECONDS = 300
MAX_FORM_BYTES = 512 * 1024  # a form tool's delivery, with its form's definition
MAX_FORM_EVENT_BYTES = 64 * 1024  # the event a form makes, queued whole in one message
_PII_FIELDS = ("email", "first_name", "last_name", "phone")
_MAX_KEY_CHARS = 1024  # no key or signature we issue or check is longer
# analytics.js's key in its body: a string of the characters keys are made of
_BODY_WRITE_KEY = re.compile(rb'"writeKey"\s*:\s*"([^"\\]{1,1024})"')
_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")


def basic_user(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic ") or len(authorization) > 4 * _MAX_KEY_CHARS:
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


def same_secret(candidate: str, secret: str | None) -> bool:
    """Whether the candidate is the secret, compared in constant time as bytes
    (a str comparison raises on non-ASCII text); False for text that is not
    valid Unicode or longer than any key."""
    if not secret or len(candidate) > _MAX_KEY_CHARS or not storable_text(candidate):
        return False
    return hmac.compare_digest(candidate.encode(), secret.encode())


def lead_reference(reference: str) -> str:
    """A lead's id or email as a path names it; a ValidationError naming `lead`
    when it is longer than any id or address (it would make a key the table
    refuses) or not valid Unicode."""
    if len(reference) > MAX_EMAIL_CHARS or not storable_text(reference):
        raise ValidationError(f"a lead is named by its id or email, at most {MAX_EMAIL_CHARS} characters", field="lead")
    return reference


def _metric_reason(field: str) -> str:
    """The bounded reason of a dropped call: its field, or the top-level one it lies in."""
    top = re.split(r"[.\[]", field, maxsplit=1)[0]
    return field if field in REJECTION_REASONS else bounded(top, REJECTION_REASONS)


class Ingestor:
    def __init__(self, config: Config, keys: KeyProvider, queue: IngestQueue) -> None:
        self.config = config
        self.keys = keys
        self.queue = queue

    def authenticate_admin(self, headers: Mapping[str, str]) -> None:
        authorization = header(headers, "Authorization") or ""
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if not token:
            raise AuthenticationError("send the admin key as 'Authorization: Bearer <key>'", field="Authorization")
        if not same_secret(token, self.keys.keys().get("admin")):
            raise AuthenticationError("the admin key is not valid", field="Authorization")

    def authenticate_form_reader(self, form_name: str | None, headers: Mapping[str, str]) -> bool:
        """The admin key (Bearer), or the form source's own secret as
        X-Nurture-Key (a site's server asking what its form should show).
        True when the caller may look a lead up by email or id: the admin, or
        a source whose secret signs its deliveries and so never leaves a
        server. False for a source of `auth: key`, whose key travels in page
        URLs: it is public, so it may only ask about the visitor it is (by
        the browser's anonymous id), never whether an email is a lead's."""
        key = header(headers, "X-Nurture-Key")
        source = self.config.forms.get(form_name or "")
        if key and source is not None:
            if not same_secret(key, self.keys.keys().get(source.secret)):
                raise AuthenticationError("the form source key is not valid", field="X-Nurture-Key")
            return source.auth != "key"
        self.authenticate_admin(headers)
        return True

    def _sources_of_key(self, key: str) -> list[SegmentSource]:
        """The Segment sources whose write key this is (the local stack gives them all one)."""
        secrets = self.keys.keys()
        return [s for s in self.config.segment_sources.values() if same_secret(key, secrets.get(s.secret))]

    def _segment_source(self, key: str | None, origin: str | None) -> SegmentSource:
        """The source the write key names; where sources share a key, the one
        that allows the request's origin."""
        if not key:
            raise AuthenticationError("send the source's write key as the HTTP Basic user name", field="Authorization")
        named = self._sources_of_key(key)
        if not named:
            raise AuthenticationError("unknown write key", field="Authorization")
        return next((source for source in named if source.origins.allows(origin)), named[0])

    def browser_source(self, write_key: str) -> SegmentSource:
        """The source a browser SDK's write key names, for its settings request.
        Only sources that list allowed origins answer: a server-side key gets
        the same 404 as a key nobody issued."""
        for source in self._sources_of_key(write_key):
            if source.origins.patterns:
                return source
        raise NotFoundError("no browser source has this write key", field="writeKey")

    def segment(
        self,
        call_type: str | None,
        raw_body: bytes,
        headers: Mapping[str, str],
        now: float,
        query: Mapping[str, str] | None = None,
    ) -> ParsedRequest:
        """Accept a Segment HTTP Tracking API call: every valid call is queued,
        each invalid call of a batch is dropped, logged and counted by reason.

        The write key is the HTTP Basic user name (server SDKs, RudderStack),
        `writeKey` in the body (analytics.js) or `?writeKey=` (RudderStack's
        beacon, which cannot set headers). A request from a web page (it has an
        Origin) must come from an origin the source lists."""
        origin = header(headers, "Origin")
        key = basic_user(header(headers, "Authorization")) or (query or {}).get("writeKey")
        if key:
            source = self._segment_source(key, origin)
            source.origins.require(origin, "send to this source")
            body = decode_body(raw_body, header(headers, "Content-Encoding"))
            document = parse_json_object(body, checked=False)
        else:
            # analytics.js: the key is in the body. Inflating is bounded by
            # the batch limit; the key is found by a linear scan, and only a
            # body whose key is valid is parsed (then held to that key).
            body = decode_body(raw_body, header(headers, "Content-Encoding"))
            found = _BODY_WRITE_KEY.search(body)
            key = found.group(1).decode("utf-8", "replace") if found else None
            source = self._segment_source(key, origin)
            source.origins.require(origin, "send to this source")
            document = parse_json_object(body, checked=False)
            if document.get("writeKey") != key:
                raise AuthenticationError("the body's writeKey is not the source's write key", field="writeKey")
        parsed = parse_document(document, call_type, source.name, now)
        if parsed.events:
            self.queue.enqueue(parsed.events)
            add_metric("EventsAccepted", len(parsed.events))
        for rejection in parsed.rejected:
            add_metric("EventsRejected", reason=_metric_reason(rejection.field))
            get_logger().warning(
                "call dropped from a batch",
                extra={
                    "source": source.name,
                    "index": rejection.index,
                    "field": rejection.field,
                    "reason": rejection.message,
                },
            )
        return parsed

    def form(
        self, source_name: str, raw_body: bytes, headers: Mapping[str, str], query: Mapping[str, str], now: float
    ) -> str:
        """Accept a form webhook: signed the source's way (Nurture's own
        signature, the source key, or a form tool's own signature and payload
        shape); returns the event's message id."""
        source = self.config.forms.get(source_name)
        if source is None:
            raise NotFoundError(f"no form source named {source_name!r:.100} is configured", field="source")
        source.origins.require(header(headers, "Origin"), "post this form")
        if len(raw_body) > MAX_FORM_BYTES:
            raise PayloadTooLargeError(f"the form is {len(raw_body)} bytes; the limit is {MAX_FORM_BYTES}", "body")
        tool = TOOLS.get(source.auth)
        submission: Mapping[str, Any]
        if tool is not None:
            secret = self.keys.keys().get(source.secret)
            submission = tool.receive(secret, raw_body, headers, now, source.replay_window_seconds)
        else:
            self._authenticate_form(source, raw_body, headers, query, now)
            submission = _parse_form(raw_body, header(headers, "Content-Type") or "")
        event = form_event(source, submission, raw_body, now)
        self.queue.enqueue([event])
        add_metric("EventsAccepted")
        return event.message_id

    def _authenticate_form(
        self, source: FormSource, raw_body: bytes, headers: Mapping[str, str], query: Mapping[str, str], now: float
    ) -> None:
        secret = self.keys.keys().get(source.secret)
        if source.auth == "key":
            key = header(headers, "X-Nurture-Key") or query.get("key")
            if not key:
                raise AuthenticationError("send the source key as X-Nurture-Key or ?key=", field="X-Nurture-Key")
            if not same_secret(key, secret):
                raise AuthenticationError("the source key is not valid", field="X-Nurture-Key")
            return
        timestamp = header(headers, "X-Nurture-Timestamp")
        signature = header(headers, "X-Nurture-Signature")
        if not timestamp:
            raise AuthenticationError("signed forms need X-Nurture-Timestamp", field="X-Nurture-Timestamp")
        if not signature:
            raise AuthenticationError("signed forms need X-Nurture-Signature", field="X-Nurture-Signature")
        # Digits only: float() would also read "NaN" (which no window excludes),
        # "inf", "1_700_000_000" and digits of other scripts.
        if not _UNIX_SECONDS.match(timestamp.strip()):
            raise AuthenticationError("X-Nurture-Timestamp must be Unix seconds", field="X-Nurture-Timestamp")
        sent_at = float(timestamp)
        if not math.isfinite(sent_at) or abs(now - sent_at) > SIGNATURE_WINDOW_SECONDS:
            raise AuthenticationError(
                "the signature is older than 5 minutes (or from the future)", field="X-Nurture-Timestamp"
            )
        if not secret:
            raise AuthenticationError("the source has no signing secret configured", field="X-Nurture-Signature")
        expected = sign_form(secret, timestamp, raw_body)
        if not same_secret(signature.strip().removeprefix("sha256="), expected):
            raise AuthenticationError("the signature does not match the body", field="X-Nurture-Signature")


def sign_form(secret: str, timestamp: str, raw_body: bytes) -> str:
    """Hex HMAC-SHA256 of '<timestamp>.<raw body>' — what a form tool sends as X-Nurture-Signature."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()


def _parse_form(raw_body: bytes, content_type: str) -> dict[str, Any]:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/json":
        return parse_json_object(raw_body)
    if media_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(raw_body.decode(), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise UnprocessableError("form body is not UTF-8", field="body") from exc
        return {key: values[-1] for key, values in fields.items()}
    raise UnsupportedMediaTypeError(
        f"send application/json or application/x-www-form-urlencoded, not {media_type or 'nothing'}",
        field="Content-Type",
    )


def _field(submission: Mapping[str, Any], path: str) -> Any:
    return submission[path] if path in submission else lookup(submission, path)


def _refuse_trait(field_path: str):
    def refuse(_: str, reason: str) -> None:
        raise UnprocessableError(reason, field=field_path)

    return refuse


def _form_id(value: Any, field: str) -> str | None:
    """A submission's or visitor's id from the body, bounded like a Segment id
    (it becomes part of a key)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnprocessableError("expected a string", field=field)
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS or len(text.encode("utf-8")) > MAX_ID_BYTES:
        raise UnprocessableError(f"longer than {MAX_ID_CHARS} characters or {MAX_ID_BYTES} bytes", field=field)
    return text or None


def form_event(source: FormSource, submission: Mapping[str, Any], raw_body: bytes, now: float) -> TrackingEvent:
    """The form_submitted event of a submission, or an UnprocessableError
    naming the submission's field at fault (the email, an id longer than a
    key may hold, a numeric field out of range)."""
    mapped = {target: _field(submission, path) for target, path in source.fields.items()}
    email_path = source.fields["email"]
    email = normalize_email(mapped.get("email"))
    if mapped.get("email") in (None, ""):
        raise UnprocessableError("the submission has no email", field=email_path)
    if email is None:
        raise UnprocessableError(not_an_email(mapped["email"]), field=email_path)
    traits: dict[str, Any] = {}
    for target, value in mapped.items():
        if value not in (None, ""):
            traits.update(profile_updates({target: value}, _refuse_trait(source.fields[target])))
    traits["email"] = email
    mapped_paths = set(source.fields.values())
    properties: dict[str, Any] = {
        key: value
        for key, value in submission.items()
        if key and key not in mapped_paths and isinstance(value, str | int | float | bool) and len(str(value)) <= 300
    }
    properties.update({k: v for k, v in traits.items() if k not in _PII_FIELDS})
    properties["form_id"] = source.form_id
    properties["form_source"] = source.name
    submission_id = _form_id(_field(submission, source.id_field), source.id_field) if source.id_field else None
    if submission_id is not None:
        message_id = f"form-{source.name}-{submission_id}"
    else:
        message_id = f"form-{source.name}-" + hashlib.sha256(raw_body).hexdigest()[:32]
    anonymous_field = "anonymous_id" if submission.get("anonymous_id") else "ajs_anonymous_id"
    event = TrackingEvent(
        message_id=message_id,
        kind="track",
        name="form_submitted",
        timestamp=now,
        received_at=now,
        source=f"form:{source.name}",
        anonymous_id=_form_id(submission.get(anonymous_field), anonymous_field),
        email=email,
        traits=traits,
        properties=json.loads(json.dumps(properties, default=str)),
    )
    size = len(json.dumps(event.to_message()))
    if size > MAX_FORM_EVENT_BYTES:
        raise PayloadTooLargeError(
            f"the submission makes an event of {size} bytes; the limit is {MAX_FORM_EVENT_BYTES}", field="body"
        )
    return event
