"""Timely responses to forms: a transactional acknowledgement within seconds
(with the asset the lead asked for), and an immediate sales alert for demo
requests. Each is claimed as a touch keyed by the submission, so a repeated
event never answers twice."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from nurture.config.loader import Config
from nurture.core.delivery import deliver_once
from nurture.core.domain import Touch
from nurture.core.ports import AlertChannel
from nurture.leads.summary import alert_subject, lead_summary
from nurture.scoring.scores import fit_reasons

RESPONSES_TRACK = "responses"
TRANSACTIONAL = "transactional"


def sns_subject(text: str) -> str:
    """`text` as SNS accepts a subject: ASCII (accents dropped), no line breaks
    or control characters, fewer than 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    printable = " ".join("".join(c if c.isprintable() else " " for c in ascii_text).split())
    return printable[:99] or "Nurture sales alert"


class SnsSalesAlerts:
    """Sales alerts on an SNS topic (email, chat or CRM subscribers). The
    subject is made safe for SNS (`sns_subject`); callers keep personal data
    out of it (`leads.summary.alert_subject`)."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client, self._topic = client, topic_arn

    def alert(self, subject: str, payload: Mapping[str, Any]) -> str:
        response = self._client.publish(
            TopicArn=self._topic, Subject=sns_subject(subject), Message=json.dumps(payload, default=str)
        )
        return response["MessageId"]


class Responder:
    def __init__(self, leads: Any, timelines: Any, sender: Any, alerts: AlertChannel, config: Config) -> None:
        self.leads, self.timelines, self.sender, self.alerts, self.config = leads, timelines, sender, alerts, config

    def on_form(self, detail: Mapping[str, Any], now: float) -> dict[str, Any]:
        form = self.config.forms.get(str(detail.get("form_source")))
        lead = self.leads.get_leads([detail["lead_id"]], consistent=True).get(detail["lead_id"])
        if form is None or lead is None:
            return {"acknowledged": False, "alerted": False, "reason": "unknown form or lead"}
        submission = f"form-{detail['message_id']}"[:80]
        result: dict[str, Any] = {"acknowledged": False, "alerted": False}
        if form.acknowledge_content:
            sendable = {tag.id for tag in self.config.content if tag.sendable}
            asked_for = detail.get("asset_id")
            content_id = asked_for if asked_for in sendable else form.acknowledge_content
            sent = self.sender.send(
                {
                    "lead_id": lead.lead_id,
                    "enrollment_id": submission,
                    "track_id": RESPONSES_TRACK,
                    "step_id": "acknowledgement",
                    "content_id": content_id,
                    "subject": form.acknowledge_subject,
                    "klass": TRANSACTIONAL,
                    "decided_at": now,
                },
                now,
            )
            result["acknowledged"] = sent.get("sent", False)
        if form.alert_sales:
            touch = Touch(
                lead.lead_id,
                submission,
                RESPONSES_TRACK,
                "sales-alert",
                "sales_alert",
                now,
                klass=TRANSACTIONAL,
                status="sending",
                subject=f"Sales alert: {form.name}",
                recipient=lead.email,
            )
            payload = {
                "type": "demo_request" if form.form_id == "demo-request" else "form",
                "form": form.name,
                "fit_reasons": [rule for rule, _ in fit_reasons(lead, self.config)],
                **lead_summary(lead, self.config, now),
            }
            what = "Demo request" if form.form_id == "demo-request" else f"Form {form.name}"
            subject = alert_subject(what, payload)
            result["alerted"] = deliver_once(self.timelines, touch, lambda: self.alerts.alert(subject, payload))
        return result
