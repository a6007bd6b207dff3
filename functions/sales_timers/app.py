"""EventBridge Scheduler one-time timers -> SLA escalation of hand-offs, end of a recycle cool-down."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_sales_timers

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Raising lets Scheduler retry the invocation, then send it to the timer DLQ.
    result = get_sales_timers().on_timer(event, get_clock().timestamp())
    logger.info("sales timer", extra=result)
    if result["outcome"] in ("escalated", "recycled"):
        metrics.add_metric(name=f"Leads{result['outcome'].capitalize()}", unit="Count", value=1)
    return result
