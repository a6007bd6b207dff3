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
