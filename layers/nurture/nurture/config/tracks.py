"""Nurture tracks and the contact policy (config/tracks.yaml), validated at load."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.config.yaml_file import YamlFile, events_of, names_of
from nurture.core.rules import Condition
from nurture.core.stages import FIT_GRADES, LIFECYCLE_STAGES

CHANNELS = ("email", "retargeting", "sales_call")
TRIGGERS = (
    "lead.became_warm",
    "lead.became_hot",
    "lead.recycled",
    "lead.became_customer",
    "lead.lost",
    "lead.dormant",
    "form_submitted",
)
ON_EXHAUSTED = ("skip", "pause", "exit")
PAUSE_DAYS = 7  # an exhausted step paused by `on_exhausted: pause` looks again after this
AUDIENCE_FIELDS = (
    "persona",
    "seniority",
    "industry",
    "country",
    "fit_grade",
    "buying_stage",
    "lifecycle",
    "product_interest",
    "employees",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAY = 86400.0


@dataclass(frozen=True)
class Variant:
    id: str
    subject: str | None
    weight: float


@dataclass(frozen=True)
class Step:
    id: str
    channel: str
    after_days: float
    at: tuple[int, int] | None  # lead-local time of day to send at
    business_days: bool
    content: tuple[str, ...]  # a pool; empty means "whatever in the library fits"
    subject: str | None
    audience: str | None  # retargeting audience
    reason: str | None  # sales-call reason template
    experiment_id: str | None
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Track:
    id: str
    name: str
    priority: int
    triggers: tuple[str, ...]
    audience: tuple[Condition, ...]
    holdout: float
    reentry_after_days: float | None  # None: never re-enter
    reentry_max_times: int
    exit_lifecycle: frozenset[str]
    exit_events: frozenset[str]
    on_exhausted: str
    steps: tuple[Step, ...]
    # Behaviour triggers: tracking events (name + conditions) that enroll the
    # lead in this track, e.g. a pricing-page visit -> a follow-up within hours.
    behaviours: tuple[tuple[frozenset[str], tuple[Condition, ...]], ...] = ()
    # Content topics the track is about: a lead that opted out of any of them
    # on the preference page is not enrolled, and leaves the track at its next step.
    topics: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Frequency:
    """A marketing-email cap a lead may choose on the preference page."""

    id: str
    label: str
    max_marketing_emails: int
    per_days: float


@dataclass(frozen=True)
class PreferenceOptions:
    """What the preference page offers: topics to opt out of (content topics,
    id -> label), email frequencies, and pause periods in days."""

    topics: dict[str, str] = field(default_factory=dict)
    frequencies: tuple[Frequency, ...] = ()
    pause_days: tuple[int, ...] = ()

    def frequency(self, frequency_id: str | None) -> Frequency | None:
        return next((f for f in self.frequencies if f.id == frequency_id), None)


@dataclass(frozen=True)
class ContactPolicy:
    timezone: str
    max_marketing_emails: int
    per_days: float
    quiet_from: tuple[int, int]
    quiet_to: tuple[int, int]
    business_days_only: bool
    preferences: PreferenceOptions = field(default_factory=PreferenceOptions)


def behaviour_trigger(track_id: str) -> str:
    """The trigger name a behaviour trigger of this track enrolls with."""
    return f"behaviour:{track_id}"


def _clock(f: YamlFile, value: Any, path: str) -> tuple[int, int]:
    match = _CLOCK.match(str(value)) if value is not None else None
    if match is None:
        f.fail(path, 'expected a 24-hour time such as "09:30" (quote it in YAML)')
    return int(match.group(1)), int(match.group(2))


def _preference_options(f: YamlFile, spec: Any, content_topics: frozenset[str]) -> PreferenceOptions:
    at = "contact_policy.preferences"
    spec = f.mapping(spec, at, required=False)
    f.only(spec, at, ("topics", "frequencies", "pause_days"))
    topics = {}
    for topic, label in f.mapping(spec.get("topics"), f"{at}.topics", required=False).items():
        if content_topics and topic not in content_topics:
            f.fail(f"{at}.topics.{topic}", f"no content in content.yaml has the topic {topic!r}")
        topics[str(topic)] = f.text(label, f"{at}.topics.{topic}")
    frequencies = []
    for frequency_id, option in f.mapping(spec.get("frequencies"), f"{at}.frequencies", required=False).items():
        fat = f"{at}.frequencies.{frequency_id}"
        if not _ID.match(str(frequency_id)):
            f.fail(fat, "expected an id of lower-case letters, digits and dashes")
        option = f.mapping(option, fat)
        f.only(option, fat, ("label", "max", "per_days"))
        frequencies.append(
            Frequency(
                id=str(frequency_id),
                label=f.text(option.get("label"), f"{fat}.label"),
                max_marketing_emails=int(f.number(option.get("max"), f"{fat}.max", positive=True)),
                per_days=f.number(option.get("per_days"), f"{fat}.per_days", positive=True),
            )
        )
    pause_days = []
    for i, days in enumerate(f.seq(spec.get("pause_days"), f"{at}.pause_days", required=False)):
        if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 366:
            f.fail(f"{at}.pause_days[{i}]", "expected a whole number of days from 1 to 366")
        pause_days.append(days)
    return PreferenceOptions(topics, tuple(frequencies), tuple(pause_days))


def _policy(f: YamlFile, content_topics: frozenset[str]) -> ContactPolicy:
    spec = f.mapping(f.root.get("contact_policy"), "contact_policy")
    f.only(spec, "contact_policy", ("timezone", "marketing_email", "quiet_hours", "business_days_only", "preferences"))
    timezone = f.text(spec.get("timezone"), "contact_policy.timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        f.fail("contact_policy.timezone", f"{timezone!r} is not an IANA time zone (e.g. America/New_York)")
    cap = f.mapping(spec.get("marketing_email"), "contact_policy.marketing_email")
    f.only(cap, "contact_policy.marketing_email", ("max", "per_days"))
    maximum = f.number(cap.get("max"), "contact_policy.marketing_email.max", positive=True)
    quiet = f.mapping(spec.get("quiet_hours"), "contact_policy.quiet_hours")
    f.only(quiet, "contact_policy.quiet_hours", ("from", "to"))
    business = spec.get("business_days_only", True)
    if not isinstance(business, bool):
        f.fail("contact_policy.business_days_only", "expected true or false")
    return ContactPolicy(
        timezone=timezone,
        max_marketing_emails=int(maximum),
        per_days=f.number(cap.get("per_days"), "contact_policy.marketing_email.per_days", positive=True),
        quiet_from=_clock(f, quiet.get("from"), "contact_policy.quiet_hours.from"),
        quiet_to=_clock(f, quiet.get("to"), "contact_policy.quiet_hours.to"),
        business_days_only=business,
        preferences=_preference_options(f, spec.get("preferences"), content_topics),
    )


def _step(f: YamlFile, spec: Any, at: str, content_ids: set[str], audiences: set[str] | None) -> Step:
    spec = f.mapping(spec, at)
    f.only(
        spec,
        at,
        (
            "id",
            "channel",
            "after_days",
            "at",
            "business_days",
            "content",
            "subject",
            "audience",
            "reason",
            "experiment",
        ),
    )
    channel = f.choice(spec.get("channel"), f"{at}.channel", CHANNELS)
    content = names_of(f, spec.get("content"), f"{at}.content")
    for i, content_id in enumerate(content):
        if content_id not in content_ids:
            f.fail(f"{at}.content[{i}]", f"no content {content_id!r} in content.yaml")
    experiment_id, variants = None, ()
    if spec.get("experiment") is not None:
        experiment = f.mapping(spec["experiment"], f"{at}.experiment")
        f.only(experiment, f"{at}.experiment", ("id", "variants"))
        experiment_id = f.text(experiment.get("id"), f"{at}.experiment.id", _ID)
        parsed = []
        for i, variant in enumerate(f.seq(experiment.get("variants"), f"{at}.experiment.variants")):
            vat = f"{at}.experiment.variants[{i}]"
            variant = f.mapping(variant, vat)
            f.only(variant, vat, ("id", "subject", "weight"))
            parsed.append(
                Variant(
                    f.text(variant.get("id"), f"{vat}.id", _ID),
                    f.text(variant["subject"], f"{vat}.subject") if variant.get("subject") else None,
                    f.number(variant.get("weight", 1), f"{vat}.weight", positive=True),
                )
            )
        if len(parsed) < 2:
            f.fail(f"{at}.experiment.variants", "an experiment needs at least two variants")
        if len({variant.id for variant in parsed}) != len(parsed):
            f.fail(f"{at}.experiment.variants", "variant ids must be unique within an experiment")
        variants = tuple(parsed)
    audience = spec.get("audience")
    if channel == "retargeting":
        audience = f.text(audience, f"{at}.audience", _ID)
    elif audience is not None:
        f.fail(f"{at}.audience", "only retargeting steps name an audience")
    after_days = f.number(spec.get("after_days", 0), f"{at}.after_days")
    if after_days < 0:
        f.fail(f"{at}.after_days", "expected zero or more days")
    business = spec.get("business_days", True)
    if not isinstance(business, bool):
        f.fail(f"{at}.business_days", "expected true or false")
    return Step(
        id=f.text(spec.get("id"), f"{at}.id", _ID),
        channel=channel,
        after_days=after_days,
        at=_clock(f, spec["at"], f"{at}.at") if spec.get("at") is not None else None,
        business_days=business,
        content=content,
        subject=f.text(spec["subject"], f"{at}.subject") if spec.get("subject") else None,
        audience=audience,
        reason=f.text(spec["reason"], f"{at}.reason") if spec.get("reason") else None,
        experiment_id=experiment_id,
        variants=variants,
    )


def load_tracks(
    f: YamlFile, content_ids: set[str], content_topics: frozenset[str] = frozenset()
) -> tuple[ContactPolicy, tuple[Track, ...]]:
    f.only(f.root, "", ("contact_policy", "tracks"))
    policy = _policy(f, content_topics)
    tracks = []
    seen: set[str] = set()
    for i, spec in enumerate(f.seq(f.root.get("tracks"), "tracks")):
        at = f"tracks[{i}]"
        spec = f.mapping(spec, at)
        f.only(
            spec,
            at,
            (
                "id",
                "name",
                "priority",
                "triggers",
                "audience",
                "holdout",
                "reentry",
                "exit_when",
                "on_exhausted",
                "steps",
                "topics",
            ),
        )
        track_id = f.text(spec.get("id"), f"{at}.id", _ID)
        if track_id in seen:
            f.fail(f"{at}.id", f"duplicate track id {track_id!r}")
        seen.add(track_id)
        triggers, behaviours = [], []
        for j, trigger in enumerate(f.seq(spec.get("triggers"), f"{at}.triggers")):
            tat = f"{at}.triggers[{j}]"
            if isinstance(trigger, dict):
                f.only(trigger, tat, ("event", "where"))
                behaviours.append(
                    (
                        events_of(f, trigger.get("event"), f"{tat}.event"),
                        f.conditions(trigger.get("where"), f"{tat}.where"),
                    )
                )
                triggers.append(behaviour_trigger(track_id))
            else:
                triggers.append(f.choice(trigger, tat, TRIGGERS))
        triggers = tuple(dict.fromkeys(triggers))
        if not triggers:
            f.fail(f"{at}.triggers", "name at least one trigger")
        audience = f.conditions(spec.get("audience"), f"{at}.audience")
        for condition in audience:
            if condition.path not in AUDIENCE_FIELDS:
                f.fail(f"{at}.audience.{condition.path}", f"not a lead field; use one of {', '.join(AUDIENCE_FIELDS)}")
            if condition.path == "fit_grade" and condition.op == "in":
                for grade in condition.value:
                    f.choice(grade.upper(), f"{at}.audience.fit_grade", FIT_GRADES)
        holdout = f.number(spec.get("holdout", 0), f"{at}.holdout")
        if not 0 <= holdout < 1:
            f.fail(f"{at}.holdout", "expected a share in [0, 1), e.g. 0.1 for 10%")
        reentry = spec.get("reentry", "never")
        reentry_after, reentry_max = None, 1
        if reentry != "never":
            reentry = f.mapping(reentry, f"{at}.reentry")
            f.only(reentry, f"{at}.reentry", ("after_days", "max_times"))
            reentry_after = f.number(reentry.get("after_days"), f"{at}.reentry.after_days", positive=True)
            reentry_max = int(f.number(reentry.get("max_times", 3), f"{at}.reentry.max_times", positive=True))
        exits = f.mapping(spec.get("exit_when"), f"{at}.exit_when", required=False)
        f.only(exits, f"{at}.exit_when", ("lifecycle", "events"))
        exit_lifecycle = frozenset(
            f.choice(s, f"{at}.exit_when.lifecycle[{j}]", LIFECYCLE_STAGES)
            for j, s in enumerate(f.seq(exits.get("lifecycle"), f"{at}.exit_when.lifecycle", required=False))
        )
        steps = tuple(
            _step(f, step, f"{at}.steps[{j}]", content_ids, None)
            for j, step in enumerate(f.seq(spec.get("steps"), f"{at}.steps"))
        )
        if not steps:
            f.fail(f"{at}.steps", "a track needs at least one step")
        step_ids = [s.id for s in steps]
        if len(set(step_ids)) != len(step_ids):
            f.fail(f"{at}.steps", "step ids must be unique within a track")
        topics = frozenset(names_of(f, spec.get("topics"), f"{at}.topics"))
        for topic in sorted(topics - set(policy.preferences.topics)):
            f.fail(f"{at}.topics", f"{topic!r} is not a topic of contact_policy.preferences.topics")
        tracks.append(
            Track(
                id=track_id,
                name=f.text(spec.get("name"), f"{at}.name"),
                priority=int(f.number(spec.get("priority", 0), f"{at}.priority")),
                triggers=triggers,
                audience=audience,
                holdout=holdout,
                reentry_after_days=reentry_after,
                reentry_max_times=reentry_max,
                exit_lifecycle=exit_lifecycle,
                exit_events=frozenset(names_of(f, exits.get("events"), f"{at}.exit_when.events")),
                on_exhausted=f.choice(spec.get("on_exhausted", "skip"), f"{at}.on_exhausted", ON_EXHAUSTED),
                steps=steps,
                behaviours=tuple(behaviours),
                topics=topics,
            )
        )
    return policy, tuple(sorted(tracks, key=lambda t: -t.priority))
