"""The ports the use cases need from the outside world, each defined once.
Adapters (nurture.adapters, the store) implement them; tests fake them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nurture.core.domain import Touch, TrackingEvent


class LeadEventPublisher(Protocol):
    def publish(self, entries: Sequence[dict[str, Any]]) -> None:
        """Publish outbox entries ({"id", "type", "detail"}); raises on any failure."""


class AlertChannel(Protocol):
    def alert(self, subject: str, payload: Mapping[str, Any]) -> str: ...


class TouchClaims(Protocol):
    def claim_touch(self, touch: Touch) -> bool: ...
    def update_touch(self, touch: Touch) -> None: ...
    def release_touch(self, touch: Touch) -> None: ...


class AppliedBatch(Protocol):
    """What the track use case reports of a batch: the records it could not
    save (to be retried) and how many events it applied."""

    failed_records: list[str]
    applied: int


class EngagementTracker(Protocol):
    """The track use case (nurture.ingest.consumer.Tracker)."""

    def process(self, records: Sequence[tuple[str, Sequence[TrackingEvent]]], now: float) -> AppliedBatch: ...


class KeyProvider(Protocol):
    """A secret of named keys (API keys, signing secrets): name -> value, cached by the adapter."""

    def keys(self) -> dict[str, str]: ...


class IngestQueue(Protocol):
    """The ingest queue: events accepted at the API wait there for the track consumer."""

    def enqueue(self, events: list[TrackingEvent]) -> None: ...


class SecretDocument(Protocol):
    """A secret holding a JSON document (the CRM webhook's URL and signing secret)."""

    def document(self) -> dict[str, Any]: ...


class Executions(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start the timeline named `name`; False if it already exists."""

    def stop(self, name: str, cause: str) -> None: ...


class Timers(Protocol):
    def set(self, name: str, at: float, payload: Mapping[str, Any]) -> bool:
        """Set a one-time timer named `name` firing at `at` with `payload`;
        False if a timer of that name exists already."""


class TimelineStopper(Protocol):
    def stop_all(self, lead_id: str, reason: str, now: float) -> list[Any]: ...


class AudienceRemovals(Protocol):
    """Where an erased lead's audience removals go (the audience-sync queue)."""

    def send(self, message: dict[str, Any]) -> None: ...
