"""audiences.yaml: the retargeting audiences, who belongs to each (conditions
over the lead's segment) and where each is kept on the ad platforms, validated
at load with the path of any problem. Membership and the platforms' copies are
kept by nurture.channels.audiences."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nurture.config.yaml_file import YamlFile
from nurture.core.rules import Condition
from nurture.core.stages import BUYING_STAGES, FIT_GRADES, LIFECYCLE_STAGES

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
CONSENT_VALUES = {"granted": "CONSENT_GRANTED", "denied": "CONSENT_DENIED"}
GOOGLE_ACCOUNT_TYPES = ("GOOGLE_ADS", "DISPLAY_VIDEO_ADVERTISER", "DISPLAY_VIDEO_PARTNER", "DATA_PARTNER")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # as track step audience ids
_DIGITS = re.compile(r"^\d+$")


@dataclass(frozen=True)
class MetaDestination:
    audience_id: str
    secret: str  # credential name: {"access_token": ..., "app_secret": optional}
    platform: str = field(default="meta", init=False)


@dataclass(frozen=True)
class GoogleAccount:
    account_type: str  # one of GOOGLE_ACCOUNT_TYPES
    account_id: str

    def to_json(self) -> dict[str, str]:
        return {"accountType": self.account_type, "accountId": self.account_id}


@dataclass(frozen=True)
class GoogleDestination:
    operating_account: GoogleAccount
    audience_id: str  # the Data Manager productDestinationId (a Customer Match user list id)
    secret: str  # credential name: {"access_token": ...} (OAuth, scope .../auth/datamanager)
    login_account: GoogleAccount | None = None
    ad_user_data: str | None = None  # CONSENT_GRANTED | CONSENT_DENIED; None sends no consent
    ad_personalization: str | None = None
    terms_accepted: bool = False  # send termsOfService.customerMatchTermsOfServiceStatus = ACCEPTED
    platform: str = field(default="google", init=False)


@dataclass(frozen=True)
class LinkedInDestination:
    segment_id: str
    secret: str  # credential name: {"access_token": ...} (OAuth, rw_dmp_segments)
    platform: str = field(default="linkedin", init=False)


Destination = MetaDestination | GoogleDestination | LinkedInDestination


@dataclass(frozen=True)
class AudienceDef:
    id: str
    description: str
    conditions: tuple[Condition, ...]  # over nurture.scoring.segments.audience_subject(lead)
    min_buying_stage: str | None  # `buying_stage: {at_least: ...}`
    interests: frozenset[str]  # content topics; the lead showed interest in any of them
    exclude_lifecycle: frozenset[str]
    platforms: Mapping[str, Destination] = field(default_factory=dict)


def load_audiences(directory: str | os.PathLike[str]) -> dict[str, AudienceDef]:
    """Load and validate audiences.yaml from `directory`. Interest topics are
    checked against content.yaml's topics when that file is there."""
    directory = Path(directory)
    f = YamlFile(directory, FILE)
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
    root = YamlFile(directory, "content.yaml").root
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
    f: YamlFile, value: Any, at: str, topics: frozenset[str] | None
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


def _platforms(f: YamlFile, value: Any, at: str) -> dict[str, Destination]:
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


def _numeric(f: YamlFile, value: Any, path: str) -> str:
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not _DIGITS.match(text):
        f.fail(path, 'expected the platform\'s numeric id, e.g. "23851234567890123"')
    return text


def _google_account(f: YamlFile, value: Any, path: str) -> GoogleAccount:
    account = f.mapping(value, path)
    f.only(account, path, ("type", "id"))
    account_id = str(account.get("id", "")).replace("-", "").strip()
    if not _DIGITS.match(account_id):
        f.fail(f"{path}.id", "expected the account's numeric id (dashes allowed), e.g. 123-456-7890")
    return GoogleAccount(f.choice(account.get("type"), f"{path}.type", GOOGLE_ACCOUNT_TYPES), account_id)


def _consent(f: YamlFile, consent: Mapping[str, Any], key: str, path: str) -> str | None:
    if consent.get(key) is None:
        return None
    return CONSENT_VALUES[f.choice(consent[key], f"{path}.{key}", tuple(CONSENT_VALUES))]
