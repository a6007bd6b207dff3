"""The nurture timeline's SendEmail task: render, send once, record the touch."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_touch_sender

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = get_touch_sender().send(event, get_clock().timestamp())
    metrics.add_metric(name="EmailsSent" if result["sent"] else "EmailsSkipped", unit="Count", value=1)
    logger.info("email touch", extra={"touch": event, "result": result})
    return result
