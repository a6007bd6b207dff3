"""Sales hand-off: a hot lead leaves nurture and reaches sales with the context
a rep can act on; an SLA timer escalates when sales does not answer in time;
a lead sales rejected rests for a cool-down, then re-enters a recycle track.

Guarantees:
- One hand-off per lead.became_hot event (by event_id), whatever the
  redeliveries: a touch item is claimed under a lease before anything is
  delivered (nurture.core.delivery), released again if delivery fails so the
  event's retry (then its DLQ) has it, and taken over by that retry if the
  invocation died mid-way.
- The event announcing a delivery (lead.handed_off, lead.handoff_escalated)
  is published after it and recorded on the touch; if publishing fails the
  invocation fails, and its retry — finding the touch delivered but not
  published — publishes it, until it succeeds or the event parks in the DLQ.
- Sales alerts name the lead by id, company, fit and engagement in their
  subject, never by email; the body carries who the person is.
- Timers are EventBridge Scheduler one-time schedules named after the lead and
  the event that set them, so a retry cannot set a second one; each deletes
  itself after it fires.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nurture.config.loader import Config
from nurture.core.delivery import deliver_once
from nurture.core.domain import Lead, Touch, lead_event
from nurture.core.ports import AlertChannel, LeadEventPublisher, TimelineStopper, Timers
from nurture.leads.summary import alert_subject, lead_summary
from nurture.leads.view import describe_lead

logger = logging.getLogger(__name__)

SALES_TRACK = "sales"
TRANSACTIONAL = "transactional"
HOUR = 3600.0
SALES_OUTCOME_FIELDS = ("accepted_at", "rejected_at", "opportunity_at", "won_at")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _tag(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


class SchedulerTimers:
    """Timers as EventBridge Scheduler one-time schedules (`at(...)`, UTC) that
    invoke the sales-timer function with the payload, retry, dead-letter to a
    queue, and delete themselves after firing."""

    def __init__(self, client: Any, target_arn: str, role_arn: str, dead_letter_arn: str, prefix: str) -> None:
        self._client = client
        self._target = target_arn
        self._role = role_arn
        self._dead_letter = dead_letter_arn
        self._prefix = prefix

    def set(self, name: str, at: float, payload: Mapping[str, Any]) -> bool:
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self._client.create_schedule(
                Name=f"{self._prefix}-{name}"[:64],
                GroupName="default",
                ScheduleExpression=f"at({when})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": self._target,
                    "RoleArn": self._role,
                    "Input": json.dumps(payload, separators=(",", ":")),
                    "DeadLetterConfig": {"Arn": self._dead_letter},
                    "RetryPolicy": {"MaximumRetryAttempts": 20, "MaximumEventAgeInSeconds": 86400},
                },
            )
        except self._client.exceptions.ConflictException:
            return False
        return True


def handoff_payload(store: Any, config: Config, lead: Lead, handoff_id: str, now: float) -> dict[str, Any]:
    """What a rep needs to act: who, how well they fit and why, how engaged and
    why, where in the buying journey, what they did and read lately, and who
    else at the account is engaged."""
    sales = config.sales
    view = describe_lead(store, config, lead.lead_id, now)
    titles = {tag.id: tag.title for tag in config.content}
    meaningful = [event for event in view["recent_events"] if event["points"] or event["type"] == "outcome"]
    account = view["account"]
    if account is not None:
        account = {
            **account,
            "buying_committee": [c for c in account["buying_committee"] if c["lead_id"] != lead.lead_id],
        }
    return {
        "type": "handoff",
        "delivery_id": handoff_id,
        "handoff_id": handoff_id,
        "handed_off_at": _iso(now),
        "accept_by": _iso(now + sales.sla_hours * HOUR),
        **lead_summary(lead, config, now),
        "fit": {"grade": view["fit"]["grade"], "score": view["fit"]["score"], "reasons": view["fit"]["reasons"]},
        "engagement": {
            "score": view["engagement"]["score"],
            "top_reasons": [row for row in view["engagement"]["explanation"] if row["points_now"] > 0][
                : sales.top_reasons
            ],
        },
        "buying_stage": view["buying_stage"]["stage"],
        "persona": view["fit"]["persona"],
        "recent_activities": [
            {"name": event["name"], "at": event["at"], "points": event["points"], "properties": event["properties"]}
            for event in meaningful[: sales.recent_activities]
        ],
        "content_consumed": [{"id": c, "title": titles.get(c, c)} for c in reversed(lead.consumed)],
        "account": account,
        "outcome_path": f"/v1/leads/{lead.lead_id}/outcome",
    }


class SalesHandOff:
    """Reacts to lead events on the bus: hands hot leads to sales, sets the
    recycle cool-down timer (needs `stopper` and `timers`); and to its timers:
    SLA escalation, recycle re-entry (needs neither)."""

    def __init__(
        self,
        store: Any,
        timelines: Any,
        stopper: TimelineStopper | None,
        channel: AlertChannel,
        timers: Timers | None,
        publisher: LeadEventPublisher,
        config: Config,
    ) -> None:
        self.store = store
        self.timelines = timelines
        self.stopper = stopper
        self.channel = channel
        self.timers = timers
        self.publisher = publisher
        self.config = config

    def _lead(self, lead_id: str) -> Lead | None:
        lead = self.store.get_leads([lead_id], consistent=True).get(lead_id)
        return None if lead is None or lead.merged_into else lead

    def on_event(self, detail_type: str, detail: Mapping[str, Any], now: float) -> dict[str, Any]:
        if detail_type == "lead.became_hot":
            return self.hand_off(detail, now)
        if detail_type == "lead.stage_changed" and detail.get("to_stage") == "recycled":
            return self.start_cooldown(detail, now)
        return {"outcome": "ignored", "detail": f"{detail_type} needs nothing from sales"}

    def hand_off(self, detail: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Stop nurture, deliver the hand-off (CRM + SNS), set the SLA timer,
        publish lead.handed_off. Idempotent per event_id."""
        lead = self._lead(str(detail.get("lead_id")))
        if lead is None:
            return {"outcome": "ignored", "detail": "no such lead"}
        if lead.lifecycle != "hot":
            return {"outcome": "ignored", "detail": f"lead is {lead.lifecycle} now, no longer hot"}
        assert self.stopper is not None and self.timers is not None, "hand-offs need a stopper and timers"
        stopped = self.stopper.stop_all(lead.lead_id, "handed off to sales", now)
        handoff_id = f"handoff-{_tag(str(detail.get('event_id')))}"
        claim = Touch(
            lead.lead_id,
            handoff_id,
            SALES_TRACK,
            "handoff",
            "sales_handoff",
            now,
            klass=TRANSACTIONAL,
            status="sending",
            recipient=lead.email,
        )
        payload = handoff_payload(self.store, self.config, lead, handoff_id, now)
        claim.subject = f"Hand-off, accept by {payload['accept_by']}"

        def deliver() -> str:
            self.timers.set(
                f"sla-{lead.lead_id}-{handoff_id[-10:]}",
                now + self.config.sales.sla_hours * HOUR,
                {"timer": "handoff_sla", "lead_id": lead.lead_id, "handoff_id": handoff_id, "handed_off_at": now},
            )
            return self.channel.alert(alert_subject("Hot lead for sales", payload), payload)

        def publish(delivered: Touch) -> None:
            # As delivered: a retry publishing it later dates it by the touch.
            self._publish(
                "lead.handed_off",
                f"{lead.lead_id}-{handoff_id}",
                lead,
                delivered.at,
                handoff_id=handoff_id,
                accept_by=_iso(delivered.at + self.config.sales.sla_hours * HOUR),
                fit_grade=lead.fit_grade,
                engagement_score=payload["engagement"]["score"],
                buying_stage=lead.buying_stage,
            )

        if not deliver_once(self.timelines, claim, deliver, publish):
            return {"outcome": "duplicate", "detail": f"{handoff_id} was delivered before"}
        return {"outcome": "handed_off", "detail": handoff_id, "timelines_stopped": len(stopped)}

    def start_cooldown(self, detail: Mapping[str, Any], now: float) -> dict[str, Any]:
        """A lead sales rejected rests until its cool-down ends, then lead.recycled."""
        lead = self._lead(str(detail.get("lead_id")))
        if lead is None or lead.lifecycle != "recycled" or "recycle_at" not in lead.sales:
            return {"outcome": "ignored", "detail": "lead is not recycled"}
        rejected_at = float(lead.sales["rejected_at"])
        if lead.sales["recycle_at"] <= now:
            return self.end_cooldown({"lead_id": lead.lead_id, "rejected_at": rejected_at}, now)
        assert self.timers is not None, "cool-downs need timers"
        name = f"recycle-{lead.lead_id}-{_tag(str(rejected_at))}"
        payload = {"timer": "recycle_cooldown", "lead_id": lead.lead_id, "rejected_at": rejected_at}
        created = self.timers.set(name, float(lead.sales["recycle_at"]), payload)
        return {"outcome": "cooldown_set" if created else "duplicate", "detail": _iso(lead.sales["recycle_at"])}

    def on_timer(self, timer: Mapping[str, Any], now: float) -> dict[str, Any]:
        if timer.get("timer") == "handoff_sla":
            return self.check_sla(timer, now)
        if timer.get("timer") == "recycle_cooldown":
            return self.end_cooldown(timer, now)
        return {"outcome": "ignored", "detail": f"unknown timer {timer.get('timer')!r}"}

    def check_sla(self, timer: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Escalate a hand-off sales has not answered (accepted, rejected, or
        moved on) since it was made: lead.handoff_escalated, and sales is told again."""
        lead = self._lead(str(timer.get("lead_id")))
        if lead is None:
            return {"outcome": "ignored", "detail": "no such lead"}
        handed_off_at = float(timer["handed_off_at"])
        answered = [lead.sales[k] for k in SALES_OUTCOME_FIELDS if lead.sales.get(k, 0) >= handed_off_at]
        if answered or (lead.lost_at and lead.lost_at >= handed_off_at):
            return {"outcome": "answered", "detail": "sales answered the hand-off in time"}
        handoff_id = str(timer["handoff_id"])
        claim = Touch(
            lead.lead_id,
            handoff_id,
            SALES_TRACK,
            "escalation",
            "sales_escalation",
            now,
            klass=TRANSACTIONAL,
            status="sending",
            recipient=lead.email,
        )
        hours = round((now - handed_off_at) / HOUR, 1)
        payload = {
            "type": "handoff_escalation",
            "delivery_id": f"{handoff_id}-escalation",
            "handoff_id": handoff_id,
            "handed_off_at": _iso(handed_off_at),
            "hours_waiting": hours,
            "sla_hours": self.config.sales.sla_hours,
            **lead_summary(lead, self.config, now),
        }
        subject = alert_subject(f"Hand-off not accepted after {hours} h", payload)

        def publish(delivered: Touch) -> None:
            self._publish(
                "lead.handoff_escalated",
                f"{lead.lead_id}-{handoff_id}-escalated",
                lead,
                delivered.at,
                handoff_id=handoff_id,
                handed_off_at=_iso(handed_off_at),
                hours_waiting=round((delivered.at - handed_off_at) / HOUR, 1),
                sla_hours=self.config.sales.sla_hours,
            )

        if not deliver_once(self.timelines, claim, lambda: self.channel.alert(subject, payload), publish):
            return {"outcome": "duplicate", "detail": f"{handoff_id} was escalated before"}
        return {"outcome": "escalated", "detail": handoff_id}

    def end_cooldown(self, timer: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Publish lead.recycled (the recycle track enrolls on it) if the lead is
        still resting from the same rejection."""
        lead = self._lead(str(timer.get("lead_id")))
        rejected_at = float(timer["rejected_at"])
        if lead is None or lead.lifecycle != "recycled" or lead.sales.get("rejected_at") != rejected_at:
            return {"outcome": "ignored", "detail": "lead moved on since the rejection"}
        self._publish(
            "lead.recycled",
            f"{lead.lead_id}-recycled-{int(rejected_at)}",
            lead,
            now,
            reason=lead.sales.get("rejection_reason"),
            rejected_at=_iso(rejected_at),
        )
        return {"outcome": "recycled", "detail": lead.lead_id}

    def _publish(self, detail_type: str, event_id: str, lead: Lead, now: float, **extra: Any) -> None:
        self.publisher.publish(
            [
                lead_event(
                    detail_type, event_id, lead.lead_id, now, email=lead.email, account_domain=lead.domain, **extra
                )
            ]
        )
