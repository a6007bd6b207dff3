"""Scheduled sweeps (EventBridge Scheduler -> Lambda): the due leads of today."""

from __future__ import annotations

from typing import Any

from nurture.clock import get_clock
from nurture.errors import ValidationError
from nurture.observability import get_logger, get_metrics
from nurture.wiring import get_sweeper

logger = get_logger()
metrics = get_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("sweep", "due") != "due":
        raise ValidationError(f"unknown sweep {event.get('sweep')!r}; expected 'due'", field="sweep")
    result = get_sweeper().run(get_clock().timestamp(), lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info("sweep", extra=result.as_dict())
    metrics.add_metric(name="SweepLeadsExamined", unit="Count", value=result.examined)
    metrics.add_metric(name="SweepLeadsDemoted", unit="Count", value=result.demoted)
    metrics.add_metric(name="SweepLeadsWoken", unit="Count", value=sum(result.woken.values()))
    metrics.add_metric(name="SweepReadCapacityUnits", unit="Count", value=result.read_capacity_units)
    return result.as_dict()
