"""A lead at a glance, for sales alerts, hand-offs and call tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.config.loader import Config
from nurture.scoring.scores import engagement_at


def lead_summary(lead: Any, config: Config, now: float) -> dict[str, Any]:
    """What a sales rep needs at a glance: who, how well they fit, how engaged,
    where in the buying journey, and what they read lately."""
    titles = {tag.id: tag.title for tag in config.content}
    return {
        "lead_id": lead.lead_id,
        "email": lead.email,
        "phone": lead.profile.get("phone"),
        "name": " ".join(filter(None, [lead.profile.get("first_name"), lead.profile.get("last_name")])),
        "title": lead.profile.get("title"),
        "company": lead.profile.get("company") or lead.domain,
        "fit_grade": lead.fit_grade,
        "engagement_score": round(engagement_at(lead, now, config), 1),
        "buying_stage": lead.buying_stage,
        "lifecycle": lead.lifecycle,
        "recently_consumed": [titles.get(c, c) for c in reversed(lead.consumed[-5:])],
    }


def alert_subject(what: str, summary: Mapping[str, Any]) -> str:
    """A sales alert's subject: what happened, to which lead — by id, company,
    fit and engagement, never the person's email, name or phone. Subjects
    travel where bodies do not (mail subject lines, chat previews, logs); the
    body (`lead_summary`) says who the person is."""
    parts = [f"lead {summary['lead_id']}"]
    if summary.get("company"):
        parts.append(str(summary["company"]))
    parts.append(f"fit {summary.get('fit_grade') or '-'}")
    parts.append(f"engagement {summary.get('engagement_score', 0):g}")
    return f"{what}: " + ", ".join(parts)
