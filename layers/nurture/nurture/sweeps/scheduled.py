"""Scheduled sweeps: waking the dead, score-decay demotion, graymail sunset.

No sweep scans the table. Every lead write computes, from the lead alone, the
moment it next falls due for a sweep (`due_at`): a lost opportunity N days
after it was lost, a hot or warm lead N days after its last activity, a warm
or hot lead when its decaying engagement crosses the demotion line (closed
form from the half-life). The store keeps that moment in a sparse index
(gsi2) that only due-able leads carry, so a sweep reads the leads that are
due and nothing else.

Guarantees of `Sweeper.run`:
- Reads track the number of due leads: one index query page per page of due
  leads, then one BatchGetItem for them.
- Each lead is written once per sweep, conditionally on its version, with its
  bus events in the lead's outbox (published after the write, then cleared),
  and the write moves the lead's index entry past now: a second run the same
  day finds nobody (and the Enroller's re-entry rules hold anyway).
- At most `daily_budget` leads are processed per UTC day across runs; the
  rest stay due and are taken, oldest first, the next day.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nurture.config.sweeps import SweepPolicy
from nurture.core.domain import Lead, StoredEvent, lead_event
from nurture.core.errors import ConcurrentUpdateError
from nurture.core.ports import DueLeadStore, LeadEventPublisher
from nurture.scoring.scores import engagement_at, lead_context, next_lifecycle
from nurture.store.repository import due_bound

logger = logging.getLogger(__name__)

DAY = 86400.0
_RANK = {"warm": 1, "hot": 2}
SUBSCRIBED = "subscribed"
# Why a lead is woken (the `reason` of lead.dormant).
LOST_AGED, HOT_SILENT, WARM_DORMANT, GRAYMAIL = "lost_aged", "hot_silent", "warm_dormant", "graymail"


# --- when a lead falls due ------------------------------------------------------


def sunset_in_force(lead: Lead) -> bool:
    """Sunset holds until the lead next opens or clicks a marketing email."""
    return bool(lead.sunset) and lead.email_engaged_at <= float(lead.sunset.get("at", 0.0))


def _wake_rule(lead: Lead, policy: SweepPolicy) -> tuple[str, float, float] | None:
    """(reason, anchor, days): the lead is woken `days` after `anchor`."""
    if lead.lifecycle == "lost":
        return LOST_AGED, lead.lost_at or lead.lifecycle_at, policy.lost_after_days
    # Silence counts from the last thing the lead did (a sweep's demotion is not activity).
    last_activity = lead.last_seen_at or lead.lifecycle_at
    if lead.lifecycle == "hot":
        accepted_at = lead.sales.get("accepted_at")
        if accepted_at is not None and float(accepted_at) >= lead.lifecycle_at:
            return None  # sales took this hand-off: the lead is theirs, not nurture's, until an outcome
        return HOT_SILENT, last_activity, policy.hot_silent_days
    # A warm lead, or one that was (decay demotes a silent MQL long before it
    # has been dormant for weeks): woken N days after its last activity.
    if lead.lifecycle == "warm" or (lead.lifecycle == "lead" and lead.demoted_from in _RANK):
        return WARM_DORMANT, last_activity, policy.warm_dormant_days
    return None


def wake_due(lead: Lead, policy: SweepPolicy) -> tuple[str, float] | None:
    """Why and when the sweep wakes this lead; a lead woken since its last
    activity is woken again only `rewake_after_days` after that."""
    rule = _wake_rule(lead, policy)
    if rule is None:
        return None
    reason, anchor, days = rule
    if lead.woken_at >= anchor:
        return reason, lead.woken_at + policy.rewake_after_days * DAY
    return reason, anchor + days * DAY


def demotion_line(lead: Lead, config: Any) -> float | None:
    """The engagement below which the lead leaves its stage (with hysteresis)."""
    thresholds = config.lifecycle.hot if lead.lifecycle == "hot" else config.lifecycle.warm
    minimum = thresholds.get(lead.fit_grade) if lead.lifecycle in ("warm", "hot") else None
    return None if minimum is None else minimum * config.lifecycle.demote_ratio


def demotion_due(lead: Lead, config: Any) -> float | None:
    """When the decaying engagement crosses the demotion line, in closed form:
    e * 2^(-(t - t0) / h) = line  <=>  t = t0 + h * log2(e / line)."""
    line = demotion_line(lead, config)
    if line is None or not lead.email:
        return None
    if lead.engagement <= line:
        return lead.engagement_at
    return lead.engagement_at + config.half_life_seconds * math.log2(lead.engagement / line)


def due_at(lead: Lead, config: Any) -> float | None:
    """The next moment a sweep has work for this lead; None keeps it out of the
    index. (The store also indexes, at once, a lead with unpublished events.)"""
    if lead.merged_into or not lead.email or lead.consent != SUBSCRIBED:
        return None
    moments = [demotion_due(lead, config)]
    if not (sunset_in_force(lead) and lead.sunset.get("action") == "suppress"):
        wake = wake_due(lead, config.sweeps)
        moments.append(wake[1] if wake else None)
    found = [moment for moment in moments if moment is not None]
    return min(found) if found else None


def sweep_firings(schedule: str | None) -> tuple[int, int] | None:
    """(period, offset) in seconds of a sweep schedule that fires at fixed
    minutes past the hour or of the day — `cron(M H * * ? *)` daily,
    `cron(M * * * ? *)` hourly; None for any other expression."""
    match = re.fullmatch(r"\s*cron\(\s*(\d{1,2})\s+(\d{1,2}|\*)\s+\*\s+\*\s+\?\s+\*\s*\)\s*", schedule or "")
    if match is None:
        return None
    minute, hour = int(match[1]), match[2]
    if minute > 59 or (hour != "*" and int(hour) > 23):
        return None
    if hour == "*":
        return 3600, minute * 60
    return 86400, int(hour) * 3600 + minute * 60


def next_firing(moment: float, firings: tuple[int, int]) -> int:
    """The first firing of the schedule at or after `moment`."""
    period, offset = firings
    return offset + math.ceil((moment - offset) / period) * period


def due_index_function(config: Any, schedule: str | None = None) -> Callable[[Lead], float | None]:
    """The due index's key of a lead. With the sweeps' schedule known, the key
    is the sweep that first sees the lead due, not the exact moment: a sweep
    takes the leads keyed at or before its start, so it takes exactly the same
    leads, while the key of a warm or hot lead (whose demotion moment moves
    with each event) changes once a day rather than on every event — each
    change is an index write. A sweep run off its schedule, earlier than the
    next firing, leaves a lead due since the last firing for that firing."""
    firings = sweep_firings(schedule)
    if firings is None:
        return lambda lead: due_at(lead, config)

    def rounded(lead: Lead) -> float | None:
        moment = due_at(lead, config)
        return None if moment is None else next_firing(moment, firings)

    return rounded


# --- the sweep ------------------------------------------------------------------


@dataclass
class SweepResult:
    examined: int = 0
    demoted: int = 0
    woken: dict[str, int] = field(default_factory=dict)  # reason -> leads
    published: int = 0
    republished: int = 0  # outboxes of earlier writes published now
    skipped_concurrent: int = 0
    budget_exhausted: bool = False
    pages: int = 0
    read_capacity_units: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Sweeper:
    """Processes the leads that are due: publishes pending outboxes, demotes
    leads whose engagement decayed below their stage, and wakes lost, silent
    hot and dormant warm leads with lead.dormant (the reactivation track's trigger)."""

    def __init__(
        self, store: DueLeadStore, publisher: LeadEventPublisher, config: Any, retention_seconds: float = 395 * DAY
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.config = config
        self.retention_seconds = retention_seconds

    @property
    def policy(self) -> SweepPolicy:
        return self.config.sweeps

    def run(self, now: float, time_left: Callable[[], float] | None = None) -> SweepResult:
        result = SweepResult()
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        start_capacity = self.store.read_capacity()
        cursor: Any = None
        while time_left is None or time_left() > 10.0:
            granted = self.store.spend_budget(day, self.policy.page_size, self.policy.daily_budget)
            if granted == 0:
                result.budget_exhausted = True
                break
            leads, cursor = self.store.due_leads(now, granted, cursor)
            result.pages += 1
            for lead, stored_key in leads:
                self._sweep_lead(lead, stored_key, now, result)
            if len(leads) < granted:
                self.store.spend_budget(day, len(leads) - granted, self.policy.daily_budget)  # give back
            if cursor is None:
                break
        result.read_capacity_units = self.store.read_capacity() - start_capacity
        return result

    def _sweep_lead(self, lead: Lead, stored_key: str | None, now: float, result: SweepResult) -> None:
        result.examined += 1
        if lead.outbox:  # an earlier write's events never went out
            self._publish(lead, result, republish=True)
            return
        expected = lead.version
        before = lead.lifecycle
        demoted = self._demote(lead, now)
        reason = self._wake(lead, now)
        if not (demoted or reason) and (stored_key is None or stored_key > due_bound(now)):
            return  # the index lagged a write that already moved the lead on: nothing to do
        if demoted:
            result.demoted += 1
        if reason:
            result.woken[reason] = result.woken.get(reason, 0) + 1
        try:
            # Also when nothing was due (the configuration changed since the
            # lead was indexed): the write re-indexes it at its true moment.
            self.store.save_lead(lead, expected)
        except ConcurrentUpdateError:
            # Written meanwhile: that write re-indexed it; still due, a later run takes it.
            result.skipped_concurrent += 1
            if demoted:
                result.demoted -= 1
            if reason:
                result.woken[reason] -= 1
            return
        if demoted:
            # The move in the lead's lifecycle history, as the track consumer records its moves.
            move = (before, lead.lifecycle, lead.outbox[0]["detail"]["reason"])
            expires_at = int(now + self.retention_seconds)
            self.store.write_records(
                [StoredEvent.stage_move(lead.lead_id, f"{lead.version:06d}", now, "nurture", move, expires_at)], {}
            )
        if lead.outbox:
            self._publish(lead, result)

    def _demote(self, lead: Lead, now: float) -> bool:
        before = lead.lifecycle
        after = next_lifecycle(lead, now, self.config)
        if before not in _RANK or _RANK.get(after, 0) >= _RANK[before]:
            return False  # promotions happen when events arrive, never in a sweep
        score = round(engagement_at(lead, now, self.config), 2)
        reason = f"engagement decayed to {score} with fit grade {lead.fit_grade}"
        lead.lifecycle, lead.lifecycle_at, lead.demoted_from = after, now, before
        for n, detail_type in enumerate(("lead.demoted", "lead.stage_changed")):
            self._emit(
                lead,
                detail_type,
                now,
                n,
                from_stage=before,
                to_stage=after,
                **lead_context(lead, score),
                reason=reason,
            )
        return True

    def _wake(self, lead: Lead, now: float) -> str | None:
        if lead.consent != SUBSCRIBED or (sunset_in_force(lead) and lead.sunset.get("action") == "suppress"):
            return None  # (read fresh: the index may lag an unsubscribe)
        due = wake_due(lead, self.policy)
        if due is None or due[1] > now:
            return None
        reason = due[0]
        lead.woken_at = now
        self._emit(
            lead,
            "lead.dormant",
            now,
            9,
            reason=reason,
            lifecycle=lead.lifecycle,
            fit_grade=lead.fit_grade,
            last_activity_at=_iso(lead.last_seen_at) if lead.last_seen_at else None,
        )
        return reason

    @staticmethod
    def _emit(lead: Lead, detail_type: str, now: float, n: int, **detail: Any) -> None:
        event_id = f"{lead.lead_id}-{lead.version + 1}-sweep-{n}"
        lead.outbox.append(lead_event(detail_type, event_id, lead.lead_id, now, **{"email": lead.email, **detail}))

    def _publish(self, lead: Lead, result: SweepResult, republish: bool = False) -> None:
        try:
            self.publisher.publish(lead.outbox)
        except Exception:
            # The outbox keeps the lead due: the next sweep (or the lead's next event) publishes it.
            logger.exception("events of lead %s not published; retried later", lead.lead_id)
            return
        if republish:
            result.republished += len(lead.outbox)
        else:
            result.published += len(lead.outbox)
        self.store.clear_outbox(lead)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
