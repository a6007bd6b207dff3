"""Sales outcomes: what sales did with a lead, and the lifecycle move it makes.

An outcome arrives at POST /v1/leads/{lead}/outcome, is validated here and
queued as a tracking event (kind `outcome`), so the track consumer applies it
in the same conditional lead write as scoring: once per `outcome_id`, with its
lifecycle events in the lead's outbox.

  accepted             sales took the hand-off (lead.sales_accepted); the stage stays
  rejected + reason    -> recycled, engagement reset or reduced per reason, a cool-down,
                          then lead.recycled re-enrolls it in a recycle track
  opportunity_created  -> opportunity (lead.opportunity_created)
  won + revenue        -> customer (lead.won, lead.became_customer: onboarding)
  lost + reason        -> lost (lead.lost); reactivation is due N days later
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nurture.config.loader import Config
from nurture.core.domain import Lead, TrackingEvent
from nurture.core.errors import ValidationError
from nurture.core.payloads import parse_json_object
from nurture.core.ports import IngestQueue, LeadStore
from nurture.scoring.scores import engagement_at
from nurture.store.lookup import find_lead

OUTCOME_KIND = "outcome"
OUTCOME_EVENT = "sales_outcome"
OUTCOMES = ("accepted", "rejected", "opportunity_created", "won", "lost")
_OUTCOME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
DAY = 86400.0


def outcome_event(lead_id: str, body: Any, config: Config, now: float) -> TrackingEvent:
    """Validate an outcome request body; the tracking event that carries it.

    The message id is derived from the client's `outcome_id`, so a retried
    request is applied once."""
    if not isinstance(body, Mapping):
        raise ValidationError("send a JSON object", field="body")
    outcome_id = body.get("outcome_id")
    if not isinstance(outcome_id, str) or not _OUTCOME_ID.match(outcome_id):
        raise ValidationError(
            "outcome_id is required: up to 100 letters, digits, '_', '.', ':' or '-' (your idempotency key)",
            field="outcome_id",
        )
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        raise ValidationError(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    sales = config.sales
    properties: dict[str, Any] = {"lead_id": lead_id, "outcome": outcome, "outcome_id": outcome_id}
    reason = body.get("reason")
    if outcome == "rejected":
        if reason not in sales.rejection_reasons:
            raise ValidationError(
                f"a rejection needs a reason, one of {', '.join(sales.rejection_reasons)}", field="reason"
            )
        properties["reason"] = reason
    elif outcome == "lost":
        if reason not in sales.lost_reasons:
            raise ValidationError(f"a lost outcome needs a reason, one of {', '.join(sales.lost_reasons)}", "reason")
        properties["reason"] = reason
    elif reason is not None:
        if not isinstance(reason, str) or len(reason) > 200:
            raise ValidationError("reason must be a string of at most 200 characters", field="reason")
        properties["reason"] = reason
    if outcome == "won":
        revenue = body.get("revenue")
        if isinstance(revenue, bool) or not isinstance(revenue, int | float) or not math.isfinite(revenue):
            raise ValidationError("a won outcome needs revenue, a number", field="revenue")
        if revenue < 0:
            raise ValidationError("revenue cannot be negative", field="revenue")
        currency = body.get("currency")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValidationError("a won outcome needs currency, an ISO 4217 code such as USD", field="currency")
        properties["revenue"], properties["currency"] = revenue, currency
    note = body.get("note")
    if note is not None:
        if not isinstance(note, str) or len(note) > 500:
            raise ValidationError("note must be a string of at most 500 characters", field="note")
        properties["note"] = note
    rep = body.get("rep")
    if rep is not None:
        if not isinstance(rep, str) or len(rep) > 200:
            raise ValidationError("rep must be a string of at most 200 characters", field="rep")
        properties["rep"] = rep
    return TrackingEvent(
        message_id=outcome_message_id(outcome_id),
        kind=OUTCOME_KIND,
        name=OUTCOME_EVENT,
        timestamp=now,
        received_at=now,
        source="sales",
        properties=json.loads(json.dumps(properties)),
    )


def outcome_message_id(outcome_id: str) -> str:
    return "outcome-" + hashlib.blake2b(outcome_id.encode(), digest_size=12).hexdigest()


@dataclass
class OutcomeEffect:
    """What applying an outcome did: the lifecycle move (if any), why, and the
    sales events to publish beside lead.stage_changed."""

    before: str
    after: str
    reason: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def apply_outcome(lead: Lead, event: TrackingEvent, config: Config) -> OutcomeEffect:
    """Apply a sales outcome to the lead (in place). Time is the event's time."""
    sales = config.sales
    properties = event.properties
    outcome, reason = properties["outcome"], properties.get("reason")
    at = event.timestamp
    iso = datetime.fromtimestamp(at, UTC).isoformat()
    common = {"outcome_id": properties["outcome_id"], "rep": properties.get("rep"), "note": properties.get("note")}
    before = lead.lifecycle
    after = before
    events: list[tuple[str, dict[str, Any]]] = []
    if outcome == "accepted":
        lead.sales["accepted_at"] = at
        events.append(("lead.sales_accepted", {**common, "accepted_at": iso}))
        why = "accepted by sales"
    elif outcome == "rejected":
        rule = sales.rejection_reasons[reason]
        score = engagement_at(lead, at, config)
        lead.engagement, lead.engagement_at = round(score * rule.engagement_factor, 4), at
        recycle_at = at + sales.recycle_cooldown_days * DAY
        lead.sales.update(rejected_at=at, rejection_reason=reason, recycle_at=recycle_at)
        after = "recycled"
        why = f"rejected by sales: {reason}"
    elif outcome == "opportunity_created":
        lead.sales["opportunity_at"] = at
        after = "opportunity"
        events.append(("lead.opportunity_created", {**common, "opportunity_at": iso}))
        why = "opportunity created"
    elif outcome == "won":
        lead.sales.update(won_at=at, revenue=properties["revenue"], currency=properties["currency"])
        after = "customer"
        money = {"revenue": properties["revenue"], "currency": properties["currency"]}
        events.append(("lead.won", {**common, **money, "won_at": iso}))
        events.append(("lead.became_customer", {**common, **money}))
        why = "won"
    else:  # lost
        lead.lost_at = at
        lead.sales["lost_reason"] = reason
        after = "lost"
        reactivate_at = at + sales.lost_reactivate_after_days * DAY
        events.append(
            (
                "lead.lost",
                {
                    **common,
                    "reason": reason,
                    "lost_at": iso,
                    "reactivate_after": datetime.fromtimestamp(reactivate_at, UTC).isoformat(),
                },
            )
        )
        why = f"lost: {reason}"
    return OutcomeEffect(before, after, why, events)


class OutcomeRecorder:
    """POST /v1/leads/{lead}/outcome: validate a sales outcome and queue it for
    the track consumer; answers once it is on the ingest queue (202)."""

    def __init__(self, store: LeadStore, queue: IngestQueue, config: Config) -> None:
        self.store = store
        self.queue = queue
        self.config = config

    def record(self, reference: str, raw_body: bytes, now: float) -> dict[str, Any]:
        body = parse_json_object(raw_body)
        lead = find_lead(self.store, reference)
        event = outcome_event(lead.lead_id, body, self.config, now)
        self.queue.enqueue([event])
        return {
            "success": True,
            "lead_id": lead.lead_id,
            "outcome_id": event.properties["outcome_id"],
            "outcome": event.properties["outcome"],
            "message_id": event.message_id,
        }
