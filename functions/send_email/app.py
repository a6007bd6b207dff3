"""The nurture timeline's SendEmail task: render, send once, record the touch."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import get_logger, metered
from nurture.wiring import get_touch_sender

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = get_touch_sender().send(event, get_clock().timestamp())
    logger.info("email touch", extra={"touch": event, "result": result})
    return result
