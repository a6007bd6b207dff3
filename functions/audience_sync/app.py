"""Retargeting audience sync: timeline hand-offs (SQS, partial batch failures)
add leads to audiences; lead events (EventBridge) take them out; the daily
schedule reconciles every audience with its members' state."""

from __future__ import annotations

import json
from typing import Any

from nurture.core.observability import add_metric, get_logger, metered, sweep_run
from nurture.wiring import get_audience_syncer

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    syncer = get_audience_syncer()
    if event.get("reconcile") == "audiences":
        return _reconcile(syncer)
    if "detail-type" in event:
        removals = syncer.on_lead_event(event["detail-type"], event.get("detail") or {})
        add_metric("AudienceMembersRemoved", removals)
        return {"removals": removals}
    failed = []
    for record in event.get("Records", []):
        try:
            results = syncer.hand_off(json.loads(record["body"]))
        except Exception:
            logger.exception("audience hand-off %s failed; SQS will retry it", record.get("messageId"))
            failed.append({"itemIdentifier": record.get("messageId", "")})
            continue
        add_metric("AudienceMembersSynced", sum(r.added.accepted for r in results))
    return {"batchItemFailures": failed}


def _reconcile(syncer: Any) -> dict[str, Any]:
    with sweep_run("audience-reconciliation"):
        result = syncer.reconcile()
        add_metric("AudienceMembersSynced", result.total_added)
        add_metric("AudienceMembersRemoved", result.total_removed)
        summary = {"added": result.added, "removed": result.removed, "failed": result.failed}
        if result.failed:
            # Failing the invocation lets the schedule retry it and, past that, its DLQ record it.
            raise RuntimeError(f"audience reconciliation failed for {sorted(result.failed)}: {result.failed}")
    return summary
