"""GET /v1/leads/{lead}: everything marketing or sales asks about one lead,
with an engagement explanation that adds up to the score."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nurture.config.loader import Config
from nurture.core.domain import MAX_LISTED_ALIASES, Lead, StoredEvent
from nurture.core.ports import LeadStore
from nurture.scoring.scores import current_buying_stage, decayed, engagement_at, fit_reasons, fit_subject
from nurture.store.lookup import find_lead
from nurture.sweeps.scheduled import due_at, sunset_in_force

RECENT_EVENTS = 25
VIEW_ALIASES = 20  # merged devices whose history the view reads


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


class LeadViewer:
    """GET /v1/leads/{lead}: the lead as marketing and sales see it, explained."""

    def __init__(self, store: LeadStore, config: Config) -> None:
        self.store = store
        self.config = config

    def describe(self, reference: str, now: float) -> dict[str, Any]:
        return describe_lead(self.store, self.config, reference, now)


def describe_lead(store: LeadStore, config: Config, reference: str, now: float) -> dict[str, Any]:
    lead = find_lead(store, reference)
    events: list[StoredEvent] = []
    # The lead's own history and that of its most recently merged devices: one
    # query each, bounded however many devices the lead gathered.
    devices = lead.aliases[-VIEW_ALIASES:]
    for lead_id in [lead.lead_id, *devices]:
        events.extend(store.lead_events(lead_id))
    events.sort(key=lambda event: event.timestamp)
    score = engagement_at(lead, now, config)
    return {
        "lead_id": lead.lead_id,
        "email": lead.email,
        "user_id": lead.user_id,
        "anonymous_ids": lead.anonymous_ids,
        "merged_devices": {"total": _merged_devices(store, lead), "history_shown": len(devices)},
        "profile": lead.profile,
        "consent": lead.consent,
        "sweeps": _sweeps(lead, config),
        "fit": _fit(lead, config),
        "engagement": _engagement(lead, events, score, now, config),
        "lifecycle": {
            "stage": lead.lifecycle,
            "since": _iso(lead.lifecycle_at),
            "reason": lead.lifecycle_reason,
            "history": [
                {
                    "from": e.properties.get("from"),
                    "to": e.properties.get("to"),
                    "at": _iso(e.timestamp),
                    "reason": e.properties.get("reason"),
                }
                for e in events
                if e.kind == "lifecycle"
            ],
        },
        "buying_stage": {
            "stage": current_buying_stage(lead.buying, now, config.buying_half_life_seconds) or lead.buying_stage,
            "signals": {
                stage: round(decayed(w, at, now, config.buying_half_life_seconds), 3)
                for stage, (w, at) in lead.buying.items()
            },
            "interests": {
                topic: round(decayed(w, at, now, config.buying_half_life_seconds), 3)
                for topic, (w, at) in lead.interests.items()
            },
            "content_consumed": lead.consumed,
        },
        "sales": {key: _iso(value) if key.endswith("_at") else value for key, value in lead.sales.items()},
        "account": _account(store, lead, now, config),
        "recent_events": [
            {
                "message_id": e.message_id,
                "type": e.kind,
                "name": e.name,
                "at": _iso(e.timestamp),
                "source": e.source,
                "properties": e.properties,
                "points": e.points,
            }
            for e in reversed(events[-RECENT_EVENTS:])
        ],
        "created_at": _iso(lead.created_at),
        "last_seen_at": _iso(lead.last_seen_at),
        "as_of": _iso(now),
    }


def _fit(lead: Lead, config: Config) -> dict[str, Any]:
    descriptions = {rule.id: rule.description for rule in config.fit.rules}
    subject = fit_subject(lead, config)
    return {
        "grade": lead.fit_grade,
        "score": lead.fit_score,
        "persona": subject["persona"],
        "seniority": subject["seniority"],
        "reasons": [
            {"rule": rule_id, "points": points, "description": descriptions.get(rule_id, "")}
            for rule_id, points in fit_reasons(lead, config, subject)
        ],
    }


def _engagement(lead: Lead, events: list[StoredEvent], score: float, now: float, config: Config) -> dict[str, Any]:
    """Per rule: points awarded and what is left of them after decay. The rows
    sum to the score; activity whose events expired shows as one residual row."""
    half_life = config.half_life_seconds
    descriptions = {rule.id: rule.description for rule in config.engagement_rules}
    by_rule: dict[str, dict[str, Any]] = {}
    for event in events:
        for rule_id, points in event.points:
            row = by_rule.setdefault(
                rule_id,
                {
                    "rule": rule_id,
                    "description": descriptions.get(rule_id, ""),
                    "hits": 0,
                    "points_awarded": 0.0,
                    "points_now": 0.0,
                    "last_at": None,
                },
            )
            row["hits"] += 1
            row["points_awarded"] += points
            row["points_now"] += decayed(points, event.timestamp, now, half_life)
            row["last_at"] = _iso(event.timestamp)
    rows = sorted(by_rule.values(), key=lambda row: -abs(row["points_now"]))
    residual = score - sum(row["points_now"] for row in rows)
    if abs(residual) >= 0.005:
        rows.append(
            {
                "rule": "earlier-activity",
                "description": "activity whose events passed the retention period",
                "hits": None,
                "points_awarded": None,
                "points_now": residual,
                "last_at": None,
            }
        )
    for row, cents in zip(rows, _cents_adding_up([row["points_now"] for row in rows], score), strict=True):
        row["points_now"] = cents
    return {
        "score": round(score, 2),
        "half_life_days": round(half_life / 86400, 3),
        "explanation": rows,
    }


def _cents_adding_up(values: list[float], total: float) -> list[float]:
    """Round to cents so the rounded values sum exactly to the rounded total
    (largest-remainder rounding)."""
    exact = [value * 100 for value in values]
    floors = [int(v // 1) for v in exact]
    shortfall = round(total * 100) - sum(floors)
    by_remainder = sorted(range(len(values)), key=lambda i: exact[i] - floors[i], reverse=shortfall > 0)
    for i in by_remainder[: abs(shortfall)] if values else []:
        floors[i] += 1 if shortfall > 0 else -1
    return [f / 100 for f in floors]


def _account(store: LeadStore, lead: Lead, now: float, config: Config) -> dict[str, Any] | None:
    if not lead.domain:
        return None
    contacts = [c for c in store.account_leads(lead.domain) if not c.merged_into]
    scored = sorted(((engagement_at(c, now, config), c) for c in contacts), key=lambda pair: -pair[0])
    engaged = [pair for pair in scored if pair[0] >= config.lifecycle.engaged_contact_min]
    return {
        "domain": lead.domain,
        "contacts": len(contacts),
        "engaged_contacts": len(engaged),
        "engagement_score": round(sum(score for score, _ in scored), 2),
        "buying_committee": [
            {
                "lead_id": c.lead_id,
                "email": c.email,
                "title": c.profile.get("title"),
                "persona": c.profile.get("persona"),
                "engagement_score": round(score, 2),
                "lifecycle": c.lifecycle,
            }
            for score, c in engaged[:10]
        ],
    }


def _sweeps(lead: Lead, config: Config) -> dict[str, Any]:
    """What the sweeps know: when the lead next falls due, its last wake-up,
    and whether graymail stopped its marketing email."""
    return {
        "next_due": _iso(due_at(lead, config)),
        "woken_at": _iso(lead.woken_at),
        "demoted_from": lead.demoted_from,
        "last_email_engagement": _iso(lead.email_engaged_at),
        "graymail_sunset": {**lead.sunset, "at": _iso(lead.sunset["at"])} if sunset_in_force(lead) else None,
    }


def _merged_devices(store: LeadStore, lead: Lead) -> int:
    """How many devices were merged in: those the lead lists, and, once its list
    is full, those recorded as items of their own (one keys-only query)."""
    if len(lead.aliases) < MAX_LISTED_ALIASES:
        return len(lead.aliases)
    return len(lead.aliases) + len(store.aliases_of(lead.lead_id))
