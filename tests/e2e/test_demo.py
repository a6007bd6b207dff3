"""`nurture demo` end to end, small: a simulated market through the local stack
leaves a report and an export that keeps the product's promises."""

from __future__ import annotations

import io
import json
import os

import pytest

from nurture import wiring
from nurture.config.loader import load_config
from nurture_tools.export import read_export
from nurture_tools.local.demo import DemoOptions, handoff_grace_seconds, run_demo
from nurture_tools.promises import check_promises
from tests.conftest import CONFIG_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    saved = dict(os.environ)
    out = tmp_path_factory.mktemp("demo") / "run"
    try:
        result = run_demo(
            DemoOptions(leads=40, days=12, seed=11, seconds_per_day=1.5, out=out, drain_seconds=10),
            stream=io.StringIO(),
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()
    return result


def test_the_demo_leaves_a_report_and_an_export(demo):
    names = {path.name for path in demo.folder.iterdir()}
    assert {"report.html", "report.json", "leads.jsonl", "touches.jsonl", "events.jsonl"} <= names
    report = json.loads((demo.folder / "report.json").read_text())
    assert report["source"]["simulated"] is True
    assert "simulated" in (demo.folder / "report.html").read_text()


def test_the_simulated_market_went_through_the_pipeline(demo):
    export = read_export(demo.folder)
    emails = [t for t in export.touches if t["channel"] == "email" and t["status"] == "sent"]
    assert len(export.leads) >= 30  # people who visited, most of them identified
    assert sum(1 for lead in export.leads if lead.get("email")) >= 15
    assert emails, "the simulated leads received no email"
    assert any(e["kind"] == "lifecycle" and e["properties"]["to"] == "warm" for e in export.events)


def test_the_export_keeps_every_promise(demo):
    # Given the exported leads, touches and events
    export = read_export(demo.folder)

    # When the promises are checked on them (independently of the demo's own check)
    grace = handoff_grace_seconds(86400 / demo.report["source"]["seconds_per_day"])
    results = check_promises(export.leads, export.touches, export.events, load_config(CONFIG_DIR).policy, grace)

    # Then every one was kept, and the demo's report says the same
    assert [r for r in results if not r["kept"]] == []
    assert all(p["kept"] for p in demo.report["promises"])
