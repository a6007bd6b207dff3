"""Lead events (EventBridge) -> sales hand-off of hot leads; recycle cool-down timers."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_sales_handoff

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Raising lets EventBridge retry the event, then park it in the rule's DLQ.
    result = get_sales_handoff().on_event(event["detail-type"], event.get("detail") or {}, get_clock().timestamp())
    logger.info("sales hand-off", extra=result)
    if result["outcome"] == "handed_off":
        metrics.add_metric(name="LeadsHandedOff", unit="Count", value=1)
    return result
