"""Form submissions that ask for it (lead.form_submitted) -> acknowledgement and sales alert."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_responder

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = get_responder().on_form(event.get("detail") or {}, get_clock().timestamp())
    metrics.add_metric(name="FormsAcknowledged", unit="Count", value=int(result["acknowledged"]))
    metrics.add_metric(name="SalesAlerts", unit="Count", value=int(result["alerted"]))
    logger.info("form response", extra=result)
    return result
