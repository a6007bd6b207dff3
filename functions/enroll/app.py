"""Lead lifecycle events (EventBridge) -> enroll in a track, or stop timelines."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import add_metric, get_logger, metered
from nurture.wiring import get_enroller

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results = get_enroller().on_event(event["detail-type"], event.get("detail") or {}, get_clock().timestamp())
    for result in results:
        logger.info(
            "enrollment",
            extra={"outcome": result.outcome, "detail": result.detail, "enrollment_id": result.enrollment_id},
        )
        if result.outcome in ("enrolled", "holdout", "stopped"):
            add_metric(f"Timelines{result.outcome.capitalize()}")
    return {"results": [result.__dict__ for result in results]}
