"""The metric catalogue and the EMF documents a flush prints."""

from __future__ import annotations

import pytest

from nurture.core.observability import (
    BUS_EVENT_METRICS,
    CATALOGUE,
    add_metric,
    flush_metrics,
    get_metrics,
    metered,
    record_bus_events,
    sweep_run,
)
from tests.emf import emf_documents, emf_problems, metric_names, metric_values

CONTRACT_EVENTS = (
    "lead.became_warm",
    "lead.became_hot",
    "lead.stage_changed",
    "lead.unsubscribed",
    "lead.form_submitted",
    "lead.behaviour_triggered",
    "lead.content_exhausted",
    "lead.recycled",
    "lead.lost",
    "lead.dormant",
    "lead.became_customer",
    "lead.handed_off",
    "lead.sales_accepted",
    "lead.opportunity_created",
    "lead.won",
    "lead.handoff_escalated",
    "lead.demoted",
    "lead.sunset",
    "lead.reactivated",
    "lead.erased",
)


def _flushed(capsys) -> list[dict]:
    flush_metrics()
    return emf_documents(capsys.readouterr().out)


def test_every_contract_bus_event_is_counted_by_a_catalogued_metric():
    # Given the bus events of the shared contract
    # When their metrics are looked up
    names = {event: BUS_EVENT_METRICS.get(event) for event in CONTRACT_EVENTS}

    # Then each has one, in the catalogue, and no two events share a metric
    assert all(name in CATALOGUE for name in names.values()), names
    assert len(set(names.values())) == len(CONTRACT_EVENTS)


def test_a_flush_prints_valid_emf_with_the_total_and_the_split(capsys):
    # Given emails sent on two tracks and one plain count
    add_metric("EmailsSent", track="mql-revenue-teams")
    add_metric("EmailsSent", track="mql-revenue-teams")
    add_metric("EmailsSent", track="recycled")
    add_metric("EventsIngested", 7)

    # When the invocation's metrics are flushed
    documents = _flushed(capsys)

    # Then every document is valid EMF in the Nurture namespace
    assert documents and all(emf_problems(d) == [] for d in documents)
    assert {directive["Namespace"] for d in documents for directive in d["_aws"]["CloudWatchMetrics"]} == {"Nurture"}
    # ... counts are summed per track, and each split also carries the [service] total
    assert metric_values(documents, "EmailsSent", track="mql-revenue-teams") == [2]
    assert metric_values(documents, "EmailsSent", track="recycled") == [1]
    assert sorted(metric_values(documents, "EmailsSent")) == [1, 2]
    assert metric_values(documents, "EventsIngested") == [7]


def test_nothing_is_printed_twice(capsys):
    # Given a flushed metric
    add_metric("EventsIngested", 3)
    _flushed(capsys)

    # When the next invocation flushes without recording anything
    documents = _flushed(capsys)

    # Then it prints nothing
    assert documents == []


def test_disabled_metrics_print_nothing(capsys, monkeypatch):
    # Given metrics disabled, as the local stack and the benchmark run
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    add_metric("EmailsSent", track="recycled")
    add_metric("EventsIngested", 3)

    # When flushed
    documents = _flushed(capsys)

    # Then nothing is printed
    assert documents == []


def test_a_name_outside_the_catalogue_is_refused():
    with pytest.raises(KeyError):
        add_metric("EmailsSentToday")


def test_a_dimension_the_catalogue_does_not_declare_is_refused():
    # lead ids and addresses would make unbounded dimensions
    with pytest.raises(ValueError, match="EmailsSent takes dimensions"):
        add_metric("EmailsSent", track="recycled", lead_id="p123")


def test_a_won_deal_counts_and_adds_its_revenue_by_currency(capsys):
    # Given a published lead.won with revenue, and one with a made-up currency
    record_bus_events(
        [
            {"type": "lead.won", "detail": {"lead_id": "p1", "revenue": 42000, "currency": "EUR"}},
            {"type": "lead.won", "detail": {"lead_id": "p2", "revenue": 1000, "currency": "euros!"}},
        ]
    )

    # When flushed
    documents = _flushed(capsys)

    # Then two deals, the revenue under its currency, the odd one under "other"
    assert metric_values(documents, "DealsWon") == [1, 1]
    assert metric_values(documents, "Revenue", currency="EUR") == [42000]
    assert metric_values(documents, "Revenue", currency="other") == [1000]


def test_a_stage_change_counts_the_stage_entered_and_the_days_spent_in_the_last(capsys):
    # Given a published lead.stage_changed from warm to hot after 12.5 days
    record_bus_events(
        [
            {
                "type": "lead.stage_changed",
                "detail": {"from_stage": "warm", "to_stage": "hot", "days_in_stage": 12.5},
            }
        ]
    )

    # When flushed
    documents = _flushed(capsys)

    # Then the move is counted by the stage entered and the time by the stage left
    assert metric_values(documents, "LeadStageChanges", to_stage="hot") == [1]
    assert metric_values(documents, "DaysInStage", from_stage="warm") == [12.5]


def test_a_stage_outside_the_lifecycle_is_not_a_dimension_value(capsys):
    record_bus_events([{"type": "lead.stage_changed", "detail": {"from_stage": "warm", "to_stage": "p-123"}}])

    documents = _flushed(capsys)

    assert metric_values(documents, "LeadStageChanges", to_stage="other") == [1]


def test_a_failing_sweep_counts_its_run_and_failure_and_still_raises(capsys):
    # Given a sweep whose body raises
    # When it runs
    with pytest.raises(RuntimeError), sweep_run("waking-the-dead"):
        raise RuntimeError("table throttled")

    # Then both the run and the failure are counted under the sweep's name
    documents = _flushed(capsys)
    assert metric_values(documents, "SweepRuns", sweep="waking-the-dead") == [1]
    assert metric_values(documents, "SweepFailures", sweep="waking-the-dead") == [1]


def test_a_handler_that_raises_still_flushes(capsys):
    # Given a handler that records a metric and then fails
    @metered
    def handler(event, context):
        add_metric("EventsIngested", 4)
        raise RuntimeError("boom")

    # When it is invoked
    with pytest.raises(RuntimeError):
        handler({}, None)

    # Then its metric was printed anyway
    assert metric_values(emf_documents(capsys.readouterr().out), "EventsIngested") == [4]


def test_the_validator_rejects_what_the_specification_forbids():
    # Given documents breaking the EMF rules one at a time
    valid = {
        "_aws": {
            "Timestamp": 1700000000000,
            "CloudWatchMetrics": [{"Namespace": "Nurture", "Dimensions": [["service"]], "Metrics": [{"Name": "X"}]}],
        },
        "service": "nurture",
        "X": 1.0,
    }
    no_value = {**valid, "X": "one"}
    no_dimension = {k: v for k, v in valid.items() if k != "service"}
    too_many = {
        **valid,
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [
                {"Namespace": "Nurture", "Dimensions": [[f"d{i}" for i in range(31)]], "Metrics": [{"Name": "X"}] * 101}
            ],
        },
    }

    # Then only the valid one passes
    assert emf_problems(valid) == []
    assert emf_problems(no_value)
    assert emf_problems(no_dimension)
    problems = " ".join(emf_problems(too_many))
    assert "101 metrics" in problems and "31 keys" in problems
    assert metric_names([valid]) == {"X"}


def test_powertools_log_metrics_flushes_the_dimensioned_metrics_too(capsys):
    # Given a handler flushed by Powertools' own decorator, recording a per-track metric
    @get_metrics().log_metrics
    def handler(event, context):
        add_metric("EmailsSent", track="recycled")
        return {}

    # When it is invoked
    handler({}, None)

    # Then the per-track metric was printed with the invocation
    assert metric_values(emf_documents(capsys.readouterr().out), "EmailsSent", track="recycled") == [1]
