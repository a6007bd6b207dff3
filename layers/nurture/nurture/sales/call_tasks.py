"""Sales-call tasks from timeline steps: a task a rep can act on, with a reason
grounded in the lead's recent activity, delivered once per enrollment + step
(through the sales channel: the CRM webhook when configured, and SNS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.config.loader import Config
from nurture.core.delivery import deliver_once
from nurture.core.domain import Touch
from nurture.core.ports import AlertChannel
from nurture.leads.summary import alert_subject, lead_summary


class SalesTasks:
    def __init__(self, leads: Any, timelines: Any, channel: AlertChannel, config: Config) -> None:
        self.leads, self.timelines, self.channel, self.config = leads, timelines, channel, config

    def create(self, touch: Mapping[str, Any], now: float) -> bool:
        """Deliver the call task of a sales-call step; False if it was delivered
        before. Raises (for the queue's retry) if delivery fails, or while
        another invocation's claim on it holds (nurture.core.delivery)."""
        lead = self.leads.get_leads([touch["lead_id"]], consistent=True).get(touch["lead_id"])
        if lead is None:
            return False
        claim = Touch(
            lead.lead_id,
            touch["enrollment_id"],
            touch["track_id"],
            f"{touch['step_id']}.task",
            "sales_task",
            now,
            status="sending",
            subject=touch.get("note"),
            recipient=lead.email,
        )
        task = {
            "type": "call_task",
            "task_id": claim.touch_id,
            "reason": touch.get("note") or "Nurture call step",
            "track_id": touch["track_id"],
            "step_id": touch["step_id"],
            **lead_summary(lead, self.config, now),
        }
        subject = alert_subject("Call task", task)
        return deliver_once(self.timelines, claim, lambda: self.channel.alert(subject, task))
