"""Scheduled sweeps (EventBridge Scheduler -> Lambda): the due leads of today."""

from __future__ import annotations

from typing import Any

from nurture.core.clock import get_clock
from nurture.core.errors import ValidationError
from nurture.core.observability import add_metric, get_logger, metered, sweep_run
from nurture.wiring import get_sweeper

logger = get_logger()
SWEEP = "due-leads"  # waking the dead, decay demotion, outbox retry: one pass over the due index


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("sweep", "due") != "due":
        raise ValidationError(f"unknown sweep {event.get('sweep')!r}; expected 'due'", field="sweep")
    with sweep_run(SWEEP):
        result = get_sweeper().run(get_clock().timestamp(), lambda: context.get_remaining_time_in_millis() / 1000)
    add_metric("SweepLeadsExamined", result.examined, sweep=SWEEP)
    add_metric("SweepReadCapacity", result.read_capacity_units, sweep=SWEEP)
    logger.info("sweep", extra=result.as_dict())
    return result.as_dict()
