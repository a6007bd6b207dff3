"""Form submissions that ask for it (lead.form_submitted) -> acknowledgement and sales alert."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import add_metric, get_logger, metered
from nurture.wiring import get_responder

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = get_responder().on_form(event.get("detail") or {}, get_clock().timestamp())
    add_metric("FormsAcknowledged", int(result["acknowledged"]))
    add_metric("SalesAlerts", int(result["alerted"]))
    logger.info("form response", extra=result)
    return result
