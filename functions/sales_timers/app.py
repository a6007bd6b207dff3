"""EventBridge Scheduler one-time timers -> SLA escalation of hand-offs, end of a recycle cool-down."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import get_logger, metered
from nurture.wiring import get_sales_timers

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Raising lets Lambda retry the invocation, then send it to the timer DLQ.
    # lead.handoff_escalated and lead.recycled are counted where they are published.
    result = get_sales_timers().on_timer(event, get_clock().timestamp())
    logger.info("sales timer", extra=result)
    return result
