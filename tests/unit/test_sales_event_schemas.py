"""Events of sales outcomes match the contracts in infra/events/."""

from __future__ import annotations

import json

import jsonschema

from tests.conftest import PROJECT_DIR
from tests.unit.sales_builders import HOT_AT, apply, make_hot, outcome


def schema(name: str) -> dict:
    return json.loads((PROJECT_DIR / "infra" / "events" / name).read_text())


def test_every_event_of_an_outcome_matches_its_schema(tracker, publisher, config):
    # Given a hot lead taken to an opportunity, lost, reopened and won
    lead_id = make_hot(tracker)
    bodies = [
        dict(outcome="accepted"),
        dict(outcome="opportunity_created"),
        dict(outcome="lost", reason="price"),
        dict(outcome="opportunity_created", outcome_id="reopen"),
        dict(outcome="won", revenue=1200.5, currency="GBP", rep="sam@vendor.com", note="signed"),
        dict(outcome="rejected", reason="no_budget"),
    ]
    before = len(publisher.entries)
    for n, body in enumerate(bodies):
        at = HOT_AT + (n + 1) * 3600
        apply(tracker, outcome(lead_id, config, at, **body), at=at)

    # Then stage changes match the lifecycle schema and the rest the sales schema
    entries = publisher.entries[before:]
    assert {e["type"] for e in entries} >= {"lead.stage_changed", "lead.won", "lead.lost", "lead.sales_accepted"}
    for entry in entries:
        name = "lead-lifecycle.schema.json" if entry["type"] == "lead.stage_changed" else "lead-sales.schema.json"
        jsonschema.validate(entry["detail"], schema(name))
