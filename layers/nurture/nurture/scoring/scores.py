"""Two-axis lead scoring: fit (who the lead is) and engagement (what the lead
does), plus buying-stage inference and lifecycle thresholds. Pure functions
over the domain models: no I/O, time passed in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.config.loader import Config
from nurture.core.domain import Lead, TrackingEvent
from nurture.core.rules import all_match
from nurture.core.stages import BUYING_STAGES

QUALIFYING_STAGES = ("visitor", "subscriber", "lead", "warm", "hot")
_RANK = {"visitor": -1, "subscriber": 0, "lead": 0, "recycled": 0, "warm": 1, "hot": 2}
MAX_CONSUMED = 200


def decayed(value: float, as_of: float, now: float, half_life: float) -> float:
    """`value` measured at `as_of`, halved every `half_life` seconds until `now`."""
    if now <= as_of or value == 0:
        return value
    return value * 0.5 ** ((now - as_of) / half_life)


def lead_context(lead: Lead, engagement_score: float) -> dict[str, Any]:
    """What every lifecycle and sales event says about the lead it concerns."""
    return {
        "email": lead.email,
        "fit_grade": lead.fit_grade,
        "fit_score": lead.fit_score,
        "engagement_score": engagement_score,
        "buying_stage": lead.buying_stage,
        "persona": lead.profile.get("persona"),
        "account_domain": lead.domain,
    }


def days_in_stage(lead: Lead, at: float) -> float:
    """Days from when the lead entered its current stage (or was created) until `at`."""
    entered = lead.lifecycle_at or lead.created_at or at
    return round(max(at - entered, 0.0) / 86400, 3)


def engagement_at(lead: Lead, now: float, config: Config) -> float:
    return decayed(lead.engagement, lead.engagement_at, now, config.half_life_seconds)


def _add_decaying(value: float, as_of: float, points: float, when: float, half_life: float) -> tuple[float, float]:
    """Add `points` earned at `when` to a decaying `value` kept as of `as_of`."""
    if when >= as_of:
        return decayed(value, as_of, when, half_life) + points, when
    return value + decayed(points, when, as_of, half_life), as_of


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].lower()


def fit_subject(lead: Lead, config: Config) -> dict[str, Any]:
    title = str(lead.profile.get("title") or "")
    return {
        **lead.profile,
        "seniority": _first_match(config.fit.seniority, title) if title else None,
        "persona": _first_match(config.fit.personas, title) if title else None,
        "email_domain": email_domain(lead.email),
    }


def _first_match(named_patterns, text: str) -> str | None:
    for name, patterns in named_patterns:
        if any(pattern.search(text) for pattern in patterns):
            return name
    return None


def fit_reasons(lead: Lead, config: Config, subject: dict[str, Any] | None = None) -> list[tuple[str, float]]:
    """The ideal-customer-profile rules the lead's profile meets, as (rule id,
    points). Derived from the profile whenever asked rather than stored: the
    lead item stays small, and the reasons always name the rules in force."""
    subject = fit_subject(lead, config) if subject is None else subject
    return [(rule.id, rule.points) for rule in config.fit.rules if all_match(rule.conditions, subject, config.lists)]


def grade_fit(lead: Lead, config: Config) -> None:
    """Grade the lead A-D against the ideal customer profile (its reasons: fit_reasons)."""
    subject = fit_subject(lead, config)
    score = sum(points for _, points in fit_reasons(lead, config, subject))
    grades = config.fit.grades
    lead.fit_score = score
    lead.fit_grade = (
        "A" if score >= grades["A"] else "B" if score >= grades["B"] else "C" if score >= grades["C"] else "D"
    )
    for key in ("persona", "seniority"):
        if subject[key]:
            lead.profile[key] = subject[key]


def event_subject(event: TrackingEvent, lead: Lead) -> dict[str, Any]:
    """What behaviour rules, content tags and triggers match an event against."""
    return {
        "properties": event.properties,
        "traits": event.traits,
        "context": event.context,
        "email_domain": email_domain(lead.email or event.email),
    }


# Caps count hits per period of the rule's length, periods starting on Mondays
# (1970-01-05 UTC), and keep each period's earliest hits: a period's hits are a
# function of the set of events in it, whatever order they arrive in.
CAP_PERIOD_ORIGIN = 4 * 86400.0
# How far behind a lead's newest capped hit an event may arrive and still be
# judged against its period's hits; an older straggler scores no capped points.
CAP_HORIZON_SECONDS = 35 * 86400.0


def cap_period(at: float, period_seconds: float) -> int:
    return int((at - CAP_PERIOD_ORIGIN) // period_seconds)


def _count_capped_hit(lead: Lead, rule: Any, at: float, half_life: float) -> bool:
    """Whether a hit of `rule` at `at` counts under its cap ("at most N per D
    days": the N earliest hits of each D-day period count). A hit earlier than
    one its period already counted takes that one's place, and the later hit's
    points come off the score: the same events score the same in any order."""
    times = lead.caps.setdefault(rule.id, [])
    period = cap_period(at, rule.cap_seconds)
    newest = max(times, default=at)
    if (period + 1) * rule.cap_seconds + CAP_PERIOD_ORIGIN <= newest - CAP_HORIZON_SECONDS:
        return False  # its period's hits are no longer kept
    same = sorted(t for t in times if cap_period(t, rule.cap_seconds) == period)
    if len(same) >= rule.cap_count:
        if at >= same[-1]:
            return False
        times.remove(same[-1])
        lead.engagement, lead.engagement_at = _add_decaying(
            lead.engagement, lead.engagement_at, -rule.points, same[-1], half_life
        )
    times.append(at)
    times.sort()
    keep_after = max(times) - CAP_HORIZON_SECONDS - rule.cap_seconds
    lead.caps[rule.id] = [t for t in times if t > keep_after]
    return True


def merge_caps(lead: Lead, source: Lead, config: Config) -> None:
    """Fold an anonymous lead's capped hits into the lead's, after its engagement
    was added: a hit its period cannot count comes off the score again."""
    rules = {rule.id: rule for rules in config.rules_by_event.values() for rule in rules}
    for rule_id, times in source.caps.items():
        rule = rules.get(rule_id)
        if rule is None or rule.cap_count is None:
            continue
        for at in sorted(times):
            if at in lead.caps.get(rule_id, []):
                continue
            if not _count_capped_hit(lead, rule, at, config.half_life_seconds):
                lead.engagement, lead.engagement_at = _add_decaying(
                    lead.engagement, lead.engagement_at, -rule.points, at, config.half_life_seconds
                )


def score_event(lead: Lead, event: TrackingEvent, config: Config) -> list[list[Any]]:
    """Apply the behaviour rules an event matches; returns [rule_id, points] hits.

    Per-rule caps are counted in event time (see `_count_capped_hit`), so a
    replayed, late or reordered event is judged as if all had come in order.
    """
    rules = config.rules_by_event.get(event.name)
    if not rules:
        return []
    subject = event_subject(event, lead)
    hits = []
    for rule in rules:
        if not all_match(rule.conditions, subject, config.lists):
            continue
        if rule.cap_count is not None and not _count_capped_hit(lead, rule, event.timestamp, config.half_life_seconds):
            continue
        lead.engagement, lead.engagement_at = _add_decaying(
            lead.engagement, lead.engagement_at, rule.points, event.timestamp, config.half_life_seconds
        )
        hits.append([rule.id, rule.points])
    return hits


def consume_content(lead: Lead, event: TrackingEvent, config: Config) -> list[str]:
    """Record content the event shows the lead consumed and re-infer the buying stage."""
    tags = config.content_by_event.get(event.name)
    if not tags:
        return []
    subject = event_subject(event, lead)
    consumed = []
    half_life = config.buying_half_life_seconds
    for tag in tags:
        if not all_match(tag.conditions, subject, config.lists):
            continue
        consumed.append(tag.id)
        for stage in tag.stages:
            weight, at = lead.buying.get(stage, (0.0, 0.0))
            lead.buying[stage] = list(_add_decaying(weight, at, 1.0 / len(tag.stages), event.timestamp, half_life))
        for topic in tag.topics:
            weight, at = lead.interests.get(topic, (0.0, 0.0))
            lead.interests[topic] = list(_add_decaying(weight, at, 1.0, event.timestamp, half_life))
        if tag.id in lead.consumed:
            lead.consumed.remove(tag.id)
        lead.consumed.append(tag.id)
    del lead.consumed[:-MAX_CONSUMED]
    if consumed:
        newest = max(at for _, at in lead.buying.values())
        lead.buying_stage = current_buying_stage(lead.buying, newest, half_life)
    return consumed


def current_buying_stage(weights: Mapping[str, list[float]], now: float, half_life: float) -> str | None:
    """The stage with the most recent-weighted consumption; ties go to the later stage."""
    best, best_weight = None, 0.0
    for stage in BUYING_STAGES:
        weight, at = weights.get(stage, (0.0, 0.0))
        current = decayed(weight, at, now, half_life)
        if current > 0 and current >= best_weight - 1e-9:
            best, best_weight = stage, current
    return best


def next_lifecycle(lead: Lead, now: float, config: Config) -> str:
    """Where the fit x engagement thresholds put the lead now.

    Only marketing-owned stages move here; sales-owned stages (opportunity,
    customer, recycled, lost ...) change through sales outcomes. Demotion uses
    `demote_ratio` of the threshold so a score hovering at a line cannot flap.
    A recycled lead qualifies again once its cool-down is over, on fresh
    engagement (sales reset or reduced its score when rejecting it).
    """
    current = lead.lifecycle
    if current == "recycled" and now >= lead.sales.get("recycle_at", float("inf")) and lead.email:
        score = engagement_at(lead, now, config)
        hot_min = config.lifecycle.hot.get(lead.fit_grade)
        warm_min = config.lifecycle.warm.get(lead.fit_grade)
        if hot_min is not None and score >= hot_min:
            return "hot"
        if warm_min is not None and score >= warm_min:
            return "warm"
        return current
    if current not in QUALIFYING_STAGES:
        return current
    if not lead.email:
        return "visitor"
    score = engagement_at(lead, now, config)
    grade = lead.fit_grade
    warm_min = config.lifecycle.warm.get(grade)
    hot_min = config.lifecycle.hot.get(grade)
    ratio = config.lifecycle.demote_ratio
    if hot_min is not None and (score >= hot_min or (current == "hot" and score >= hot_min * ratio)):
        return "hot"
    if warm_min is not None and (score >= warm_min or (current in ("warm", "hot") and score >= warm_min * ratio)):
        return "warm"
    return "subscriber" if current == "subscriber" else "lead"


def lifecycle_events(before: str, after: str) -> list[str]:
    """The bus events a move from `before` to `after` publishes, in order."""
    if before == after:
        return []
    names = []
    rank_before, rank_after = _RANK.get(before), _RANK.get(after)
    if rank_before is not None and rank_after is not None:
        if rank_before < 1 <= rank_after:
            names.append("lead.became_warm")
        if rank_before < 2 <= rank_after:
            names.append("lead.became_hot")
    names.append("lead.stage_changed")
    return names
