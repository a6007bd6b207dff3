"""SQS ingest queue -> track use case, reporting partial batch failures."""

from __future__ import annotations

from typing import Any

from nurture.adapters.aws import decode_ingest_message
from nurture.core.clock import get_clock
from nurture.core.observability import add_metric, get_logger, metered
from nurture.wiring import get_tracker

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records, unreadable = [], []
    for record in event.get("Records", []):
        try:
            records.append((record["messageId"], decode_ingest_message(record["body"])))
        except (KeyError, ValueError, TypeError):
            logger.exception("unreadable ingest message %s", record.get("messageId"))
            unreadable.append(record.get("messageId", ""))
    result = get_tracker().process(records, get_clock().timestamp())
    add_metric("EventsIngested", result.applied)
    add_metric("DuplicateEvents", result.duplicates)
    failed = unreadable + result.failed_records
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
