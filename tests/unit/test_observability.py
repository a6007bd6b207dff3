"""The catalogue of business counts, and what a flush prints: the EMF
documents of the few metric series and a business record per count."""

from __future__ import annotations

import pytest

from nurture.config.loader import load_config
from nurture.core.observability import (
    BUS_EVENT_METRICS,
    CATALOGUE,
    OTHER,
    SERIES_BUDGET,
    add_metric,
    flush_metrics,
    get_metrics,
    metered,
    metric_series,
    record_bus_events,
    sweep_run,
)
from nurture.core.stages import LIFECYCLE_STAGES
from nurture.ingest.segment import REJECTION_REASONS
from nurture.timelines.use_cases import metric_track_ids
from tests.conftest import CONFIG_DIR
from tests.emf import (
    business_records,
    emf_documents,
    emf_problems,
    metric_names,
    metric_values,
    record_names,
    record_values,
)

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
    return _printed(capsys)[0]


def _printed(capsys) -> tuple[list[dict], list[dict]]:
    """(EMF documents, business records) of one flush."""
    flush_metrics()
    out = capsys.readouterr().out
    return emf_documents(out), business_records(out)


def _series(documents: list[dict]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The distinct series in EMF documents, as CloudWatch bills them:
    metric name x dimension set x the set's values."""
    return {
        (metric["Name"], tuple(sorted((key, document[key]) for key in keys)))
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for keys in directive["Dimensions"]
        for metric in directive["Metrics"]
    }


# Every value each field can take: the bounded sets the code maps values into.
FIELD_VALUES = {
    "reason": [*REJECTION_REASONS, OTHER],
    "to_stage": [*LIFECYCLE_STAGES, OTHER],
    "from_stage": [*LIFECYCLE_STAGES, OTHER],
    "currency": ["USD", "EUR", "GBP", OTHER],
    "track": [*sorted(metric_track_ids(load_config(CONFIG_DIR))), OTHER],
    "bounce_type": ["Permanent", "Transient", "Undetermined", OTHER],
    "consent": ["bounced", "complained", "unsubscribed"],
    "sweep": ["due", "decay-demotion", "waking-the-dead", "audience-reconciliation"],
}


def test_every_contract_bus_event_is_counted_by_a_catalogued_metric():
    # Given the bus events of the shared contract
    # When their metrics are looked up
    names = {event: BUS_EVENT_METRICS.get(event) for event in CONTRACT_EVENTS}

    # Then each has one, in the catalogue, and no two events share a metric
    assert all(name in CATALOGUE for name in names.values()), names
    assert len(set(names.values())) == len(CONTRACT_EVENTS)


def test_every_count_with_every_field_value_emits_at_most_the_series_budget(capsys):
    # Given every catalogued count recorded under every value its fields can
    # take (the example configuration's tracks, every stage, reason ...)
    for definition in CATALOGUE.values():
        combinations: list[dict[str, str]] = [{}]
        for field in definition.fields:
            combinations = [{**c, field: value} for c in combinations for value in FIELD_VALUES[field]]
        for fields in combinations:
            add_metric(definition.name, 2, **fields)

    # When the invocation flushes
    documents, records = _printed(capsys)

    # Then the EMF documents hold exactly the catalogue's series, each under
    # service alone, within the budget; every count is a business record
    series = _series(documents)
    assert all(emf_problems(d) == [] for d in documents)
    assert series == set(metric_series())
    assert len(series) <= SERIES_BUDGET, sorted(series)
    assert {keys for _, keys in series} == {(("service", "nurture"),)}
    assert record_names(records) == set(CATALOGUE)


def test_a_flush_prints_the_series_total_and_a_record_per_field_value(capsys):
    # Given emails sent on two tracks and one plain count
    add_metric("EmailsSent", track="mql-revenue-teams")
    add_metric("EmailsSent", track="mql-revenue-teams")
    add_metric("EmailsSent", track="recycled")
    add_metric("LeadsBecameWarm", 7)

    # When the invocation's counts are flushed
    documents, records = _printed(capsys)

    # Then the EMF is valid, in the Nurture namespace, with one total per series
    assert documents and all(emf_problems(d) == [] for d in documents)
    assert {directive["Namespace"] for d in documents for directive in d["_aws"]["CloudWatchMetrics"]} == {"Nurture"}
    assert metric_values(documents, "EmailsSent") == [3]
    assert metric_values(documents, "LeadsBecameWarm") == [7]
    # ... and the business records carry the split, summed per track
    assert record_values(records, "EmailsSent", track="mql-revenue-teams") == [2]
    assert record_values(records, "EmailsSent", track="recycled") == [1]
    assert record_values(records, "LeadsBecameWarm") == [7]


def test_a_count_outside_the_series_is_a_record_only(capsys):
    # Given a bounce, which no series counts
    add_metric("Bounces", bounce_type="Permanent")

    # When flushed
    documents, records = _printed(capsys)

    # Then no metric is emitted, and the record carries its field
    assert documents == []
    assert records == [{"business_event": "Bounces", "Bounces": 1, "bounce_type": "Permanent", "service": "nurture"}]


def test_a_zero_count_prints_nothing_but_a_zero_measure_is_a_value(capsys):
    # Given an invocation that ingested nothing new, and a lead that moved on the day it arrived
    add_metric("DuplicateEvents", 0)
    add_metric("DaysInStage", 0.0, from_stage="lead")

    # When flushed
    documents, records = _printed(capsys)

    # Then no zero count reaches CloudWatch, and the zero days are averaged in
    assert "DuplicateEvents" not in metric_names(documents)
    assert record_names(records) == {"DaysInStage"}
    assert record_values(records, "DaysInStage", from_stage="lead") == [0.0]


def test_nothing_is_printed_twice(capsys):
    # Given a flushed count
    add_metric("EventsIngested", 3)
    _flushed(capsys)

    # When the next invocation flushes without recording anything
    documents, records = _printed(capsys)

    # Then it prints nothing
    assert documents == records == []


def test_disabled_metrics_print_nothing(capsys, monkeypatch):
    # Given metrics disabled, as the local stack and the benchmark run
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    add_metric("EmailsSent", track="recycled")
    add_metric("EventsIngested", 3)

    # When flushed
    documents, records = _printed(capsys)

    # Then nothing is printed
    assert documents == records == []


def test_a_name_outside_the_catalogue_is_refused():
    with pytest.raises(KeyError):
        add_metric("EmailsSentToday")


def test_a_field_the_catalogue_does_not_declare_is_refused():
    # lead ids and addresses would make unbounded breakdowns
    with pytest.raises(ValueError, match="EmailsSent takes fields"):
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
    documents, records = _printed(capsys)

    # Then two deals, the revenue under its currency, the odd one under "other"
    assert metric_values(documents, "DealsWon") == [2]
    assert record_values(records, "Revenue", currency="EUR") == [42000]
    assert record_values(records, "Revenue", currency="other") == [1000]


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
    records = _printed(capsys)[1]

    # Then the move is counted by the stage entered and the time by the stage left
    assert record_values(records, "LeadStageChanges", to_stage="hot") == [1]
    assert record_values(records, "DaysInStage", from_stage="warm") == [12.5]


def test_a_stage_outside_the_lifecycle_is_not_a_dimension_value(capsys):
    record_bus_events([{"type": "lead.stage_changed", "detail": {"from_stage": "warm", "to_stage": "p-123"}}])

    records = _printed(capsys)[1]

    assert record_values(records, "LeadStageChanges", to_stage="other") == [1]


def test_a_failing_sweep_counts_its_run_and_failure_and_still_raises(capsys):
    # Given a sweep whose body raises
    # When it runs
    with pytest.raises(RuntimeError), sweep_run("waking-the-dead"):
        raise RuntimeError("table throttled")

    # Then both the run and the failure are counted under the sweep's name
    records = _printed(capsys)[1]
    assert record_values(records, "SweepRuns", sweep="waking-the-dead") == [1]
    assert record_values(records, "SweepFailures", sweep="waking-the-dead") == [1]


def test_a_handler_that_raises_still_flushes(capsys):
    # Given a handler that records a metric and then fails
    @metered
    def handler(event, context):
        add_metric("LeadsBecameWarm", 4)
        raise RuntimeError("boom")

    # When it is invoked
    with pytest.raises(RuntimeError):
        handler({}, None)

    # Then its metric was printed anyway
    assert metric_values(emf_documents(capsys.readouterr().out), "LeadsBecameWarm") == [4]


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


def test_powertools_log_metrics_flushes_the_business_records_too(capsys):
    # Given a handler flushed by Powertools' own decorator, recording a per-track count
    @get_metrics().log_metrics
    def handler(event, context):
        add_metric("EmailsSent", track="recycled")
        return {}

    # When it is invoked
    handler({}, None)

    # Then the series and the per-track record were printed with the invocation
    out = capsys.readouterr().out
    assert metric_values(emf_documents(out), "EmailsSent") == [1]
    assert record_values(business_records(out), "EmailsSent", track="recycled") == [1]
