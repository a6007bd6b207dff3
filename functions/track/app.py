"""SQS ingest queue -> track use case, reporting partial batch failures."""

from __future__ import annotations

from typing import Any

from nurture.adapters import decode_ingest_message
from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_tracker

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records, unreadable = [], []
    for record in event.get("Records", []):
        try:
            records.append((record["messageId"], decode_ingest_message(record["body"])))
        except (KeyError, ValueError, TypeError):
            logger.exception("unreadable ingest message %s", record.get("messageId"))
            unreadable.append(record.get("messageId", ""))
    result = get_tracker().process(records, get_clock().timestamp())
    metrics.add_metric(name="EventsIngested", unit="Count", value=result.applied)
    metrics.add_metric(name="DuplicateEvents", unit="Count", value=result.duplicates)
    for detail_type, count in result.published.items():
        metrics.add_metric(name=_metric_name(detail_type), unit="Count", value=count)
    failed = unreadable + result.failed_records
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _metric_name(detail_type: str) -> str:
    # lead.became_hot -> LeadsBecameHot
    return "Leads" + "".join(part.capitalize() for part in detail_type.split(".", 1)[1].split("_"))
