"""Retargeting audiences (config/audiences.yaml): who belongs to each, how a
lead is identified to each ad platform, and keeping the platforms' copies in step.

Two ways in:
  - mirror: the audience's current members (from every lead) against what each
    platform was last sent; adds the newcomers, removes the leavers;
  - hand-off: a timeline's retargeting step names an audience, and the lead
    joins it on every platform if it qualifies now.

A lead belongs to an audience only while it is subscribed (consent), not merged
into another lead, not in one of the audience's excluded lifecycle stages
(customer, hot and opportunity unless the audience says otherwise: a lead that
becomes a customer or is handed to sales leaves the nurture audiences), and
matches the audience's `where` conditions.

Identities are normalised the way each platform documents, then SHA-256 hashed
(hex); no plain email or phone ever leaves this module:
  email  Meta, LinkedIn: trimmed, lower-cased.
         Google: also no whitespace inside; for gmail.com and googlemail.com
         addresses, dots and any +suffix removed from the part before the @.
  phone  E.164, by libphonenumber's numbering plans (the phonenumberslite
         package). A number written with + (or 00) is taken as international;
         a national number is read in the lead's profile country (ISO 3166-1
         alpha-2), whatever the country: its trunk prefix (the 0 of "020 ...")
         or carrier code dropped, an extension ignored. A number that country's
         plan does not allow, or a national one without a country, is not
         sent. Google hashes "+14155550100", Meta hashes the digits
         "14155550100" (its documented form); LinkedIn matches on email only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from nurture.channels.ad_platforms import AdPlatformError
from nurture.config.audiences import (
    FILE,
    AudienceDef,
    Destination,
)
from nurture.core.domain import HashedIdentity, Lead, PlatformResult
from nurture.core.errors import NurtureError
from nurture.core.ports import AudiencePlatform
from nurture.core.rules import all_match
from nurture.core.stages import BUYING_STAGES
from nurture.scoring.segments import audience_subject

SUBSCRIBED = "subscribed"
_GMAIL = ("gmail.com", "googlemail.com")


class UnknownAudienceError(NurtureError):
    """A retargeting step names an audience that audiences.yaml does not define."""

    status = 404
    code = "UnknownAudience"


# --- membership ----------------------------------------------------------------------


def why_not(audience: AudienceDef, lead: Lead) -> str | None:
    """Why the lead is not in the audience now, or None when it is."""
    if lead.merged_into:
        return "lead merged"
    if lead.consent != SUBSCRIBED:
        return f"lead {lead.consent}"
    if lead.lifecycle in audience.exclude_lifecycle:
        return f"lead is {lead.lifecycle}"
    if not all_match(audience.conditions, audience_subject(lead), {}):
        return "lead does not match the audience"
    if audience.min_buying_stage is not None:
        stage = lead.buying_stage
        if stage not in BUYING_STAGES or BUYING_STAGES.index(stage) < BUYING_STAGES.index(audience.min_buying_stage):
            return f"buying stage {stage or 'unknown'} is before {audience.min_buying_stage}"
    if audience.interests and not any((lead.interests.get(t) or (0.0,))[0] > 0 for t in audience.interests):
        return f"no interest in {', '.join(sorted(audience.interests))}"
    return None


def members(audience: AudienceDef, lead: Lead) -> bool:
    return why_not(audience, lead) is None


# --- identities ----------------------------------------------------------------------


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_email(email: str | None, platform: str) -> str | None:
    """The address as `platform` documents it must be before hashing; None if not an address."""
    if not email:
        return None
    text = ("".join(email.split()) if platform == "google" else email.strip()).lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain:
        return None
    if platform == "google" and domain in _GMAIL:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def e164(phone: str | None, country: str | None) -> str | None:
    """The number in E.164 ("+14155550100"), or None when it cannot be known."""
    if not phone:
        return None
    # Imported here, not at module level: it costs a cold start about 40 ms, and
    # only audience sync reads phone numbers.
    import phonenumbers

    text = re.sub(r"^[\s().-]*00", "+", str(phone).strip())  # 00 dials out of most countries
    try:  # the region is only read for a number without +, and unknown ones raise
        number = phonenumbers.parse(text, str(country or "").strip().upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def hashed_identity(lead: Lead, platform: str) -> HashedIdentity | None:
    """The lead as `platform` matches people, hashed; None when it has nothing to match on."""
    email = normalise_email(lead.email or lead.profile.get("email"), platform)
    phone = None
    if platform in ("meta", "google"):
        number = e164(lead.profile.get("phone"), lead.profile.get("country"))
        if number:
            phone = number[1:] if platform == "meta" else number
    if email is None and phone is None:
        return None
    return HashedIdentity(
        email=sha256_hex(email) if email else None,
        phone=sha256_hex(phone) if phone else None,
    )


# --- mirror diff --------------------------------------------------------------------

Snapshot = Mapping[str, HashedIdentity]  # lead id -> the identity last sent to a platform


@dataclass(frozen=True)
class MirrorDiff:
    """What to change on one platform: identities to add and to remove, by lead id.
    A lead whose identity changed (new email) is in both: the old one is removed,
    the new one added."""

    adds: dict[str, HashedIdentity] = field(default_factory=dict)
    removes: dict[str, HashedIdentity] = field(default_factory=dict)

    @classmethod
    def between(cls, previous: Snapshot, current: Snapshot) -> MirrorDiff:
        adds = {lead_id: identity for lead_id, identity in current.items() if previous.get(lead_id) != identity}
        removes = {lead_id: identity for lead_id, identity in previous.items() if current.get(lead_id) != identity}
        return cls(adds, removes)

    @property
    def empty(self) -> bool:
        return not self.adds and not self.removes

    def apply(self, previous: Snapshot) -> dict[str, HashedIdentity]:
        """The snapshot once this diff has been pushed."""
        snapshot = {lead_id: identity for lead_id, identity in previous.items() if lead_id not in self.removes}
        snapshot.update(self.adds)
        return snapshot


def current_members(audience: AudienceDef, platform: str, leads: Iterable[Lead]) -> dict[str, HashedIdentity]:
    """Every lead in the audience now that `platform` can match, as it would be sent."""
    snapshot = {}
    for lead in leads:
        if members(audience, lead):
            identity = hashed_identity(lead, platform)
            if identity is not None:
                snapshot[lead.lead_id] = identity
    return snapshot


def mirror_diff(audience: AudienceDef, platform: str, previous: Snapshot, leads: Iterable[Lead]) -> MirrorDiff:
    """Mirror mode: `leads` is the whole population; anyone last sent who is not
    a member now (unsubscribed, became a customer, deleted) is removed."""
    return MirrorDiff.between(previous, current_members(audience, platform, leads))


def lead_diff(audience: AudienceDef, platform: str, lead: Lead, previous: HashedIdentity | None) -> MirrorDiff:
    """One lead's change, e.g. right after it unsubscribes or becomes a customer."""
    before = {lead.lead_id: previous} if previous is not None else {}
    return MirrorDiff.between(before, current_members(audience, platform, [lead]))


# --- step hand-off ---------------------------------------------------------------------


@dataclass(frozen=True)
class Handoff:
    """A retargeting touch's outcome: the per-platform adds (empty when the lead
    does not qualify, with the reason why)."""

    audience_id: str
    lead_id: str
    qualifies: bool
    reason: str
    diffs: dict[str, MirrorDiff] = field(default_factory=dict)


def handoff(audiences: Mapping[str, AudienceDef], audience_id: str, lead: Lead) -> Handoff:
    """A timeline's retargeting step adds the lead to the step's audience, on
    every platform that can match it, if it qualifies at hand-off time."""
    audience = audiences.get(audience_id)
    if audience is None:
        raise UnknownAudienceError(f"no audience {audience_id!r} in {FILE}", field="audience")
    reason = why_not(audience, lead)
    if reason is not None:
        return Handoff(audience_id, lead.lead_id, False, reason)
    diffs = {}
    for platform in audience.platforms:
        identity = hashed_identity(lead, platform)
        if identity is not None:
            diffs[platform] = MirrorDiff(adds={lead.lead_id: identity})
    if not diffs:
        return Handoff(audience_id, lead.lead_id, False, "no email or phone any platform can match")
    return Handoff(audience_id, lead.lead_id, True, "qualifies", diffs)


# --- pushing to the platforms ------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    platform: str
    removed: PlatformResult
    added: PlatformResult


def push(diff: MirrorDiff, platform: AudiencePlatform) -> SyncResult:
    """Removes first, then adds (so a changed identity ends up present). Both are
    idempotent on the platforms, so pushing a diff again after a failure is safe."""
    removed = platform.remove(list(diff.removes.values())) if diff.removes else PlatformResult()
    added = platform.add(list(diff.adds.values())) if diff.adds else PlatformResult()
    return SyncResult(platform.platform, removed, added)


@dataclass(frozen=True)
class MirrorOutcome:
    platform: str
    diff: MirrorDiff
    snapshot: dict[str, HashedIdentity]  # store this as the next run's `previous`
    result: SyncResult | None = None
    error: AdPlatformError | None = None  # the snapshot is unchanged, so the next run retries


class AudienceSync:
    """The audience use cases over the platform adapters. `platforms` builds the
    adapter for a destination (ad_platforms.platform_for with credentials bound)."""

    def __init__(
        self, audiences: Mapping[str, AudienceDef], platforms: Callable[[Destination], AudiencePlatform]
    ) -> None:
        self.audiences = audiences
        self._platforms = platforms

    def hand_off(
        self, audience_id: str, lead: Lead, pushed: Callable[[str, MirrorDiff], None] | None = None
    ) -> tuple[Handoff, list[SyncResult]]:
        """Add the lead of a retargeting touch to the audience on every platform.
        Tries every platform, calling `pushed(platform, diff)` after each one that
        succeeded, then raises the first AdPlatformError (the queue retries the
        message; re-adding on the platforms that succeeded is harmless)."""
        outcome = handoff(self.audiences, audience_id, lead)
        results, errors = [], []
        for platform, diff in outcome.diffs.items():
            try:
                results.append(push(diff, self._platforms(self.audiences[audience_id].platforms[platform])))
            except AdPlatformError as exc:
                errors.append(exc)
                continue
            if pushed is not None:
                pushed(platform, diff)
        if errors:
            raise errors[0]
        return outcome, results

    def mirror(
        self, audience_id: str, previous: Mapping[str, Snapshot], leads: Iterable[Lead]
    ) -> dict[str, MirrorOutcome]:
        """Bring every platform of the audience in line with its members now.
        `previous` is platform -> snapshot from the last run ({} the first time)."""
        audience = self.audiences.get(audience_id)
        if audience is None:
            raise UnknownAudienceError(f"no audience {audience_id!r} in {FILE}", field="audience")
        leads = list(leads)
        outcomes = {}
        for platform, destination in audience.platforms.items():
            before = previous.get(platform, {})
            diff = mirror_diff(audience, platform, before, leads)
            if diff.empty:
                outcomes[platform] = MirrorOutcome(platform, diff, dict(before))
                continue
            try:
                result = push(diff, self._platforms(destination))
            except AdPlatformError as exc:
                outcomes[platform] = MirrorOutcome(platform, diff, dict(before), error=exc)
                continue
            outcomes[platform] = MirrorOutcome(platform, diff, diff.apply(before), result)
        return outcomes
