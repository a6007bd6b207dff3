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
  phone  E.164. A number written with + (or 00) is taken as international; a
         national number is completed from the lead's profile country for the
         countries in CALLING_CODES (dropping the trunk 0 where that country
         dials one); otherwise no phone is sent. Google hashes "+14155550100",
         Meta hashes the digits "14155550100" (its documented form); LinkedIn
         matches on email only.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nurture.ad_platforms import (
    GOOGLE_ACCOUNT_TYPES,
    AdPlatformError,
    AudiencePlatform,
    Destination,
    GoogleAccount,
    GoogleDestination,
    HashedIdentity,
    LinkedInDestination,
    MetaDestination,
    PlatformResult,
)
from nurture.config import BUYING_STAGES, FIT_GRADES, LIFECYCLE_STAGES, _File
from nurture.domain import Lead
from nurture.errors import NurtureError
from nurture.rules import Condition, all_match
from nurture.timeline import audience_subject

FILE = "audiences.yaml"
PLATFORMS = ("meta", "google", "linkedin")
AUDIENCE_FIELDS = (
    "lifecycle",
    "buying_stage",
    "product_interest",
    "persona",
    "industry",
    "country",
    "fit_grade",
    "interests",
)
DEFAULT_EXCLUDE_LIFECYCLE = ("customer", "hot", "opportunity")
SUBSCRIBED = "subscribed"
CONSENT_VALUES = {"granted": "CONSENT_GRANTED", "denied": "CONSENT_DENIED"}
# Profile country (ISO 3166-1 alpha-2, lower case) -> (calling code, national trunk
# prefix, shortest and longest national significant number).
CALLING_CODES: Mapping[str, tuple[str, str, int, int]] = {
    "us": ("1", "", 10, 10),
    "ca": ("1", "", 10, 10),
    "gb": ("44", "0", 9, 10),
    "ie": ("353", "0", 7, 9),
    "de": ("49", "0", 6, 11),
    "nl": ("31", "0", 9, 9),
    "fr": ("33", "0", 9, 9),
    "se": ("46", "0", 7, 9),
    "dk": ("45", "", 8, 8),
    "au": ("61", "0", 9, 9),
    "es": ("34", "", 9, 9),
    "it": ("39", "", 6, 11),  # Italian numbers keep their leading 0 after +39
    "in": ("91", "0", 10, 10),
    "jp": ("81", "0", 9, 10),
    "sg": ("65", "", 8, 8),
}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # as track step audience ids
_DIGITS = re.compile(r"^\d+$")
_GMAIL = ("gmail.com", "googlemail.com")
_EXTENSION = re.compile(r"(?:ext\.?|extension|x|#).*$", re.IGNORECASE)


class UnknownAudienceError(NurtureError):
    """A retargeting step names an audience that audiences.yaml does not define."""

    status = 404
    code = "UnknownAudience"


@dataclass(frozen=True)
class AudienceDef:
    id: str
    description: str
    conditions: tuple[Condition, ...]  # over timeline.audience_subject(lead)
    min_buying_stage: str | None  # `buying_stage: {at_least: ...}`
    interests: frozenset[str]  # content topics; the lead showed interest in any of them
    exclude_lifecycle: frozenset[str]
    platforms: Mapping[str, Destination] = field(default_factory=dict)


# --- loading -----------------------------------------------------------------------


def load_audiences(directory: str | os.PathLike[str]) -> dict[str, AudienceDef]:
    """Load and validate audiences.yaml from `directory`. Interest topics are
    checked against content.yaml's topics when that file is there."""
    directory = Path(directory)
    f = _File(directory, FILE)
    topics = _content_topics(directory)
    f.only(f.root, "", ("audiences",))
    audiences: dict[str, AudienceDef] = {}
    for i, spec in enumerate(f.seq(f.root.get("audiences"), "audiences")):
        at = f"audiences[{i}]"
        spec = f.mapping(spec, at)
        f.only(spec, at, ("id", "description", "where", "exclude_lifecycle", "platforms"))
        audience_id = f.text(spec.get("id"), f"{at}.id", _ID)
        if audience_id in audiences:
            f.fail(f"{at}.id", f"duplicate audience id {audience_id!r}")
        conditions, min_stage, interests = _where(f, spec.get("where"), f"{at}.where", topics)
        exclude = spec.get("exclude_lifecycle", list(DEFAULT_EXCLUDE_LIFECYCLE))
        audiences[audience_id] = AudienceDef(
            id=audience_id,
            description=str(spec.get("description") or "").strip(),
            conditions=conditions,
            min_buying_stage=min_stage,
            interests=interests,
            exclude_lifecycle=frozenset(
                f.choice(stage, f"{at}.exclude_lifecycle[{j}]", LIFECYCLE_STAGES)
                for j, stage in enumerate(f.seq(exclude, f"{at}.exclude_lifecycle"))
            ),
            platforms=_platforms(f, spec.get("platforms"), f"{at}.platforms"),
        )
    return audiences


def undefined_audiences(audiences: Mapping[str, AudienceDef], tracks: Iterable[Any]) -> list[str]:
    """`track.step: audience` for every retargeting step naming an audience
    that is not defined; empty when tracks.yaml and audiences.yaml agree."""
    return [
        f"{track.id}.{step.id}: {step.audience}"
        for track in tracks
        for step in track.steps
        if step.audience and step.audience not in audiences
    ]


def _content_topics(directory: Path) -> frozenset[str] | None:
    if not (directory / "content.yaml").is_file():
        return None
    root = _File(directory, "content.yaml").root
    entries = root.get("content")
    if not isinstance(entries, list):
        return None
    return frozenset(
        str(topic).strip()
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("topics"), list)
        for topic in entry["topics"]
    )


def _where(
    f: _File, value: Any, at: str, topics: frozenset[str] | None
) -> tuple[tuple[Condition, ...], str | None, frozenset[str]]:
    where = f.mapping(value, at, required=False)
    plain: dict[str, Any] = {}
    min_stage: str | None = None
    interests: frozenset[str] = frozenset()
    for key, spec in where.items():
        path = f"{at}.{key}"
        if key not in AUDIENCE_FIELDS:
            f.fail(path, f"not a lead field; use one of {', '.join(AUDIENCE_FIELDS)}")
        if key == "buying_stage" and isinstance(spec, Mapping) and "at_least" in spec:
            if len(spec) != 1:
                f.fail(path, "at_least is the whole condition: {at_least: <stage>}")
            min_stage = f.choice(spec["at_least"], f"{path}.at_least", BUYING_STAGES)
        elif key == "interests":
            names = [spec] if isinstance(spec, str) else f.seq(spec, path)
            if not names:
                f.fail(path, "name at least one topic")
            for j, name in enumerate(names):
                if topics is not None and f.text(name, f"{path}[{j}]") not in topics:
                    f.fail(f"{path}[{j}]", f"no content in content.yaml has the topic {name.strip()!r}")
            interests = frozenset(f.text(name, f"{path}[{j}]") for j, name in enumerate(names))
        else:
            plain[key] = spec
    conditions = f.conditions(plain, at)
    allowed = {"lifecycle": LIFECYCLE_STAGES, "buying_stage": BUYING_STAGES, "fit_grade": FIT_GRADES}
    for condition in conditions:
        path = f"{at}.{condition.path}"
        if condition.op in ("in_list", "not_in_list"):
            f.fail(path, "audiences.yaml has no lists; use in or not_in")
        values = allowed.get(condition.path)
        if values is None or condition.op not in ("equals", "in", "not_in"):
            continue
        named = [condition.value] if condition.op == "equals" else sorted(condition.value)
        for name in named:
            if name not in {v.lower() for v in values}:
                f.fail(path, f"{name!r} is not one of {', '.join(values)}")
    return conditions, min_stage, interests


def _platforms(f: _File, value: Any, at: str) -> dict[str, Destination]:
    spec = f.mapping(value, at)
    f.only(spec, at, PLATFORMS)
    if not spec:
        f.fail(at, f"name at least one platform: {', '.join(PLATFORMS)}")
    destinations: dict[str, Destination] = {}
    if "meta" in spec:
        meta = f.mapping(spec["meta"], f"{at}.meta")
        f.only(meta, f"{at}.meta", ("audience_id", "secret"))
        destinations["meta"] = MetaDestination(
            audience_id=_numeric(f, meta.get("audience_id"), f"{at}.meta.audience_id"),
            secret=f.text(meta.get("secret"), f"{at}.meta.secret"),
        )
    if "google" in spec:
        google = f.mapping(spec["google"], f"{at}.google")
        path = f"{at}.google"
        f.only(
            google,
            path,
            ("operating_account", "login_account", "audience_id", "secret", "consent", "customer_match_terms_accepted"),
        )
        consent = f.mapping(google.get("consent"), f"{path}.consent", required=False)
        f.only(consent, f"{path}.consent", ("ad_user_data", "ad_personalization"))
        terms = google.get("customer_match_terms_accepted", False)
        if not isinstance(terms, bool):
            f.fail(f"{path}.customer_match_terms_accepted", "expected true or false")
        destinations["google"] = GoogleDestination(
            operating_account=_google_account(f, google.get("operating_account"), f"{path}.operating_account"),
            login_account=_google_account(f, google["login_account"], f"{path}.login_account")
            if google.get("login_account") is not None
            else None,
            audience_id=_numeric(f, google.get("audience_id"), f"{path}.audience_id"),
            secret=f.text(google.get("secret"), f"{path}.secret"),
            ad_user_data=_consent(f, consent, "ad_user_data", f"{path}.consent"),
            ad_personalization=_consent(f, consent, "ad_personalization", f"{path}.consent"),
            terms_accepted=terms,
        )
    if "linkedin" in spec:
        linkedin = f.mapping(spec["linkedin"], f"{at}.linkedin")
        f.only(linkedin, f"{at}.linkedin", ("segment_id", "secret"))
        destinations["linkedin"] = LinkedInDestination(
            segment_id=_numeric(f, linkedin.get("segment_id"), f"{at}.linkedin.segment_id"),
            secret=f.text(linkedin.get("secret"), f"{at}.linkedin.secret"),
        )
    return destinations


def _numeric(f: _File, value: Any, path: str) -> str:
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not _DIGITS.match(text):
        f.fail(path, 'expected the platform\'s numeric id, e.g. "23851234567890123"')
    return text


def _google_account(f: _File, value: Any, path: str) -> GoogleAccount:
    account = f.mapping(value, path)
    f.only(account, path, ("type", "id"))
    account_id = str(account.get("id", "")).replace("-", "").strip()
    if not _DIGITS.match(account_id):
        f.fail(f"{path}.id", "expected the account's numeric id (dashes allowed), e.g. 123-456-7890")
    return GoogleAccount(f.choice(account.get("type"), f"{path}.type", GOOGLE_ACCOUNT_TYPES), account_id)


def _consent(f: _File, consent: Mapping[str, Any], key: str, path: str) -> str | None:
    if consent.get(key) is None:
        return None
    return CONSENT_VALUES[f.choice(consent[key], f"{path}.{key}", tuple(CONSENT_VALUES))]


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
    text = _EXTENSION.sub("", str(phone)).strip()
    if text.startswith("+"):
        text = text.replace("(0)", "")  # "+44 (0)20 ..." writes the trunk 0 it must not dial
        digits = re.sub(r"\D", "", text)
    elif re.sub(r"[\s().-]", "", text).startswith("00"):
        digits = re.sub(r"\D", "", text)[2:]
    else:
        national = re.sub(r"\D", "", text)
        known = CALLING_CODES.get(str(country or "").strip().lower())
        if known is None or not national:
            return None
        code, trunk, shortest, longest = known
        if code == "1" and len(national) == 11 and national.startswith("1"):
            national = national[1:]
        elif trunk and national.startswith(trunk):
            national = national[len(trunk) :]
        if not shortest <= len(national) <= longest:
            return None
        digits = code + national
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return f"+{digits}"


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
