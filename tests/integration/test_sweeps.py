"""The sweep function under moto, on the table built from template.yaml: the
read cost of a sweep tracks the number of due leads, not the table size, and a
second run the same day wakes nobody."""

from __future__ import annotations

import pytest

from nurture import wiring
from nurture.core.clock import FixedClock, SystemClock, set_clock
from nurture.core.domain import Lead
from nurture.store.repository import lead_to_item, to_item
from nurture.sweeps.scheduled import due_index_function
from nurture_tools.local.apigw import lambda_context

DAY = 86400.0
NOW = 1_780_000_000.0  # a fixed day, so the calendar never matters
TABLE_SIZE = 10_000
DUE = 100


def _seed(deployed) -> None:
    """10,000 leads as the product stores them: 100 lost long enough ago to be
    due, the rest subscribers, active warm leads and recently lost leads."""
    config = wiring.get_config()
    due = due_index_function(config)
    client, table = deployed.client("dynamodb"), deployed.env["TABLE_NAME"]
    leads = []
    for n in range(TABLE_SIZE):
        lead = Lead(
            lead_id=f"p{n:05d}", email=f"lead{n}@example.com", fit_grade="B", version=1, created_at=NOW - 400 * DAY
        )
        if n < DUE:
            lead.lifecycle, lead.lifecycle_at = "lost", NOW - (config.sweeps.lost_after_days + 5) * DAY
        elif n % 3 == 0:
            lead.lifecycle, lead.lifecycle_at = "lost", NOW - DAY * (n % 60)
        elif n % 3 == 1:
            lead.lifecycle, lead.lifecycle_at, lead.last_seen_at = "warm", NOW - 2 * DAY, NOW - DAY
            lead.engagement, lead.engagement_at = 60.0, NOW - DAY
        else:
            lead.lifecycle = "subscriber"
        leads.append({"PutRequest": {"Item": to_item(lead_to_item(lead, due))}})
    for start in range(0, len(leads), 25):
        client.batch_write_item(RequestItems={table: leads[start : start + 25]})


@pytest.fixture
def clock():
    fixed = FixedClock(NOW)
    set_clock(fixed)
    yield fixed
    set_clock(SystemClock())


def _sweep():
    from sweeps.app import handler

    return handler({"sweep": "due"}, lambda_context("SweepFunction"))


def _dormant(deployed) -> list[dict]:
    return [e for e in deployed.bus_events() if e["detail-type"] == "lead.dormant"]


def test_a_sweep_over_10000_leads_with_100_due_reads_about_100_items(deployed, clock):
    # Given 10,000 leads of which 100 are due
    _seed(deployed)

    # When the sweep function runs
    result = _sweep()

    # Then it woke exactly the 100, and read on the order of 100 items: the
    # index entries and the leads, and capacity under twice the due count
    reads = wiring.get_store().sweep_reads
    assert result["woken"] == {"lost_aged": DUE}
    assert reads["index_items"] == DUE
    assert reads["leads"] == DUE
    assert result["read_capacity_units"] <= 2 * DUE
    assert result["read_capacity_units"] < TABLE_SIZE / 50
    assert len(_dormant(deployed)) == DUE


def test_a_second_sweep_the_same_day_wakes_nobody(deployed, clock):
    # Given a day whose sweep woke the 100 due leads
    _seed(deployed)
    _sweep()
    assert len(_dormant(deployed)) == DUE

    # When the sweep runs again that day
    clock.advance(3600)
    result = _sweep()

    # Then it read no lead and published nothing
    assert result["examined"] == 0
    assert result["woken"] == {}
    assert _dormant(deployed) == []
