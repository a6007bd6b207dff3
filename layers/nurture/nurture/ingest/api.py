"""API use cases: authenticate a source, validate its payload, and queue the
events. A 2xx is only returned once the events are on the ingest queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from nurture.config.loader import Config, FormSource, SegmentSource
from nurture.core.domain import TrackingEvent
from nurture.core.errors import (
    AuthenticationError,
    NotFoundError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from nurture.core.observability import add_metric, bounded, get_logger
from nurture.core.payloads import header, parse_json_object
from nurture.core.ports import IngestQueue, KeyProvider
from nurture.core.profile import normalize_email, profile_updates
from nurture.core.rules import lookup
from nurture.ingest.form_tools import TOOLS
from nurture.ingest.segment import REJECTION_REASONS, ParsedRequest, decode_body, parse_document

SIGNATURE_WINDOW_SECONDS = 300
_PII_FIELDS = ("email", "first_name", "last_name", "phone")


def basic_user(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


def _constant_time_in(candidate: str, secret: str | None) -> bool:
    return bool(secret) and hmac.compare_digest(candidate.encode(), secret.encode())


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
        if not _constant_time_in(token, self.keys.keys().get("admin")):
            raise AuthenticationError("the admin key is not valid", field="Authorization")

    def authenticate_form_reader(self, form_name: str | None, headers: Mapping[str, str]) -> None:
        """The admin key (Bearer), or the form source's own key as X-Nurture-Key
        (a site's server asking what its form should show)."""
        key = header(headers, "X-Nurture-Key")
        source = self.config.forms.get(form_name or "")
        if key and source is not None:
            if not _constant_time_in(key, self.keys.keys().get(source.secret)):
                raise AuthenticationError("the form source key is not valid", field="X-Nurture-Key")
            return
        self.authenticate_admin(headers)

    def _sources_of_key(self, key: str) -> list[SegmentSource]:
        """The Segment sources whose write key this is (the local stack gives them all one)."""
        secrets = self.keys.keys()
        return [s for s in self.config.segment_sources.values() if _constant_time_in(key, secrets.get(s.secret))]

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
        body = decode_body(raw_body, header(headers, "Content-Encoding"))
        key = basic_user(header(headers, "Authorization")) or (query or {}).get("writeKey")
        document = None
        if not key:
            document = parse_json_object(body)  # analytics.js: the key is in the body, parsed once
            key = document.get("writeKey") if isinstance(document.get("writeKey"), str) else None
        origin = header(headers, "Origin")
        source = self._segment_source(key, origin)
        source.origins.require(origin, "send to this source")
        parsed = parse_document(parse_json_object(body) if document is None else document, call_type, source.name, now)
        if parsed.events:
            self.queue.enqueue(parsed.events)
            add_metric("EventsAccepted", len(parsed.events))
        for rejection in parsed.rejected:
            add_metric("EventsRejected", reason=bounded(rejection.field, REJECTION_REASONS))
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
            raise NotFoundError(f"no form source named {source_name!r} is configured", field="source")
        source.origins.require(header(headers, "Origin"), "post this form")
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
            if not _constant_time_in(key, secret):
                raise AuthenticationError("the source key is not valid", field="X-Nurture-Key")
            return
        timestamp = header(headers, "X-Nurture-Timestamp")
        signature = header(headers, "X-Nurture-Signature")
        if not timestamp:
            raise AuthenticationError("signed forms need X-Nurture-Timestamp", field="X-Nurture-Timestamp")
        if not signature:
            raise AuthenticationError("signed forms need X-Nurture-Signature", field="X-Nurture-Signature")
        try:
            sent_at = float(timestamp)
        except ValueError as exc:
            raise AuthenticationError("X-Nurture-Timestamp must be Unix seconds", field="X-Nurture-Timestamp") from exc
        if abs(now - sent_at) > SIGNATURE_WINDOW_SECONDS:
            raise AuthenticationError(
                "the signature is older than 5 minutes (or from the future)", field="X-Nurture-Timestamp"
            )
        if not secret:
            raise AuthenticationError("the source has no signing secret configured", field="X-Nurture-Signature")
        expected = sign_form(secret, timestamp, raw_body)
        if not hmac.compare_digest(expected, signature.strip().removeprefix("sha256=")):
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


def form_event(source: FormSource, submission: Mapping[str, Any], raw_body: bytes, now: float) -> TrackingEvent:
    mapped = {target: _field(submission, path) for target, path in source.fields.items()}
    email_path = source.fields["email"]
    email = normalize_email(mapped.get("email"))
    if mapped.get("email") in (None, ""):
        raise UnprocessableError("the submission has no email", field=email_path)
    if email is None:
        raise UnprocessableError(f"{mapped['email']!r} is not an email address", field=email_path)
    traits = {k: v for k, v in profile_updates({k: v for k, v in mapped.items() if v not in (None, "")}).items()}
    traits["email"] = email
    mapped_paths = set(source.fields.values())
    properties: dict[str, Any] = {
        key: value
        for key, value in submission.items()
        if key not in mapped_paths and isinstance(value, str | int | float | bool) and len(str(value)) <= 300
    }
    properties.update({k: v for k, v in traits.items() if k not in _PII_FIELDS})
    properties["form_id"] = source.form_id
    properties["form_source"] = source.name
    submission_id = _field(submission, source.id_field) if source.id_field else None
    if submission_id not in (None, ""):
        message_id = f"form-{source.name}-{submission_id}"
    else:
        message_id = f"form-{source.name}-" + hashlib.sha256(raw_body).hexdigest()[:32]
    anonymous_id = submission.get("anonymous_id") or submission.get("ajs_anonymous_id")
    return TrackingEvent(
        message_id=message_id,
        kind="track",
        name="form_submitted",
        timestamp=now,
        received_at=now,
        source=f"form:{source.name}",
        anonymous_id=str(anonymous_id) if anonymous_id else None,
        email=email,
        traits=traits,
        properties=json.loads(json.dumps(properties, default=str)),
    )
