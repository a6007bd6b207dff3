"""Sales-call steps (SQS, partial batch failures) -> call tasks for sales."""

from __future__ import annotations

import json
from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import add_metric, get_logger, metered
from nurture.wiring import get_sales_tasks

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failed, created = [], 0
    for record in event.get("Records", []):
        try:
            created += get_sales_tasks().create(json.loads(record["body"]), get_clock().timestamp())
        except Exception:
            logger.exception("sales task %s not delivered; SQS will retry it", record.get("messageId"))
            failed.append({"itemIdentifier": record.get("messageId", "")})
    add_metric("SalesTasksCreated", created)
    return {"batchItemFailures": failed}
