"""The benchmarks still run against the current code (a small stream) and
print one JSON object each. No timing is asserted here: a benchmark is not a
test; what is asserted is the report's shape and that the in-process fake
makes the calls moto does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nurture.adapters.aws import decode_ingest_message
from nurture_tools.local.market import website_visitors
from nurture_tools.local.template import load_template
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow


def test_the_ingest_benchmark_runs_and_reports_every_figure():
    # Given a small synthetic stream
    command = [
        sys.executable,
        str(PROJECT_DIR / "bench" / "ingest.py"),
        *("--events", "300", "--leads", "30", "--days", "30", "--cpu-repeats", "1", "--cold-runs", "1"),
        *("--sweep-leads", "300", "--sweep-due", "7"),
        *("--cost-leads", "10000", "--cost-sample-leads", "20"),
    ]

    # When the benchmark replays it in both shapes, starts every function cold and sweeps
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=PROJECT_DIR)

    # Then it prints one JSON object with each figure the goals are judged on, per shape
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["shape"] == "browser"
    assert set(report["shapes"]) == {"browser", "batched"}
    for shape, figures in report["shapes"].items():
        assert figures["stream"]["events"] == 300
        assert set(figures["wru_per_event"]) == {"table", "gsi1", "gsi2"}
        assert figures["dynamodb_write_units_per_event"] == pytest.approx(
            sum(figures["wru_per_event"].values()), abs=0.01
        )
        for figure in ("aws_calls_per_event", "handler_cpu_us_per_event", "baseline_cpu_us_per_event", "cpu_ratio"):
            assert figures[figure] > 0, (shape, figure)
        # and the in-process run made exactly the calls the moto replay made
        assert figures["stub_and_moto_calls_match"] is True, figures.get("first_call_difference")
    assert report["shapes"]["browser"]["stream"]["messages_per_invocation_max"] <= 10
    assert report["shapes"]["batched"]["messages_per_invocation_mean"] == 10
    # and every function of template.yaml started cold, its first invocation reaching AWS
    functions = {
        name
        for name, resource in load_template(PROJECT_DIR / "template.yaml")["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    cold = report["cold_start"]
    assert set(cold["functions"]) == functions
    for name, figures in cold["functions"].items():
        assert {"import_ms", "first_call_ms", "total_ms", "ratio"} <= set(figures), name
        assert sum(figures["first_call_aws_calls"].values()) >= 1, name
        assert "first_call_failed_records" not in figures, name
    assert cold["functions"]["ApiFunction"]["first_call_status"] == 200
    assert report["sweep"]["first_run"]["woken"] == 7
    # and the monthly bill, whose goals are among the report's
    bill = report["cost"]["bills"]["10000"]
    assert bill["total_monthly"] == pytest.approx(sum(line["dollars"] for line in bill["lines"]), abs=0.01)
    assert {"cost.10000.fixed_monthly", "cost.10000.per_10k_leads_excluding_ses"} <= set(report["goals"])
    assert report["goals"] and "all_goals_met" in report


def test_the_ingest_benchmark_replays_the_demo_market(monkeypatch):
    # Given the ingest benchmark's traffic for 60 people, in the browser shape
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    from nurture_bench.traffic import START, Shape, build_stream, build_traffic

    stream = build_stream(build_traffic(events=600, leads=60, seed=7, days=30), Shape("browser"), seed=7)
    events = [event for batch in stream.batches for record in batch for event in decode_ingest_message(record["body"])]

    # Then the people in it are the demo's market (and a competitor or two), one event per message,
    # and the same seed replays the same
    people = website_visitors(7, 60, START, 30)
    emails = {event.email or event.traits.get("email") for event in events} - {None}
    assert emails and emails <= {person.email for person in people}
    assert {event.anonymous_id for event in events} & {person.anonymous_id for person in people}
    assert all(len(decode_ingest_message(record["body"])) == 1 for batch in stream.batches for record in batch)
    again = build_stream(build_traffic(events=600, leads=60, seed=7, days=30), Shape("browser"), seed=7)
    assert again.batches == stream.batches


def test_the_sweep_benchmark_runs_and_reports_every_figure():
    # Given a small table with more due leads than the metrics buffer holds (100 values)
    command = [sys.executable, str(PROJECT_DIR / "bench" / "sweep.py"), "--leads", "300", "--due", "150"]

    # When the benchmark sweeps it twice
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)

    # Then it succeeds and prints one JSON object with each figure, per run
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    for run in ("first_run", "second_run_same_day"):
        for figure in (
            "index_entries_read",
            "leads_read",
            "read_capacity_units_reported",
            "read_capacity_units_estimated",
        ):
            assert figure in report[run]
    assert report["first_run"]["woken"] == 150
    assert report["second_run_same_day"]["woken"] == 0


def test_the_batching_benchmark_measures_each_window_against_the_template():
    # Given a small stream at 10,000 leads' pace and two batching windows
    command = [sys.executable, str(PROJECT_DIR / "bench" / "windows.py"), "--events", "300", "--leads", "80"]
    command += ["--windows", "0,20"]

    # When each window's stream is replayed
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)

    # Then one JSON object reports both, beside the template's choice
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["template"] == {"batch_size": 10, "batching_window_s": 10.0}
    no_window, window = report["choices"]
    assert (no_window["batching_window_s"], window["batching_window_s"]) == (0.0, 20.0)
    # ... no event waits longer than its window (and the invocation's start)
    assert no_window["event_to_score_seconds"]["max"] < 0.1
    assert 0 < window["event_to_score_seconds"]["max"] <= 20.1
    # ... and a window gathers more messages an invocation, for fewer calls an event
    assert window["messages_per_invocation_mean"] > no_window["messages_per_invocation_mean"] == 1.0
    assert window["aws_calls_per_event"] < no_window["aws_calls_per_event"]
