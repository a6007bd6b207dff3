"""The nurture timeline's Advance task (Step Functions -> Lambda)."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import get_logger, metered
from nurture.wiring import get_advancer

logger = get_logger()


@metered
def advance(event: dict[str, Any], context: Any) -> dict[str, Any]:
    decision = get_advancer().advance(event, get_clock().timestamp())
    logger.info("timeline decision", extra={"enrollment_id": event.get("enrollment_id"), "decision": decision})
    return decision
