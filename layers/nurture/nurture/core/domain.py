"""Domain models: tracking events, leads, and a lead's enrollments in tracks and
the touches they made. Plain dataclasses; the API maps payloads into them and
the store maps them to items."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The tracking events of a human open or click of a nurture email (machine
# ones carry a suffix and count for nothing); they lift a graymail sunset.
EMAIL_OPENED, EMAIL_CLICKED = "Email Opened", "Email Link Clicked"
MACHINE_ENGAGEMENT = " (machine)"  # suffix of the opens and clicks of scanners and privacy proxies
PUBLIC_EVENT_KEYS = ("message_id", "kind", "name", "timestamp", "received_at", "source")
MARKETING = "marketing"  # a touch's class that the contact policy caps (transactional ones are not)


@dataclass(frozen=True)
class TrackingEvent:
    """One deduplicated unit of behaviour or identity (a Segment call or a form)."""

    message_id: str
    kind: str  # track | identify | page | screen | group | alias
    name: str  # what rules match on: the track event name, or page/screen/identify/...
    timestamp: float
    received_at: float
    source: str
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        message = {
            "id": self.message_id,
            "k": self.kind,
            "n": self.name,
            "ts": self.timestamp,
            "rt": self.received_at,
            "src": self.source,
        }
        for key, value in (
            ("uid", self.user_id),
            ("aid", self.anonymous_id),
            ("em", self.email),
            ("prev", self.previous_id),
            ("gid", self.group_id),
            ("tr", self.traits),
            ("pr", self.properties),
            ("cx", self.context),
        ):
            if value:
                message[key] = value
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> TrackingEvent:
        return cls(
            message_id=message["id"],
            kind=message["k"],
            name=message["n"],
            timestamp=float(message["ts"]),
            received_at=float(message["rt"]),
            source=message["src"],
            user_id=message.get("uid"),
            anonymous_id=message.get("aid"),
            email=message.get("em"),
            previous_id=message.get("prev"),
            group_id=message.get("gid"),
            traits=message.get("tr") or {},
            properties=message.get("pr") or {},
            context=message.get("cx") or {},
        )


# A lead's email consent, from least to most strict. It only ever tightens:
# unsubscribing a lead that bounced or complained changes nothing (a
# complainer stays one, and gets no transactional email either).
CONSENTS = ("subscribed", "unsubscribed", "bounced", "complained")


MAX_LISTED_ALIASES = 50
ANONYMOUS = "anon#"  # the identity key prefix of a browser's anonymous id


def lead_id_for(identity_key: str) -> str:
    """Deterministic lead id from the identity first seen ("anon#...", "user#...",
    "email#..."), so a retried batch creates the same lead rather than a twin,
    and an anonymous visitor's lead is found from its id without an identity item."""
    prefix = "a" if identity_key.startswith(ANONYMOUS) else "p"
    return prefix + hashlib.blake2b(identity_key.encode(), digest_size=10).hexdigest()


@dataclass
class Lead:
    """A person (or, until identified, a browser) and everything scored about them.

    Engagement is stored as (value, as-of time) and decayed on read, so no
    process ever rewrites every lead to age their scores.
    """

    lead_id: str
    email: str | None = None
    user_id: str | None = None
    anonymous_ids: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    fit_grade: str = "D"
    fit_score: float = 0.0
    engagement: float = 0.0
    engagement_at: float = 0.0
    caps: dict[str, list[float]] = field(default_factory=dict)  # rule -> recent hit times
    lifecycle: str = "visitor"
    consent: str = "subscribed"  # CONSENTS: only ever tightens (set_consent)
    # The lead's own choices on the preference page: {"topics_off": [topic, ...],
    # "frequency": <contact_policy.preferences.frequencies id>, "paused_until": <epoch seconds>}
    preferences: dict[str, Any] = field(default_factory=dict)
    consent_at: float = 0.0  # when consent last changed (set_consent); kept by every later save
    lifecycle_at: float = 0.0
    lifecycle_reason: str | None = None  # why the last move happened (a reason code for sales moves)
    lost_at: float = 0.0  # when sales marked the lead lost (reactivation is due N days later)
    # Sales hand-off and outcomes: handed_off_at, accepted_at, rejected_at,
    # rejection_reason, recycle_at (end of the cool-down), opportunity_at,
    # won_at, revenue, currency, lost_reason.
    sales: dict[str, Any] = field(default_factory=dict)
    buying_stage: str | None = None
    buying: dict[str, list[float]] = field(default_factory=dict)  # stage -> [weight, at]
    interests: dict[str, list[float]] = field(default_factory=dict)  # topic -> [weight, at]
    consumed: list[str] = field(default_factory=list)  # content ids, oldest first
    milestones: dict[str, float] = field(default_factory=dict)  # track goal event -> last time seen
    # The lead write is the commit point of a tracked batch: events it applied,
    # as [lead id, message id], stay here until a later batch sees their items
    # stored, so a redelivery after a crash between the two writes knows them
    # applied (and stores them) instead of scoring them again.
    pending: list[list[str]] = field(default_factory=list)
    # History records of stage moves not yet seen stored, as
    # [record id, at, source, from, to, reason, expires_at]: rewritten until they are.
    pending_moves: list[list[Any]] = field(default_factory=list)
    # Anonymous leads merged into this one, the newest MAX_LISTED_ALIASES; older
    # ones are items of their own (the store's AliasItem), so the lead stays bounded.
    aliases: list[str] = field(default_factory=list)
    merged_into: str | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)  # lifecycle events not yet published
    created_at: float = 0.0
    last_seen_at: float = 0.0
    woken_at: float = 0.0  # when a sweep last woke the lead (lead.dormant)
    demoted_from: str | None = None  # the stage a sweep last demoted it from (warm/hot): a former MQL
    email_engaged_at: float = 0.0  # last human open or click of a marketing email
    sunset: dict[str, Any] = field(default_factory=dict)  # graymail sunset: {"at", "action", "sends"}
    version: int = 0

    @property
    def domain(self) -> str | None:
        return self.profile.get("domain")


def lead_event(detail_type: str, event_id: str, lead_id: str, occurred_at: float, **detail: Any) -> dict[str, Any]:
    """A lead event as publishers and the outbox carry it to the bus: detail-type
    `detail_type`, and a detail every consumer can dedupe (`event_id`) and place
    (`lead_id`, `occurred_at` in ISO 8601 UTC) — see infra/events/."""
    return {
        "id": event_id,
        "type": detail_type,
        "detail": {
            "event_id": event_id,
            "lead_id": lead_id,
            **detail,
            "occurred_at": datetime.fromtimestamp(occurred_at, UTC).isoformat(),
        },
    }


@dataclass
class Enrollment:
    """One lead in one track, once. Its id names the Step Functions execution,
    so the same enrollment can never run twice."""

    enrollment_id: str
    lead_id: str
    track_id: str
    seq: int  # 1 for the first time in this track, 2 on re-entry ...
    status: str = "active"  # active | holdout | exited | completed
    step: int = 0  # index of the step to run next
    due_at: float = 0.0  # when that step is due (before contact policy)
    pending: dict[str, Any] | None = None  # the touch handed to a channel, done when the loop comes back
    decision_seq: int = 0
    last_decision: dict[str, Any] | None = None
    variants: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    ended_at: float | None = None
    exit_reason: str | None = None
    trigger: str | None = None
    version: int = 0


@dataclass
class Touch:
    """What was sent (or handed to a channel) to whom; keyed by enrollment + step.

    A touch being delivered is "sending" under a lease (`lease_until`, wall-clock
    epoch seconds; nurture.core.delivery), then "sent"; `published_at` records
    that the event announcing the delivery (lead.handed_off, ...) was published."""

    lead_id: str
    enrollment_id: str
    track_id: str
    step_id: str
    channel: str
    at: float
    content_id: str | None = None
    variant: str | None = None
    subject: str | None = None
    klass: str = MARKETING
    status: str = "sent"
    message_id: str | None = None
    recipient: str | None = None
    lease_until: float | None = None
    published_at: float | None = None

    @property
    def touch_id(self) -> str:
        return f"{self.enrollment_id}#{self.step_id}"


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HashedIdentity:
    """One person as an ad platform sees them: hashed email and/or hashed phone."""

    email: str | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        for name in ("email", "phone"):
            value = getattr(self, name)
            if value is not None and not SHA256_HEX.match(value):
                raise ValueError(f"{name} must be a SHA-256 hex digest (64 lower-case hex characters)")
        if self.email is None and self.phone is None:
            raise ValueError("an identity needs a hashed email or a hashed phone")


@dataclass
class StoredEvent:
    lead_id: str
    message_id: str
    kind: str
    name: str
    timestamp: float
    source: str
    properties: dict[str, Any] = field(default_factory=dict)
    points: list[list[Any]] = field(default_factory=list)  # [rule_id, points] as awarded
    content: list[str] = field(default_factory=list)
    expires_at: int = 0

    @classmethod
    def stage_move(
        cls, lead_id: str, message_id: str, at: float, source: str, move: tuple[str, str, str], expires_at: int
    ) -> StoredEvent:
        """A lifecycle move (from, to, reason) in the lead's history (STAGE#), as every writer records it."""
        before, after, reason = move
        props = {"from": before, "to": after, "reason": reason}
        return cls(lead_id, message_id, "lifecycle", "lead.stage_changed", at, source, props, expires_at=expires_at)


@dataclass(frozen=True)
class PlatformResult:
    """What one add or remove call did: requests made, identities sent, how many
    the platform accepted or reported invalid, and how many we could not send
    (e.g. no email for an email-only platform)."""

    requests: int = 0
    sent: int = 0
    accepted: int = 0
    invalid: int = 0
    skipped: int = 0

    def __add__(self, other: PlatformResult) -> PlatformResult:
        return PlatformResult(
            self.requests + other.requests,
            self.sent + other.sent,
            self.accepted + other.accepted,
            self.invalid + other.invalid,
            self.skipped + other.skipped,
        )
