"""Lead events (EventBridge) -> sales hand-off of hot leads; recycle cool-down timers."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import get_logger, metered
from nurture.wiring import get_sales_handoff

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Raising lets EventBridge retry the event, then park it in the rule's DLQ.
    # lead.handed_off is counted where it is published (LeadsHandedOff).
    result = get_sales_handoff().on_event(event["detail-type"], event.get("detail") or {}, get_clock().timestamp())
    logger.info("sales hand-off", extra=result)
    return result
