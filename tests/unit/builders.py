"""Builders for unit tests: Segment calls as SDKs send them, tracking events
parsed through the real boundary, and small in-memory fakes of the ports."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from nurture.core.domain import TrackingEvent
from nurture.ingest.segment import parse_message, parse_request
from tests.conftest import EVENTS_DIR

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
RETENTION = 90 * DAY

_message_ids = itertools.count(1)

# Traits of an ideal-customer-profile lead: software, 350 people, US, VP Marketing.
ICP_TRAITS = {
    "title": "VP of Marketing",
    "company": {"name": "Globex", "industry": "Software", "employee_count": 350},
    "address": {"country": "United States"},
}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def load_event(name: str) -> dict[str, Any]:
    """A real payload from tests/events/ (a fresh copy each time)."""
    return json.loads((EVENTS_DIR / name).read_text())


def _call(
    kind: str, *, message_id: str | None, user_id: str | None, anonymous_id: str | None, at: float | None
) -> dict[str, Any]:
    call: dict[str, Any] = {"type": kind, "messageId": message_id or f"msg-{next(_message_ids)}"}
    if user_id is not None:
        call["userId"] = user_id
    if anonymous_id is not None:
        call["anonymousId"] = anonymous_id
    if at is not None:
        call["timestamp"] = iso(at)
    return call


def page(
    path: str,
    *,
    message_id: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    at: float | None = T0,
    **properties: Any,
) -> dict[str, Any]:
    """A Segment page call for `path`."""
    call = _call("page", message_id=message_id, user_id=user_id, anonymous_id=anonymous_id, at=at)
    call["properties"] = {"path": path, **properties}
    return call


def identify(
    email: str | None = None,
    *,
    message_id: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    at: float | None = T0,
    **traits: Any,
) -> dict[str, Any]:
    """A Segment identify call carrying `email` and any other traits."""
    call = _call("identify", message_id=message_id, user_id=user_id, anonymous_id=anonymous_id, at=at)
    call["traits"] = {**({"email": email} if email else {}), **traits}
    return call


def track(
    event: str,
    *,
    message_id: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    at: float | None = T0,
    **properties: Any,
) -> dict[str, Any]:
    """A Segment track call named `event`."""
    call = _call("track", message_id=message_id, user_id=user_id, anonymous_id=anonymous_id, at=at)
    call["event"] = event
    call["properties"] = properties
    return call


def batch_body(*calls: dict[str, Any], **extra: Any) -> bytes:
    """A /v1/batch request body."""
    return json.dumps({"batch": list(calls), **extra}).encode()


def tracking_events(*calls: dict[str, Any], received_at: float = T0, source: str = "website") -> list[TrackingEvent]:
    """Calls parsed by the real Segment boundary, as the ingest queue carries them."""
    return parse_request(batch_body(*calls), None, source, received_at).events


def tracking_event(call: dict[str, Any], received_at: float = T0, source: str = "website") -> TrackingEvent:
    return parse_message(call, None, source, received_at, None)


class RecordingPublisher:
    """The lifecycle-event publisher port, recording what it published.

    `fail_next` makes that many calls raise, as EventBridge does when it is
    throttled or down.
    """

    def __init__(self, fail_next: int = 0) -> None:
        self.entries: list[dict[str, Any]] = []
        self.fail_next = fail_next

    def publish(self, entries: Sequence[dict[str, Any]]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("EventBridge unavailable")
        self.entries.extend(json.loads(json.dumps(list(entries))))

    def types(self) -> list[str]:
        return [entry["type"] for entry in self.entries]


class FakeKeys:
    """The API-keys secret: secret name -> value."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = dict(keys)

    def keys(self) -> dict[str, str]:
        return dict(self._keys)


class ListQueue:
    """The ingest queue: a list of the events that were enqueued."""

    def __init__(self) -> None:
        self.events: list[TrackingEvent] = []

    def enqueue(self, events: list[TrackingEvent]) -> None:
        self.events.extend(events)


def lead_by(store, kind: str, value: str):
    """The lead an identity ("email", "user" or "anon") points at, read back from the store."""
    from nurture.store.repository import identity_key

    key = identity_key(kind, value)
    lead_id = store.lookup_identities([key])[key]
    return store.get_leads([lead_id])[lead_id]


def lead_count(store) -> int:
    """How many lead items the in-memory store holds."""
    return sum(1 for _, sort_key in store.items if sort_key == "PROFILE")
