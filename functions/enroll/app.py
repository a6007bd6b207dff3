"""Lead lifecycle events (EventBridge) -> enroll in a track, or stop timelines."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_enroller

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results = get_enroller().on_event(event["detail-type"], event.get("detail") or {}, get_clock().timestamp())
    for result in results:
        logger.info(
            "enrollment",
            extra={"outcome": result.outcome, "detail": result.detail, "enrollment_id": result.enrollment_id},
        )
        if result.outcome in ("enrolled", "holdout", "stopped"):
            metrics.add_metric(name=f"Timelines{result.outcome.capitalize()}", unit="Count", value=1)
    return {"results": [result.__dict__ for result in results]}
