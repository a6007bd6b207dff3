"""Retargeting audience sync: timeline hand-offs (SQS, partial batch failures)
add leads to audiences; lead events (EventBridge) take them out."""

from __future__ import annotations

import json
from typing import Any

from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_audience_syncer

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    syncer = get_audience_syncer()
    if "detail-type" in event:
        removals = syncer.on_lead_event(event["detail-type"], event.get("detail") or {})
        metrics.add_metric(name="AudienceMembersRemoved", unit="Count", value=removals)
        return {"removals": removals}
    failed = []
    for record in event.get("Records", []):
        try:
            results = syncer.hand_off(json.loads(record["body"]))
        except Exception:
            logger.exception("audience hand-off %s failed; SQS will retry it", record.get("messageId"))
            failed.append({"itemIdentifier": record.get("messageId", "")})
            continue
        metrics.add_metric(name="AudienceMembersSynced", unit="Count", value=sum(r.added.accepted for r in results))
    return {"batchItemFailures": failed}
