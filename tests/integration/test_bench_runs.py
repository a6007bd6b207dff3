"""The ingest benchmark still runs against the current code (a small stream).
No figure is asserted here: a benchmark is not a test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nurture.adapters.aws import decode_ingest_message
from nurture_tools.local.market import website_visitors
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow


def test_the_ingest_benchmark_runs_and_reports_every_figure():
    # Given a small synthetic stream
    command = [sys.executable, str(PROJECT_DIR / "bench" / "ingest.py"), "--events", "300", "--leads", "30"]

    # When the benchmark replays it
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)

    # Then it succeeds and reports each figure the goals are judged on
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    for figure in ("dynamodb_write_units_per_event", "aws_calls_per_event", "cpu_ratio", "import_ratio"):
        assert figure in report
    assert report["stream"]["events"] == 300


def test_the_ingest_benchmark_replays_the_demo_market(monkeypatch):
    # Given the ingest benchmark's stream for 60 people
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    from nurture_bench.traffic import START, build_stream

    stream = build_stream(events=600, leads=60, batch=100, record_events=10, seed=7, days=30)
    events = [event for batch in stream.batches for record in batch for event in decode_ingest_message(record["body"])]

    # Then the people in it are the demo's market (and a competitor or two), and the same seed replays the same
    people = website_visitors(7, 60, START, 30)
    emails = {event.email or event.traits.get("email") for event in events} - {None}
    assert emails and emails <= {person.email for person in people}
    assert {event.anonymous_id for event in events} & {person.anonymous_id for person in people}
    assert build_stream(events=600, leads=60, batch=100, record_events=10, seed=7, days=30).batches == stream.batches


def test_the_sweep_benchmark_runs_and_reports_every_figure():
    # Given a small table with a few due leads
    command = [sys.executable, str(PROJECT_DIR / "bench" / "sweep.py"), "--leads", "300", "--due", "7"]

    # When the benchmark sweeps it twice
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)

    # Then it succeeds and reports each figure, per run
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
    assert report["first_run"]["woken"] == 7
    assert report["second_run_same_day"]["woken"] == 0
