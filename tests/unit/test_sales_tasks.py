"""Call tasks through the sales channel: a failed delivery is retried, not lost."""

from __future__ import annotations

import pytest

from nurture.sales.call_tasks import SalesTasks
from tests.fakes import InMemoryTimelineStore
from tests.unit.builders import T0
from tests.unit.sales_builders import RecordingChannel, make_hot

STEP = {
    "enrollment_id": "mql-revenue-teams-x-1",
    "track_id": "mql-revenue-teams",
    "step_id": "sales-check-in",
    "note": "Offer a forecast health check",
}


def test_a_call_task_the_crm_failed_to_take_is_delivered_on_the_retry(tracker, store, config):
    # Given a lead with a call step, and a sales channel failing once
    lead_id = make_hot(tracker)
    channel = RecordingChannel(fail_next=1)
    tasks = SalesTasks(store, InMemoryTimelineStore(store.items), channel, config)

    # When the step is consumed, fails, and SQS redelivers it
    with pytest.raises(RuntimeError):
        tasks.create({**STEP, "lead_id": lead_id}, T0)
    delivered = tasks.create({**STEP, "lead_id": lead_id}, T0 + 30)

    # Then the retry delivers exactly one call task
    assert delivered is True
    ((_, task),) = channel.alerts
    assert (task["type"], task["reason"]) == ("call_task", "Offer a forecast health check")
