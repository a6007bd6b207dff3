"""User configuration: YAML files validated at load.

Every error names the file, the path inside it and what is wrong, e.g.
`scoring.yaml: engagement.rules[3].cap.per_days: expected a positive number`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from nurture.config.audiences import load_audiences, undefined_audiences
from nurture.config.origins import Origins, origin_pattern_problem
from nurture.config.sweeps import SweepPolicy, load_sweep_policy
from nurture.config.tracks import load_tracks
from nurture.config.yaml_file import YamlFile, events_of, names_of
from nurture.core.errors import ConfigError
from nurture.core.rules import Condition
from nurture.core.stages import BUYING_STAGES, FIT_GRADES


@dataclass(frozen=True)
class FormToolDefaults:
    """What a source of one form tool gets unless it says otherwise (the tool's
    signature and payload are read by nurture.ingest.form_tools)."""

    id_field: str  # the tool's own id of a submission, the same on every redelivery
    # How old a delivery's own time may be; None where the signature carries a timestamp.
    replay_window_seconds: float | None


HOUR = 3600.0
FORM_TOOLS: dict[str, FormToolDefaults] = {
    "standard-webhooks": FormToolDefaults(id_field="webhook-id", replay_window_seconds=None),
    # Typeform retries a failed delivery every 2-3 minutes for 10 hours, or after
    # 5 min, 10 min, 20 min, 1 h, 2 h, 3 h and 4 h (10 h 35 min in all); Tally after
    # 5 min, 30 min, 1 h, 6 h and 1 day (31 h 35 min in all). The windows outlast both.
    "typeform": FormToolDefaults(id_field="event_id", replay_window_seconds=12 * HOUR),
    "tally": FormToolDefaults(id_field="responseId", replay_window_seconds=36 * HOUR),
}
# Nurture's own signature, the source key, and form tools' own signatures.
FORM_AUTH = ("hmac", "key", *FORM_TOOLS)
PROFILE_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "title",
    "company",
    "domain",
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "state",
    "city",
    "timezone",
    "phone",
    "product_interest",
    "website",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
DAY = 86400.0


@dataclass(frozen=True)
class SegmentSource:
    name: str
    secret: str
    origins: Origins = Origins()  # web pages allowed to send (browser SDKs)


@dataclass(frozen=True)
class FormSource:
    name: str
    auth: str
    secret: str
    form_id: str
    fields: Mapping[str, str]  # profile field -> dotted path in the submission
    id_field: str | None
    # Timely responses: a transactional acknowledgement with this content piece
    # (e.g. the gated asset's link), and/or an immediate sales alert.
    acknowledge_content: str | None = None
    acknowledge_subject: str | None = None
    alert_sales: bool = False
    # Progressive profiling: profile fields to ask for, in priority order, and
    # how many at most per form view.
    progressive_fields: tuple[str, ...] = ()
    progressive_max: int = 3
    # typeform and tally: how old a delivery's own time may be (None: the tool's default).
    replay_window_seconds: float | None = None
    origins: Origins = Origins()  # web pages allowed to post the form from a browser

    @property
    def responds(self) -> bool:
        return self.acknowledge_content is not None or self.alert_sales


@dataclass(frozen=True)
class FitRule:
    id: str
    conditions: tuple[Condition, ...]
    points: float
    description: str


@dataclass(frozen=True)
class EngagementRule:
    id: str
    events: frozenset[str]
    conditions: tuple[Condition, ...]
    points: float
    cap_count: int | None
    cap_seconds: float | None
    description: str


@dataclass(frozen=True)
class ContentTag:
    id: str
    kind: str
    title: str
    events: frozenset[str]
    conditions: tuple[Condition, ...]
    stages: tuple[str, ...]
    topics: tuple[str, ...]
    # Sendable content (nurture emails) also has a link and a summary.
    url: str | None = None
    summary: str = ""
    personas: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()

    @property
    def sendable(self) -> bool:
        return self.url is not None


@dataclass(frozen=True)
class Fit:
    seniority: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]
    personas: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]
    rules: tuple[FitRule, ...]
    grades: Mapping[str, float]  # A/B/C minimum points; below C is D


@dataclass(frozen=True)
class Lifecycle:
    warm: Mapping[str, float]  # fit grade -> minimum engagement
    hot: Mapping[str, float]
    demote_ratio: float
    engaged_contact_min: float


@dataclass(frozen=True)
class RejectionReason:
    code: str
    engagement_factor: float  # 0 resets the engagement score; 0.5 halves it
    description: str


@dataclass(frozen=True)
class Sales:
    """config/sales.yaml: the hand-off SLA, rejection reasons, recycling and loss."""

    sla_hours: float
    recent_activities: int
    top_reasons: int
    rejection_reasons: Mapping[str, RejectionReason]
    recycle_cooldown_days: float
    lost_reasons: tuple[str, ...]
    lost_reactivate_after_days: float


@dataclass(frozen=True)
class Config:
    segment_sources: Mapping[str, SegmentSource]
    forms: Mapping[str, FormSource]
    lists: Mapping[str, frozenset[str]]
    fit: Fit
    engagement_rules: tuple[EngagementRule, ...]
    half_life_seconds: float
    lifecycle: Lifecycle
    buying_half_life_seconds: float
    content: tuple[ContentTag, ...]
    policy: Any = None  # tracks.ContactPolicy
    tracks: tuple[Any, ...] = ()  # tracks.Track, highest priority first
    directory: str = ""
    rules_by_event: Mapping[str, tuple[EngagementRule, ...]] = field(default_factory=dict)
    content_by_event: Mapping[str, tuple[ContentTag, ...]] = field(default_factory=dict)
    goal_events: frozenset[str] = frozenset()  # events some track exits on
    # tracking event name -> (track id, conditions, event names) of behaviour triggers
    behaviour_triggers: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    sales: Sales | None = None
    sweeps: SweepPolicy | None = None  # sweeps.yaml (optional)


def _origins(f: YamlFile, spec: Mapping[str, Any], at: str) -> Origins:
    patterns = []
    for i, value in enumerate(f.seq(spec.get("allowed_origins"), f"{at}.allowed_origins", required=False)):
        pattern = f.text(value, f"{at}.allowed_origins[{i}]")
        problem = origin_pattern_problem(pattern)
        if problem:
            f.fail(f"{at}.allowed_origins[{i}]", f"{pattern!r}: {problem}")
        patterns.append(pattern)
    return Origins(tuple(patterns))


def _replay_window(f: YamlFile, spec: Mapping[str, Any], at: str, auth: str) -> float | None:
    """A form tool source's replay window on its deliveries' own time (None: the tool's default)."""
    if spec.get("replay_window_seconds") is None:
        return None
    tool = FORM_TOOLS.get(auth)
    if tool is None or tool.replay_window_seconds is None:
        takes = " or ".join(name for name, each in FORM_TOOLS.items() if each.replay_window_seconds is not None)
        f.fail(f"{at}.replay_window_seconds", f"only {takes} sources take a replay window, not {auth}")
    return f.number(spec["replay_window_seconds"], f"{at}.replay_window_seconds", positive=True)


def _sources(f: YamlFile) -> tuple[dict[str, SegmentSource], dict[str, FormSource]]:
    f.only(f.root, "", ("segment", "forms"))
    segment = {}
    for name, spec in f.mapping(f.root.get("segment"), "segment").items():
        at = f"segment.{name}"
        spec = f.mapping(spec, at)
        f.only(spec, at, ("secret", "description", "allowed_origins"))
        segment[name] = SegmentSource(
            f.text(name, at, _ID), f.text(spec.get("secret"), f"{at}.secret"), _origins(f, spec, at)
        )
    forms = {}
    for name, spec in f.mapping(f.root.get("forms"), "forms", required=False).items():
        at = f"forms.{name}"
        spec = f.mapping(spec, at)
        f.only(
            spec,
            at,
            (
                "auth",
                "secret",
                "form_id",
                "fields",
                "id_field",
                "description",
                "respond",
                "progressive",
                "allowed_origins",
                "replay_window_seconds",
            ),
        )
        progressive = f.mapping(spec.get("progressive"), f"{at}.progressive", required=False)
        f.only(progressive, f"{at}.progressive", ("fields", "max"))
        progressive_fields = tuple(
            f.choice(name, f"{at}.progressive.fields[{j}]", PROFILE_FIELDS)
            for j, name in enumerate(f.seq(progressive.get("fields"), f"{at}.progressive.fields", required=False))
        )
        if len(set(progressive_fields)) != len(progressive_fields):
            f.fail(f"{at}.progressive.fields", "a field is listed twice")
        progressive_max = f.number(progressive.get("max", 3), f"{at}.progressive.max", positive=True)
        if progressive_max != int(progressive_max):
            f.fail(f"{at}.progressive.max", "expected a whole number")
        respond = f.mapping(spec.get("respond"), f"{at}.respond", required=False)
        f.only(respond, f"{at}.respond", ("acknowledge", "alert_sales"))
        acknowledge = f.mapping(respond.get("acknowledge"), f"{at}.respond.acknowledge", required=False)
        f.only(acknowledge, f"{at}.respond.acknowledge", ("content", "subject"))
        alert_sales = respond.get("alert_sales", False)
        if not isinstance(alert_sales, bool):
            f.fail(f"{at}.respond.alert_sales", "expected true or false")
        fields = {}
        for target, source_path in f.mapping(spec.get("fields"), f"{at}.fields").items():
            f.choice(target, f"{at}.fields.{target}", PROFILE_FIELDS)
            fields[target] = f.text(source_path, f"{at}.fields.{target}")
        if "email" not in fields:
            f.fail(f"{at}.fields", "map the submission's email field (fields.email)")
        auth = f.choice(spec.get("auth"), f"{at}.auth", FORM_AUTH)
        tool = FORM_TOOLS.get(auth)
        id_field = f.text(spec["id_field"], f"{at}.id_field") if spec.get("id_field") else None
        forms[name] = FormSource(
            name=f.text(name, at, _ID),
            auth=auth,
            secret=f.text(spec.get("secret"), f"{at}.secret"),
            form_id=f.text(spec.get("form_id", name), f"{at}.form_id"),
            fields=fields,
            id_field=id_field or (tool.id_field if tool else None),
            acknowledge_content=(
                f.text(acknowledge["content"], f"{at}.respond.acknowledge.content") if acknowledge else None
            ),
            acknowledge_subject=(
                f.text(acknowledge["subject"], f"{at}.respond.acknowledge.subject")
                if acknowledge.get("subject")
                else None
            ),
            alert_sales=alert_sales,
            progressive_fields=progressive_fields,
            progressive_max=int(progressive_max),
            replay_window_seconds=_replay_window(f, spec, at, auth),
            origins=_origins(f, spec, at),
        )
    return segment, forms


def _scoring(f: YamlFile, lists: Mapping[str, frozenset[str]]):
    f.only(f.root, "", ("lists", "fit", "engagement", "lifecycle", "buying_stage"))
    fit_spec = f.mapping(f.root.get("fit"), "fit")
    f.only(fit_spec, "fit", ("seniority", "personas", "rules", "grades"))
    fit_rules = []
    seen: set[str] = set()
    for i, rule in enumerate(f.seq(fit_spec.get("rules"), "fit.rules")):
        at = f"fit.rules[{i}]"
        rule = f.mapping(rule, at)
        f.only(rule, at, ("id", "where", "points", "description"))
        rule_id = f.text(rule.get("id"), f"{at}.id", _ID)
        if rule_id in seen:
            f.fail(f"{at}.id", f"duplicate rule id {rule_id!r}")
        seen.add(rule_id)
        conditions = f.conditions(rule.get("where"), f"{at}.where")
        if not conditions:
            f.fail(f"{at}.where", "a fit rule needs at least one condition")
        fit_rules.append(
            FitRule(rule_id, conditions, f.number(rule.get("points"), f"{at}.points"), str(rule.get("description", "")))
        )
    grades_spec = f.mapping(fit_spec.get("grades"), "fit.grades")
    grades = {g: f.number(grades_spec.get(g), f"fit.grades.{g}") for g in FIT_GRADES[:3]}
    if not grades["A"] > grades["B"] > grades["C"]:
        f.fail("fit.grades", "thresholds must fall from A to C")
    fit = Fit(
        seniority=f.patterns(fit_spec.get("seniority"), "fit.seniority"),
        personas=f.patterns(fit_spec.get("personas"), "fit.personas"),
        rules=tuple(fit_rules),
        grades=grades,
    )

    engagement = f.mapping(f.root.get("engagement"), "engagement")
    f.only(engagement, "engagement", ("half_life_days", "rules"))
    half_life = f.number(engagement.get("half_life_days"), "engagement.half_life_days", positive=True) * DAY
    rules = []
    seen = set()
    for i, rule in enumerate(f.seq(engagement.get("rules"), "engagement.rules")):
        at = f"engagement.rules[{i}]"
        rule = f.mapping(rule, at)
        f.only(rule, at, ("id", "events", "where", "points", "cap", "description"))
        rule_id = f.text(rule.get("id"), f"{at}.id", _ID)
        if rule_id in seen:
            f.fail(f"{at}.id", f"duplicate rule id {rule_id!r}")
        seen.add(rule_id)
        cap_count = cap_seconds = None
        if rule.get("cap") is not None:
            cap = f.mapping(rule["cap"], f"{at}.cap")
            f.only(cap, f"{at}.cap", ("count", "per_days"))
            count = f.number(cap.get("count"), f"{at}.cap.count", positive=True)
            if count != int(count):
                f.fail(f"{at}.cap.count", "expected a whole number")
            cap_count = int(count)
            cap_seconds = f.number(cap.get("per_days"), f"{at}.cap.per_days", positive=True) * DAY
        points = f.number(rule.get("points"), f"{at}.points")
        if points == 0:
            f.fail(f"{at}.points", "a rule worth 0 points does nothing")
        rules.append(
            EngagementRule(
                rule_id,
                events_of(f, rule.get("events"), f"{at}.events"),
                f.conditions(rule.get("where"), f"{at}.where"),
                points,
                cap_count,
                cap_seconds,
                str(rule.get("description", "")),
            )
        )

    lifecycle_spec = f.mapping(f.root.get("lifecycle"), "lifecycle")
    f.only(lifecycle_spec, "lifecycle", ("warm", "hot", "demote_ratio", "engaged_contact_min"))
    thresholds = {}
    for level in ("warm", "hot"):
        spec = f.mapping(lifecycle_spec.get(level), f"lifecycle.{level}")
        for grade in spec:
            f.choice(grade, f"lifecycle.{level}.{grade}", FIT_GRADES)
        thresholds[level] = {g: f.number(v, f"lifecycle.{level}.{g}", positive=True) for g, v in spec.items()}
    for grade, hot_min in thresholds["hot"].items():
        warm_min = thresholds["warm"].get(grade)
        if warm_min is None or warm_min >= hot_min:
            f.fail(f"lifecycle.hot.{grade}", "a grade that can become hot needs a lower warm threshold")
    ratio = f.number(lifecycle_spec.get("demote_ratio", 0.8), "lifecycle.demote_ratio", positive=True)
    if ratio > 1:
        f.fail("lifecycle.demote_ratio", "expected a number in (0, 1]")
    lifecycle = Lifecycle(
        thresholds["warm"],
        thresholds["hot"],
        ratio,
        f.number(lifecycle_spec.get("engaged_contact_min", 10), "lifecycle.engaged_contact_min", positive=True),
    )
    buying = f.mapping(f.root.get("buying_stage"), "buying_stage", required=False)
    f.only(buying, "buying_stage", ("half_life_days",))
    buying_half_life = f.number(buying.get("half_life_days", 21), "buying_stage.half_life_days", positive=True) * DAY
    _check_list_refs(f, [c for r in fit.rules for c in r.conditions] + [c for r in rules for c in r.conditions], lists)
    return fit, tuple(rules), half_life, lifecycle, buying_half_life


def _whole(f: YamlFile, value: Any, path: str) -> int:
    number = f.number(value, path, positive=True)
    if number != int(number):
        f.fail(path, "expected a whole number")
    return int(number)


def _sales(f: YamlFile) -> Sales:
    f.only(f.root, "", ("handoff", "rejection_reasons", "recycle", "lost"))
    handoff = f.mapping(f.root.get("handoff"), "handoff")
    f.only(handoff, "handoff", ("sla_hours", "recent_activities", "top_reasons"))
    reasons = {}
    for code, spec in f.mapping(f.root.get("rejection_reasons"), "rejection_reasons").items():
        at = f"rejection_reasons.{code}"
        f.text(code, at, _ID)
        spec = f.mapping(spec, at)
        f.only(spec, at, ("engagement", "description"))
        effect = spec.get("engagement")
        if effect == "reset":
            factor = 0.0
        else:
            factor = f.number(effect, f"{at}.engagement")
            if not 0 <= factor <= 1:
                f.fail(f"{at}.engagement", "expected `reset` or a factor between 0 and 1")
        reasons[code] = RejectionReason(code, factor, str(spec.get("description", "")))
    if not reasons:
        f.fail("rejection_reasons", "name at least one reason sales may reject a lead for")
    recycle = f.mapping(f.root.get("recycle"), "recycle")
    f.only(recycle, "recycle", ("cooldown_days",))
    cooldown = recycle.get("cooldown_days")
    if cooldown != 0:
        f.number(cooldown, "recycle.cooldown_days", positive=True)
    lost = f.mapping(f.root.get("lost"), "lost")
    f.only(lost, "lost", ("reasons", "reactivate_after_days"))
    lost_reasons = tuple(
        f.text(reason, f"lost.reasons[{i}]", _ID) for i, reason in enumerate(f.seq(lost.get("reasons"), "lost.reasons"))
    )
    if not lost_reasons:
        f.fail("lost.reasons", "name at least one reason an opportunity may be lost for")
    return Sales(
        sla_hours=f.number(handoff.get("sla_hours"), "handoff.sla_hours", positive=True),
        recent_activities=_whole(f, handoff.get("recent_activities", 8), "handoff.recent_activities"),
        top_reasons=_whole(f, handoff.get("top_reasons", 5), "handoff.top_reasons"),
        rejection_reasons=reasons,
        recycle_cooldown_days=float(cooldown),
        lost_reasons=lost_reasons,
        lost_reactivate_after_days=f.number(
            lost.get("reactivate_after_days"), "lost.reactivate_after_days", positive=True
        ),
    )


def _lists(f: YamlFile) -> dict[str, frozenset[str]]:
    result = {}
    for name, values in f.mapping(f.root.get("lists"), "lists", required=False).items():
        result[str(name)] = frozenset(str(v).strip().lower() for v in f.seq(values, f"lists.{name}"))
    return result


def _check_list_refs(f: YamlFile, conditions: list[Condition], lists: Mapping[str, frozenset[str]]) -> None:
    for condition in conditions:
        if condition.op in ("in_list", "not_in_list") and condition.value not in lists:
            f.fail("lists", f"condition on {condition.path!r} names the undefined list {condition.value!r}")


def _content(f: YamlFile, lists: Mapping[str, frozenset[str]]) -> tuple[ContentTag, ...]:
    f.only(f.root, "", ("content",))
    tags = []
    seen: set[str] = set()
    for i, spec in enumerate(f.seq(f.root.get("content"), "content")):
        at = f"content[{i}]"
        spec = f.mapping(spec, at)
        f.only(
            spec,
            at,
            ("id", "kind", "title", "events", "where", "stages", "topics", "url", "summary", "personas", "industries"),
        )
        content_id = f.text(spec.get("id"), f"{at}.id", _ID)
        if content_id in seen:
            f.fail(f"{at}.id", f"duplicate content id {content_id!r}")
        seen.add(content_id)
        stages = tuple(
            f.choice(s, f"{at}.stages[{j}]", BUYING_STAGES)
            for j, s in enumerate(f.seq(spec.get("stages"), f"{at}.stages"))
        )
        if not stages:
            f.fail(f"{at}.stages", "tag content with at least one buying stage")
        tags.append(
            ContentTag(
                id=content_id,
                kind=f.text(spec.get("kind"), f"{at}.kind"),
                title=f.text(spec.get("title"), f"{at}.title"),
                events=events_of(f, spec.get("events"), f"{at}.events"),
                conditions=f.conditions(spec.get("where"), f"{at}.where"),
                stages=stages,
                topics=tuple(
                    f.text(t, f"{at}.topics[{j}]")
                    for j, t in enumerate(f.seq(spec.get("topics"), f"{at}.topics", required=False))
                ),
                url=f.text(spec["url"], f"{at}.url") if spec.get("url") is not None else None,
                summary=str(spec.get("summary") or "").strip(),
                personas=names_of(f, spec.get("personas"), f"{at}.personas"),
                industries=tuple(n.lower() for n in names_of(f, spec.get("industries"), f"{at}.industries")),
            )
        )
    _check_list_refs(f, [c for tag in tags for c in tag.conditions], lists)
    return tuple(tags)


def _index(items, key) -> dict[str, tuple]:
    index: dict[str, list] = {}
    for item in items:
        for event in key(item):
            index.setdefault(event, []).append(item)
    return {event: tuple(group) for event, group in index.items()}


def load_config(directory: str | os.PathLike[str]) -> Config:
    """Load and validate sources.yaml, scoring.yaml, content.yaml, tracks.yaml and
    sales.yaml (and, when present, audiences.yaml and sweeps.yaml) from `directory`."""
    directory = Path(directory)
    segment, forms = _sources(YamlFile(directory, "sources.yaml"))
    scoring_file = YamlFile(directory, "scoring.yaml")
    lists = _lists(scoring_file)
    fit, rules, half_life, lifecycle, buying_half_life = _scoring(scoring_file, lists)
    content = _content(YamlFile(directory, "content.yaml"), lists)
    policy, tracks = load_tracks(
        YamlFile(directory, "tracks.yaml"),
        {tag.id for tag in content},
        frozenset(topic for tag in content for topic in tag.topics),
    )
    if (directory / "audiences.yaml").is_file():
        missing = undefined_audiences(load_audiences(directory), tracks)
        if missing:
            raise ConfigError(
                "tracks.yaml", "tracks", f"retargeting steps name audiences audiences.yaml lacks: {missing}"
            )
    sales = _sales(YamlFile(directory, "sales.yaml"))
    sweeps = load_sweep_policy(YamlFile(directory, "sweeps.yaml")) if (directory / "sweeps.yaml").is_file() else None
    return Config(
        sweeps=dataclasses.replace(sweeps or SweepPolicy(), lost_after_days=sales.lost_reactivate_after_days),
        segment_sources=segment,
        forms=forms,
        lists=lists,
        fit=fit,
        engagement_rules=rules,
        half_life_seconds=half_life,
        lifecycle=lifecycle,
        buying_half_life_seconds=buying_half_life,
        content=content,
        policy=policy,
        tracks=tracks,
        directory=str(directory),
        rules_by_event=_index(rules, lambda r: r.events),
        content_by_event=_index(content, lambda c: c.events),
        goal_events=frozenset(name for track in tracks for name in track.exit_events),
        behaviour_triggers=_index(
            [(track.id, conditions, events) for track in tracks for events, conditions in track.behaviours],
            lambda trigger: trigger[2],
        ),
        sales=sales,
    )


@lru_cache(maxsize=4)
def cached_config(directory: str) -> Config:
    return load_config(directory)
