"""SES event publishing (via EventBridge) -> suppression and engagement."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.observability import get_logger, metered
from nurture.wiring import get_ses_feedback

logger = get_logger()


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcome = get_ses_feedback().handle(event, get_clock().timestamp())
    logger.info("ses feedback", extra={"kind": outcome.kind, "action": outcome.action, "reason": outcome.reason})
    return {"kind": outcome.kind, "action": outcome.action}
