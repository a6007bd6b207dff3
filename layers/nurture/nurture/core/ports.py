"""The ports the use cases need from the outside world, each defined once.
Adapters (nurture.adapters, the store) implement them; tests fake them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from nurture.core.deadline import Lease
from nurture.core.domain import Enrollment, HashedIdentity, Lead, PlatformResult, StoredEvent, Touch, TrackingEvent


class LeadEventPublisher(Protocol):
    def publish(self, entries: Sequence[dict[str, Any]]) -> None:
        """Publish outbox entries ({"id", "type", "detail"}); raises on any failure."""


class AlertChannel(Protocol):
    def alert(self, subject: str, payload: Mapping[str, Any]) -> str: ...


class TouchClaims(Protocol):
    def claim_touch(self, touch: Touch, lease: Lease | None = None) -> bool:
        """Record the touch; False if it exists — unless `lease` is given and the
        stored touch is still "sending" under a lease that lapsed before
        `lease.at`, which this claim takes over (the touch then holds `lease`)."""

    def update_touch(self, touch: Touch) -> None: ...

    def release_touch(self, touch: Touch) -> None:
        """Forget the claim (and its content claim), if it still holds the touch's lease."""

    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Touch | None: ...


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


class LeadStore(Protocol):
    def lookup_identities(self, keys: Iterable[str]) -> dict[str, str]:
        """identity key ("email#a@b.c") -> lead id, for the keys that exist. An
        anonymous id with no identity item resolves to the lead its id derives
        from (`core.domain.lead_id_for`), if that lead exists."""

    def get_leads(self, lead_ids: Iterable[str], consistent: bool = False) -> dict[str, Lead]: ...

    def stored_records(
        self, events: Iterable[tuple[str, str]], moves: Iterable[tuple[str, str]] = ()
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """Which (lead id, message id) events and (lead id, record id) stage
        moves are already stored, in one read."""

    def save_lead(self, lead: Lead, expected_version: int) -> None:
        """Write the whole lead if nobody else wrote it since `expected_version`;
        raises ConcurrentUpdateError otherwise. Increments lead.version."""

    def write_records(self, events: Sequence[StoredEvent], identities: dict[str, str]) -> None:
        """Store events and identity mappings; idempotent (same keys, same content)."""

    def put_events_if_absent(self, events: Sequence[StoredEvent]) -> None:
        """Store events that may already exist without overwriting them (rare path)."""

    def put_aliases(self, lead_id: str, aliases: Sequence[str]) -> None:
        """Record anonymous leads merged into `lead_id` that its item no longer lists."""

    def aliases_of(self, lead_id: str) -> list[str]:
        """The anonymous leads merged into `lead_id` recorded by `put_aliases`."""

    def clear_outbox(self, lead: Lead) -> None:
        """Forget the published outbox of `lead` as saved (at its version)."""

    def set_consent(self, lead_id: str, consent: str, now: float) -> bool:
        """Tighten the lead's consent to `consent` and bump its version (so a
        concurrent scoring write retries on top of it); a lead already at least
        as strict (CONSENTS) stays as it is. False if there is no such lead."""

    def set_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> bool:
        """Replace the lead's email preferences, bumping its version like set_consent;
        False if there is no such lead."""

    def lead_events(self, lead_id: str) -> list[StoredEvent]: ...

    def account_leads(self, domain: str, limit: int = 200) -> list[Lead]: ...

    def lookup_identities_and_tombstones(
        self,
        keys: Iterable[str],
        person_keys: Iterable[str],
        leads: Iterable[str] = (),
        records: Iterable[tuple[str, str]] = (),
    ) -> tuple[dict[str, str], set[str], dict[str, Lead], set[tuple[str, str]]]:
        """lookup_identities(keys), which of `person_keys` belong to people who
        were erased, the leads that exist among the anonymous visitors' (read to
        resolve their ids, see lookup_identities) and `leads`, and which of the
        `records` (lead id, message id) are stored (as stored_records): all in
        one request."""

    def put_tombstones(self, keys: Iterable[str], now: float) -> None:
        """Remember erased identities, hashed (idempotent)."""

    def lead_item_keys(self, lead_id: str) -> list[tuple[str, str]]:
        """(pk, sk) of every item in the lead's partition: profile, events, touches, enrollments."""

    def identity_item_keys(self, identity_keys: Iterable[str]) -> list[tuple[str, str]]:
        """(pk, sk) of the identity items of these identity keys."""

    def delete_items(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete items by key, 25 per request (deleting a missing item is harmless)."""


class TimelineStore(Protocol):
    def enrollments(self, lead_id: str) -> list[Enrollment]: ...
    def get_enrollment(self, lead_id: str, track_id: str, seq: int) -> Enrollment | None: ...
    def create_enrollment(self, enrollment: Enrollment) -> bool: ...
    def save_enrollment(self, enrollment: Enrollment, expected_version: int) -> None: ...
    def claim_touch(self, touch: Touch, lease: Lease | None = None) -> bool: ...
    def update_touch(self, touch: Touch) -> None: ...
    def release_touch(self, touch: Touch) -> None: ...
    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Touch | None: ...
    def touches(self, lead_id: str) -> list[Touch]: ...
    def reserve_marketing_send(self, touch: Touch, max_sends: int, window_seconds: float) -> bool: ...
    def release_marketing_send(self, touch: Touch) -> None: ...


class LeadReader(Protocol):
    def get_leads(self, lead_ids: Any, consistent: bool = False) -> dict[str, Lead]: ...
    def save_lead(self, lead: Lead, expected_version: int) -> None: ...
    def clear_outbox(self, lead: Lead) -> None:
        """Forget the published outbox of `lead` as saved (at its version)."""


Snapshot = dict[str, dict[str, HashedIdentity]]  # platform -> lead id -> identity last sent


class AudienceMembers(Protocol):
    def snapshot(self, audience_id: str) -> Snapshot:
        """Every member of the audience, per platform, as last sent."""

    def held(self, lead_id: str, places: Iterable[tuple[str, str]]) -> dict[tuple[str, str], HashedIdentity]:
        """What each (audience id, platform) holds for the lead, where it holds something."""

    def record(
        self,
        audience_id: str,
        platform: str,
        added: Mapping[str, HashedIdentity],
        removed: Iterable[str],
        now: float,
    ) -> None:
        """Apply a pushed diff: `added` lead ids now hold these identities,
        `removed` lead ids are gone. Idempotent."""


class AudiencePlatform(Protocol):
    """One audience on one ad platform."""

    platform: str

    def add(self, identities: Sequence[HashedIdentity]) -> PlatformResult: ...

    def remove(self, identities: Sequence[HashedIdentity]) -> PlatformResult: ...


class CredentialSource(Protocol):
    """Named credentials, e.g. {"access_token": ...}. The deployment backs it
    with Secrets Manager (cached); `invalidate` drops a cached value after the
    platform rejected it, so a rotated token is picked up on the next read."""

    def credential(self, name: str) -> Mapping[str, str]: ...

    def invalidate(self, name: str) -> None: ...


class FeedbackLeadStore(LeadStore, Protocol):
    """The lead store, plus a transient-bounce counter."""

    def increment_transient_bounces(
        self, lead_id: str, message_id: str, bounced_at: float, window_seconds: float
    ) -> int:
        """Record that email `message_id` bounced transiently at `bounced_at`
        (idempotent: the same message counts once however often it is
        recorded) and return how many distinct messages bounced transiently
        for this lead from `bounced_at - window_seconds` on."""


class TouchFinder(Protocol):
    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Touch | None:
        """The touch of `enrollment_id` + `step_id`, if one was recorded."""


class DueLeadStore(Protocol):
    def due_leads(self, now: float, limit: int, after: Any = None) -> tuple[list[tuple[Lead, str | None]], Any]:
        """Up to `limit` leads due at or before `now`, oldest first, each with the
        due key its stored item holds now, and a cursor for the next page (None
        when no more are due)."""

    def save_lead(self, lead: Lead, expected_version: int) -> None: ...

    def clear_outbox(self, lead: Lead) -> None:
        """Forget the published outbox of `lead` as saved (at its version)."""

    def write_records(self, events: Sequence[Any], identities: dict[str, str]) -> None: ...

    def spend_budget(self, day: str, count: int, budget: int) -> int:
        """Reserve up to `count` of `day`'s budget; returns how many were granted."""

    def read_capacity(self) -> float:
        """Read capacity units consumed by this store's sweep reads so far."""
