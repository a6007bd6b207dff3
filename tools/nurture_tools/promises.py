"""The product's promises, checked against an export (leads, touches, events)
after the fact — written apart from the code that keeps them, so a bug there
shows up here:

- no piece of content is emailed twice to the same lead;
- nothing is emailed after a lead unsubscribed (marketing) or bounced or
  complained (anything);
- the marketing-email cap holds in every window, and no marketing email goes
  out in the lead's quiet hours or, if the policy says so, on its weekend
  (in the lead's own time zone);
- a lead held out of a track gets nothing from that track;
- no nurture email while sales owns the lead (hot or opportunity: handed off).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY = 86400.0
SENT = ("sent", "sending")  # "sending": claimed, and SES may have sent it
MARKETING = "marketing"
SALES_OWNED = ("hot", "opportunity")
MAX_EXAMPLES = 5


def _emails(touches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in touches if t.get("channel") == "email" and t.get("status") in SENT]


def _marketing(touch: dict[str, Any]) -> bool:
    return touch.get("klass", MARKETING) == MARKETING


def _result(promise: str, checked: int, violations: list[str]) -> dict[str, Any]:
    return {
        "promise": promise,
        "kept": not violations,
        "checked": checked,
        "violations": len(violations),
        "examples": violations[:MAX_EXAMPLES],
    }


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def no_content_twice(touches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A marketing email never carries content the lead was already emailed.
    (A transactional reply sends what the lead just asked for, even again.)"""
    sent: dict[str, set[str]] = defaultdict(set)
    emails = sorted((t for t in _emails(touches) if t.get("content_id")), key=lambda t: t["at"])
    violations = []
    for touch in emails:
        had = sent[touch["lead_id"]]
        if _marketing(touch) and touch["content_id"] in had:
            violations.append(
                f"{touch['lead_id']} got {touch['content_id']} again from {touch['track_id']}/{touch['step_id']} "
                f"at {_when(touch['at'])}"
            )
        had.add(touch["content_id"])
    return _result("no content emailed twice to a lead", len(emails), violations)


def nothing_after_suppression(leads: Sequence[dict[str, Any]], touches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    suppressed = {
        lead["lead_id"]: (lead["consent"], float(lead.get("consent_at") or 0))
        for lead in leads
        if lead.get("consent", "subscribed") != "subscribed"
    }
    violations, checked = [], 0
    for touch in _emails(touches):
        if touch["lead_id"] not in suppressed:
            continue
        checked += 1
        consent, since = suppressed[touch["lead_id"]]
        counts = _marketing(touch) or consent in ("bounced", "complained")
        if counts and touch["at"] > since:
            violations.append(
                f"{touch['lead_id']} {consent} at {_when(since)}, emailed {touch['step_id']} at {_when(touch['at'])}"
            )
    return _result("nothing emailed after unsubscribe, bounce or complaint", checked, violations)


def _zone(lead: dict[str, Any] | None, default: str) -> ZoneInfo:
    for name in ((lead or {}).get("timezone"), default):
        if name:
            try:
                return ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def caps_and_quiet_hours(
    leads: Sequence[dict[str, Any]], touches: Sequence[dict[str, Any]], policy: Any
) -> list[dict[str, Any]]:
    """Two results: the frequency cap, and quiet hours / business days."""
    by_id = {lead["lead_id"]: lead for lead in leads}
    marketing = sorted((t for t in _emails(touches) if _marketing(t)), key=lambda t: t["at"])
    per_lead: dict[str, list[float]] = defaultdict(list)
    for touch in marketing:
        per_lead[touch["lead_id"]].append(touch["at"])
    window = policy.per_days * DAY
    over = []
    for lead_id, times in sorted(per_lead.items()):
        for i, at in enumerate(times):
            inside = [t for t in times[: i + 1] if at - window < t]
            if len(inside) > policy.max_marketing_emails:
                over.append(f"{lead_id}: {len(inside)} marketing emails in {policy.per_days:g} days up to {_when(at)}")
                break
    quiet_from = policy.quiet_from[0] * 60 + policy.quiet_from[1]
    quiet_to = policy.quiet_to[0] * 60 + policy.quiet_to[1]
    outside = []
    for touch in marketing:
        local = datetime.fromtimestamp(touch["at"], _zone(by_id.get(touch["lead_id"]), policy.timezone))
        minutes = local.hour * 60 + local.minute
        quiet = (
            (minutes >= quiet_from or minutes < quiet_to) if quiet_from > quiet_to else quiet_from <= minutes < quiet_to
        )
        weekend = policy.business_days_only and local.weekday() >= 5
        if quiet or weekend:
            outside.append(f"{touch['lead_id']} {touch['step_id']} at {local:%a %H:%M} {local.tzinfo}")
    return [
        _result(
            f"at most {policy.max_marketing_emails} marketing emails per {policy.per_days:g} days",
            len(marketing),
            over,
        ),
        _result("no marketing email in the lead's quiet hours or weekend (its own time zone)", len(marketing), outside),
    ]


def holdout_untouched(leads: Sequence[dict[str, Any]], touches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    held = {
        e["enrollment_id"]: e["track_id"]
        for lead in leads
        for e in lead.get("enrollments", [])
        if e.get("status") == "holdout"
    }
    held_tracks = {
        (lead["lead_id"], e["track_id"])
        for lead in leads
        for e in lead.get("enrollments", [])
        if e.get("status") == "holdout"
    }
    violations = [
        f"{t['lead_id']} held out of {t['track_id']} but got {t['channel']} {t['step_id']}"
        for t in touches
        if t.get("enrollment_id") in held or (t["lead_id"], t.get("track_id")) in held_tracks
    ]
    return _result("held-out leads get nothing from the track they are held out of", len(held), violations)


def lifecycle_at(events: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, str]]]:
    history: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in events:
        if event["kind"] == "lifecycle":
            history[event["lead_id"]].append((event["at"], event["properties"].get("to")))
    for moves in history.values():
        moves.sort()
    return history


def no_nurture_after_handoff(
    touches: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]], grace_seconds: float = 60.0
) -> dict[str, Any]:
    """No marketing email decided while the lead was hot or an opportunity.

    A lifecycle move is dated when the track function started on its batch and
    committed a moment later; a timeline deciding in between still read the
    earlier stage. `grace_seconds` allows for that moment (under a second in
    real time; hours of simulated time when time runs accelerated)."""
    history = lifecycle_at(events)
    violations, checked = [], 0
    for touch in _emails(touches):
        if not _marketing(touch):
            continue
        checked += 1
        stage = None
        for at, to in history.get(touch["lead_id"], []):
            if at + grace_seconds < touch["at"]:
                stage = to
        if stage in SALES_OWNED:
            violations.append(
                f"{touch['lead_id']} was {stage} when {touch['track_id']}/{touch['step_id']} "
                f"went out at {_when(touch['at'])}"
            )
    promise = "no nurture email while sales owns the lead (hot or opportunity)"
    if grace_seconds > 3600:
        promise += f", allowing {grace_seconds / 3600:.0f} simulated hours for the pipeline to record the move"
    return _result(promise, checked, violations)


def check_promises(
    leads: Sequence[dict[str, Any]],
    touches: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    policy: Any,
    handoff_grace_seconds: float = 60.0,
) -> list[dict[str, Any]]:
    """Every promise, each with whether it was kept, how many touches (or
    enrollments) it looked at, and a few examples of any breach."""
    return [
        no_content_twice(touches),
        nothing_after_suppression(leads, touches),
        *caps_and_quiet_hours(leads, touches, policy),
        holdout_untouched(leads, touches),
        no_nurture_after_handoff(touches, events, handoff_grace_seconds),
    ]
