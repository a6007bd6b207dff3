"""SES event publishing (via EventBridge) -> suppression and engagement."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_ses_feedback

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcome = get_ses_feedback().handle(event, get_clock().timestamp())
    for effect in outcome.effects:
        metrics.add_metric(name=f"SesFeedback{effect.action.title().replace('_', '')}", unit="Count", value=1)
    logger.info("ses feedback", extra={"kind": outcome.kind, "action": outcome.action, "reason": outcome.reason})
    return {"kind": outcome.kind, "action": outcome.action}
