"""Business counts as the handlers print them under moto: the metric series
as valid embedded metric format under `service` alone, a business record per
count with exactly its catalogued fields, and every catalogued count recorded
by some real code path."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nurture import wiring
from nurture.core.observability import BUSINESS_EVENT, CATALOGUE, flush_metrics, metric_series, sweep_run
from tests.conftest import EVENTS_DIR, PROJECT_DIR
from tests.emf import (
    business_records,
    emf_documents,
    emf_problems,
    metric_names,
    metric_values,
    record_names,
    record_values,
)
from tests.integration.conftest import WRITE_KEY, ingest_record, warm_revops_lead

EMAIL = "lee@acme-insure.com"
TRACK = "mql-revenue-teams"


@pytest.fixture
def metrics_on(deployed, monkeypatch):
    """The deployed fixture disables metrics (as the local stack does); these tests read them."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    return deployed


def _warm_lead() -> str:
    return warm_revops_lead("u-metrics", EMAIL)


def _function(deployed, logical_id: str):
    """A handler loaded from its CodeUri as Lambda loads it."""
    from nurture_tools.local.template import LocalStack

    return LocalStack(PROJECT_DIR, deployed.session, prefix="test").functions()[logical_id].load()


def _emitted(capsys) -> str:
    return capsys.readouterr().out


# --------------------------------------------------------------- scenarios --
# Each runs real handlers (or the real publisher) and returns what they printed.


def _track_consumer(deployed, capsys) -> str:
    from track.app import handler

    _warm_lead()
    handler({"Records": [ingest_record({"type": "page", "userId": "u-metrics", "messageId": "p-m1"})]}, None)
    handler({"Records": [ingest_record({"type": "page", "userId": "u-metrics", "messageId": "p-m1"})]}, None)
    return _emitted(capsys)


def _api(deployed, capsys) -> str:
    from api.app import handler
    from werkzeug.test import Client

    from nurture.channels.email import unsubscribe_token
    from nurture_tools.local.apigw import ApiGateway
    from nurture_tools.local.template import LocalStack

    lead_id = _warm_lead()
    capsys.readouterr()
    client = Client(
        ApiGateway(LocalStack(PROJECT_DIR, deployed.session, prefix="r").api_routes("ApiFunction"), handler)
    )
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    batch = {
        "batch": [{"type": "track", "userId": "u1", "event": "Webinar Attended", "messageId": f"m{n}"} for n in (1, 2)]
        + [{"type": "track", "event": "no id", "messageId": "m3"}]
    }
    assert client.post("/v1/batch", json=batch, headers=auth).get_json()["rejected"] == 1
    token = unsubscribe_token(wiring.get_unsubscribe_keys().keys()["value"], lead_id)
    assert client.post(f"/v1/unsubscribe/{token}", data=b"List-Unsubscribe=One-Click").status_code == 200
    return _emitted(capsys)


def _email_touch(deployed, capsys) -> str:
    from tests.integration.timeline_harness import deliver_touch

    handler = _function(deployed, "AdvanceFunction")
    lead_id = _warm_lead()
    touch = {
        "lead_id": lead_id,
        "enrollment_id": f"{TRACK}-{lead_id}-1",
        "track_id": TRACK,
        "step_id": "guide",
        "content_id": "wp-revenue-analytics-guide",
        "subject": "The revenue analytics buyer's guide",
        "decided_at": time.time(),
    }
    assert deliver_touch(handler, touch)["delivery"] == "sent"
    assert deliver_touch(handler, touch)["delivery"] == "skipped: already sent"
    return _emitted(capsys)


def _ses_record(name: str, **changes) -> dict:
    event = copy.deepcopy(json.loads(Path(EVENTS_DIR / "ses" / f"{name}.json").read_text()))
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    event["detail"]["mail"]["timestamp"] = iso(now - 3600)
    event["detail"]["mail"]["destination"] = [EMAIL]
    event["detail"]["mail"]["tags"]["track"] = [TRACK]
    details = event["detail"].get(name)
    if isinstance(details, dict) and "timestamp" in details:
        details["timestamp"] = iso(now - 60)
    for recipients in ("bouncedRecipients", "complainedRecipients"):
        if isinstance(details, dict) and recipients in details:
            details[recipients] = [{"emailAddress": EMAIL}]
    if isinstance(details, dict):
        details.update(changes)
    return event


def _ses_feedback(deployed, capsys) -> str:
    from ses_events.app import handler

    _warm_lead()
    scanner = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
    handler(_ses_record("open"), None)
    handler(_ses_record("click"), None)
    handler(_ses_record("open", userAgent=scanner, timestamp="2026-01-01T00:00:01.000Z"), None)
    handler(_ses_record("click", userAgent=scanner, timestamp="2026-01-01T00:00:02.000Z"), None)
    handler(_ses_record("complaint"), None)
    handler(_ses_record("bounce"), None)
    return _emitted(capsys)


def _audience_sync(deployed, capsys, monkeypatch) -> str:
    from audience_sync.app import handler

    from nurture.channels.consent import unsubscribe

    monkeypatch.setenv("NURTURE_AD_PLATFORMS", "local")
    lead_id = _warm_lead()
    touch = {"lead_id": lead_id, "audience": "nurture-revenue-teams", "step_id": "retarget-platform"}
    assert handler({"Records": [{"messageId": "h1", "body": json.dumps(touch)}]}, None) == {"batchItemFailures": []}
    deployed.bus_events()
    unsubscribe(wiring.get_store(), wiring.get_publisher(), lead_id, time.time())
    for event in deployed.bus_events():
        if event["detail-type"] == "lead.unsubscribed":
            handler(event, None)
    return _emitted(capsys)


def _enrollment(deployed, capsys) -> str:
    from enroll.app import handler

    lead_id = _warm_lead()
    for event in deployed.bus_events():
        handler(event, None)
    _until_executions_are_under_way(deployed)
    handler({"detail-type": "lead.unsubscribed", "detail": {"lead_id": lead_id, "event_id": "u-1"}}, None)
    holdout = _holdout_lead()
    handler({"detail-type": "lead.became_warm", "detail": {"lead_id": holdout, "event_id": "w-h"}}, None)
    return _emitted(capsys)


def _until_executions_are_under_way(deployed) -> None:
    """moto runs an execution on a thread and cannot stop it before that thread began."""
    sfn = deployed.client("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
        histories = [sfn.get_execution_history(executionArn=e["executionArn"])["events"] for e in executions]
        if executions and all(histories):
            return
        time.sleep(0.05)


def _holdout_lead() -> str:
    """A warm lead the track's 10% holdout keeps out (found by its stable bucket)."""
    from track.app import handler

    from nurture.timelines.decisions import in_holdout

    track = next(t for t in wiring.get_config().tracks if t.id == TRACK)
    user = next(f"h{n}" for n in range(1000) if in_holdout(_lead_id_of(f"user#h{n}"), track))
    calls = [
        {
            "type": "identify",
            "userId": user,
            "messageId": f"id-{user}",
            "traits": {"email": f"{user}@acme-insure.com", "title": "VP Revenue Operations", "industry": "Insurance"},
        },
        {"type": "track", "userId": user, "event": "ROI Calculator Completed", "messageId": f"roi-{user}"},
        {"type": "track", "userId": user, "event": "Webinar Attended", "messageId": f"web-{user}"},
    ]
    handler({"Records": [ingest_record(*calls)]}, None)
    return _lead_id_of(f"user#{user}")


def _lead_id_of(identity: str) -> str:
    from nurture.ingest.consumer import lead_id_for

    return lead_id_for(identity)


def _responses_and_sales_tasks(deployed, capsys) -> str:
    from sales_tasks.app import handler as sales_tasks

    responses = _function(deployed, "ResponsesFunction")
    lead_id = _warm_lead()
    detail = {"lead_id": lead_id, "form_source": "demo-request", "message_id": "f-1", "event_id": "e-f-1"}
    assert responses({"detail-type": "lead.form_submitted", "detail": detail}, None)["alerted"] is True
    step = {"enrollment_id": f"{TRACK}-x-1", "lead_id": lead_id, "track_id": TRACK, "step_id": "sales-check-in"}
    step |= {"channel": "sales_call", "note": "Offer a forecast health check"}
    sales_tasks({"Records": [{"messageId": "s1", "body": json.dumps(step)}]}, None)
    return _emitted(capsys)


def _outcomes_published(deployed, capsys) -> str:
    """Every lifecycle event of the contract, through the publisher every use case uses."""
    entries = [
        {"id": f"e-{n}", "type": event, "detail": {"event_id": f"e-{n}", "lead_id": "p1", "occurred_at": "2026-11-24"}}
        for n, event in enumerate(
            [
                "lead.became_hot",
                "lead.handed_off",
                "lead.sales_accepted",
                "lead.handoff_escalated",
                "lead.opportunity_created",
                "lead.became_customer",
                "lead.recycled",
                "lead.lost",
                "lead.dormant",
                "lead.demoted",
                "lead.sunset",
                "lead.reactivated",
                "lead.erased",
                "lead.content_exhausted",
                "lead.behaviour_triggered",
                "lead.form_submitted",
            ]
        )
    ]
    entries.append(
        {"id": "won", "type": "lead.won", "detail": {"event_id": "won", "revenue": 48000, "currency": "USD"}}
    )
    wiring.get_publisher().publish(entries)
    flush_metrics()
    return _emitted(capsys)


def _sweep(deployed, capsys) -> str:
    with pytest.raises(RuntimeError), sweep_run("decay-demotion"):
        raise RuntimeError("throttled")
    flush_metrics()
    return _emitted(capsys)


def _due_sweep(deployed, capsys) -> str:
    """The sweep function over a lead lost long enough ago to be woken."""
    from sweeps.app import handler

    from nurture.core.clock import get_clock
    from nurture_tools.local.apigw import lambda_context

    lead_id = _warm_lead()
    store = wiring.get_store()
    lead = store.get_leads([lead_id], consistent=True)[lead_id]
    lead.lifecycle = "lost"
    lead.lifecycle_at = get_clock().timestamp() - (wiring.get_config().sweeps.lost_after_days + 1) * 86400
    store.save_lead(lead, lead.version)
    capsys.readouterr()
    handler({"sweep": "due"}, lambda_context("SweepFunction"))
    return _emitted(capsys)


SCENARIOS: dict[str, tuple[Callable[..., str], set[str]]] = {
    "track consumer": (
        _track_consumer,
        {"EventsIngested", "DuplicateEvents", "LeadsBecameWarm", "LeadStageChanges", "DaysInStage"},
    ),
    "api": (_api, {"EventsAccepted", "EventsRejected", "LeadsUnsubscribed"}),
    "email touch": (_email_touch, {"EmailsSent", "EmailsSkipped"}),
    "ses feedback": (
        _ses_feedback,
        {"HumanOpens", "HumanClicks", "MachineOpens", "MachineClicks", "Bounces", "Complaints", "LeadsSuppressed"},
    ),
    "audience sync": (_audience_sync, {"AudienceMembersSynced", "AudienceMembersRemoved"}),
    "enrollment": (_enrollment, {"TimelinesEnrolled", "TimelinesHoldout", "TimelinesStopped"}),
    "responses and sales tasks": (
        _responses_and_sales_tasks,
        {"FormsAcknowledged", "SalesAlerts", "SalesTasksCreated"},
    ),
    "outcomes published": (
        _outcomes_published,
        {
            "LeadsBecameHot",
            "LeadsHandedOff",
            "LeadsSalesAccepted",
            "HandoffsEscalated",
            "OpportunitiesCreated",
            "DealsWon",
            "Revenue",
            "LeadsBecameCustomer",
            "LeadsRecycled",
            "LeadsLost",
            "LeadsDormant",
            "LeadsDemoted",
            "LeadsSunset",
            "LeadsReactivated",
            "LeadsErased",
            "ContentExhausted",
            "BehaviourTriggers",
            "FormsSubmitted",
        },
    ),
    "sweep": (_sweep, {"SweepRuns", "SweepFailures"}),
    "due sweep": (_due_sweep, {"SweepRuns", "SweepLeadsExamined", "SweepReadCapacity", "LeadsDormant"}),
}


def _run(name, deployed, capsys, monkeypatch) -> str:
    scenario = SCENARIOS[name][0]
    if scenario is _audience_sync:
        return scenario(deployed, capsys, monkeypatch)
    return scenario(deployed, capsys)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_handlers_print_valid_emf_with_the_catalogued_metrics(metrics_on, capsys, monkeypatch, name):
    # Given a scenario's expected counts, and the series the functions may emit
    expected = SCENARIOS[name][1]
    series = dict(metric_series())

    # When the scenario runs the real code under moto
    out = _run(name, metrics_on, capsys, monkeypatch)
    documents, records = emf_documents(out), business_records(out)

    # Then every EMF document is valid, in the Nurture namespace, and holds
    # catalogued series only, under the dimension service alone
    for document in documents:
        assert emf_problems(document) == [], document
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Nurture"
            assert directive["Dimensions"] == [["service"]], directive
            for definition in directive["Metrics"]:
                assert definition["Name"] in series, definition
                assert definition["Unit"] == CATALOGUE[definition["Name"]].unit
    # ... every business record is a catalogued count with exactly its fields
    # (the ones the dashboard's Logs Insights widgets group by) and no zero
    assert records, "no business record printed"
    for record in records:
        definition = CATALOGUE[record[BUSINESS_EVENT]]
        assert set(record) == {BUSINESS_EVENT, definition.name, "service", *definition.fields}, record
        assert all(isinstance(record[field], str) and record[field] for field in definition.fields), record
        assert definition.unit != "Count" or record[definition.name] > 0, record
    # ... the expected counts are recorded, and each series recorded is emitted
    assert expected <= record_names(records), expected - record_names(records)
    assert {n for n in record_names(records) if n in series} == metric_names(documents)


def test_every_catalogued_metric_is_emitted_by_a_scenario():
    covered = set().union(*(names for _, names in SCENARIOS.values()))
    assert covered == set(CATALOGUE), {
        "catalogued but never emitted": sorted(set(CATALOGUE) - covered),
        "emitted but not catalogued": sorted(covered - set(CATALOGUE)),
    }


def test_an_email_counts_under_its_track(metrics_on, capsys):
    out = _email_touch(metrics_on, capsys)

    assert record_values(business_records(out), "EmailsSent", track=TRACK) == [1]
    assert metric_values(emf_documents(out), "EmailsSent") == [1]


def test_human_engagement_counts_under_the_track_of_the_email(metrics_on, capsys):
    out = _ses_feedback(metrics_on, capsys)
    records = business_records(out)

    assert record_values(records, "HumanOpens", track=TRACK) == [1]
    assert record_values(records, "HumanClicks", track=TRACK) == [1]
    assert metric_values(emf_documents(out), "MachineOpens") == [1]
    assert record_values(records, "LeadsSuppressed", consent="complained") == [1]


def test_a_batch_with_an_unreadable_record_still_reports_what_it_applied(metrics_on, capsys):
    from track.app import handler

    # Given a batch with one good record and one that is not an ingest message
    good = ingest_record({"type": "page", "userId": "u-partial", "messageId": "p-partial"})
    bad = {"messageId": "bad-1", "body": "not json"}

    # When the track function handles it
    response = handler({"Records": [good, bad]}, None)

    # Then the bad record is reported failed and the good one is still counted
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad-1"}]}
    assert record_values(business_records(_emitted(capsys)), "EventsIngested") == [1]


def test_a_won_deal_adds_its_revenue_in_its_currency(metrics_on, capsys):
    out = _outcomes_published(metrics_on, capsys)

    assert record_values(business_records(out), "Revenue", currency="USD") == [48000]
    assert metric_values(emf_documents(out), "DealsWon") == [1]
