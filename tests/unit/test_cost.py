"""The cost model (`nurture cost`): the dated price file, the fixed resources
counted from template.yaml, the bill's arithmetic, the timeline's walk and a
tiny replay through the real handlers."""

from __future__ import annotations

import json
from datetime import date

import pytest

from nurture.core.clock import FixedClock
from nurture.core.observability import metric_series
from nurture_tools.cost import (
    FIXED,
    PER_LEAD,
    PRICES_FILE,
    SES,
    PriceFileError,
    Usage,
    compute_bill,
    load_prices,
    read_inventory,
)
from nurture_tools.cost_timeline import run_execution, walk
from nurture_tools.local.template import load_template
from tests.conftest import PROJECT_DIR

SERVICES_BILLED = (
    "apigateway_rest_request",
    "lambda_request",
    "lambda_arm_gb_second",
    "sqs_standard_request",
    "dynamodb_write_request_unit",
    "dynamodb_read_request_unit",
    "dynamodb_storage_gb_month",
    "eventbridge_custom_event",
    "stepfunctions_standard_transition",
    "ses_outbound_email",
    "cloudwatch_custom_metric_month",
    "cloudwatch_alarm_metric_month",
    "cloudwatch_dashboard_month",
    "cloudwatch_logs_ingest_gb",
    "xray_trace_recorded",
    "secretsmanager_secret_month",
    "kms_customer_key_month",
)


def _usage(**overrides: float) -> Usage:
    per_lead = {
        "api_requests": 30.0,
        "sqs_requests": 60.0,
        "dynamodb_wru": 50.0,
        "dynamodb_rru": 40.0,
        "table_bytes": 20_000.0,
        "bus_events": 0.3,
        "transitions": 2.0,
        "emails": 0.2,
        "secret_calls": 0.01,
        **overrides,
    }
    lambda_per_lead = {
        "functions/api": {"invocations": 30.0, "mean_ms": 20.0, "log_bytes": 9000.0},
        "functions/track": {"invocations": 26.0, "mean_ms": 40.5, "log_bytes": 12000.0},
    }
    return Usage(per_lead, lambda_per_lead, {"timeline": {"transitions_per_enrolled_lead_month": 20.0}}, [])


@pytest.fixture(scope="module")
def inventory():
    return read_inventory(PROJECT_DIR)


def test_the_price_file_is_dated_and_every_price_has_its_unit_and_source():
    # Given the price file the bill is computed at
    prices = load_prices()

    # Then it names its date, region and currency, and each service billed has a price with unit and source page
    assert prices.as_of <= date.today()
    assert prices.region == "us-east-1"
    assert prices.currency == "USD"
    for key in SERVICES_BILLED:
        price = prices[key]
        assert price.price > 0 and price.per > 0, key
        assert price.unit and price.source, key
    # and a price reads as the list prices do: $3.50 per million REST API requests
    assert prices["apigateway_rest_request"].of(2_000_000) == pytest.approx(7.0)


def test_a_price_file_without_its_date_or_with_a_negative_price_is_refused(tmp_path):
    # Given the price file without its date, and with a negative price
    data = json.loads(PRICES_FILE.read_text())
    undated = tmp_path / "undated.json"
    undated.write_text(json.dumps({k: v for k, v in data.items() if k != "as_of"}))
    negative = tmp_path / "negative.json"
    data["prices"]["lambda_request"]["price"] = -1
    negative.write_text(json.dumps(data))

    # Then neither loads, and the error names the field
    with pytest.raises(PriceFileError, match="as_of"):
        load_prices(undated)
    with pytest.raises(PriceFileError, match=r"prices\.lambda_request\.price"):
        load_prices(negative)


def test_the_fixed_resources_are_counted_from_the_template_and_the_metric_catalogue(inventory):
    # Given template.yaml as the deployment declares it
    resources = load_template(PROJECT_DIR / "template.yaml")["Resources"]

    def count(kind: str) -> int:
        return sum(1 for resource in resources.values() if resource["Type"] == kind)

    # Then the inventory holds its alarms, secrets, keys and dashboards, and the catalogue's series
    assert inventory.metric_series == len(metric_series())
    assert inventory.alarms == count("AWS::CloudWatch::Alarm")
    assert inventory.alarm_metrics >= inventory.alarms
    assert inventory.secrets == count("AWS::SecretsManager::Secret")
    assert inventory.kms_keys == count("AWS::KMS::Key")
    assert inventory.dashboards == count("AWS::CloudWatch::Dashboard")
    # ... and bills the requests at the price of the API the tracking calls reach
    ingest = [
        event
        for event in resources["ApiFunction"]["Properties"]["Events"].values()
        if event["Properties"].get("Path") == "/v1/{call}" and event["Properties"].get("Method") == "POST"
    ]
    assert [event["Type"] for event in ingest] == ["HttpApi"]
    assert inventory.api_type == "HTTP"
    assert inventory.function("functions/track").memory_mb > 0
    assert "TrackFunction.Ingest" in inventory.sqs_event_sources


def test_the_bill_adds_up_term_by_term(inventory):
    # Given a month's usage per lead
    bill = compute_bill(10_000, load_prices(), inventory, _usage())

    # Then the totals are the sums of their lines, and the parts make the whole
    assert bill.total() == pytest.approx(sum(line.dollars for line in bill.lines))
    assert bill.total(FIXED) + bill.total(PER_LEAD) + bill.total(SES) == pytest.approx(bill.total())
    assert bill.per_10k_leads == pytest.approx(bill.total(PER_LEAD))
    # and a line is its quantity at its price: 300,000 HTTP API requests at $1.00 per million
    (requests,) = [line for line in bill.lines if line.price_key.startswith("apigateway_")]
    assert requests.price_key == "apigateway_http_request"
    assert requests.quantity == 300_000
    assert requests.dollars == pytest.approx(0.30)
    # and SES's per-email fee stays out of the per-lead figure
    (email,) = [line for line in bill.lines if line.kind == SES]
    assert email.dollars == pytest.approx(10_000 * 0.2 * 0.1 / 1000)


def test_fixed_costs_do_not_grow_with_leads_and_per_lead_costs_grow_in_proportion(inventory):
    # Given the same usage billed for 10,000 and 1,000,000 leads
    prices = load_prices()
    small = compute_bill(10_000, prices, inventory, _usage())
    large = compute_bill(1_000_000, prices, inventory, _usage())

    # Then every fixed line is the same and every per-lead line is 100 times larger
    assert small.total(FIXED) == pytest.approx(large.total(FIXED)) and small.total(FIXED) > 0
    for a, b in zip(small.lines, large.lines, strict=True):
        assert (a.service, a.term, a.kind) == (b.service, b.term, b.kind)
        if a.kind == FIXED:
            assert b.dollars == pytest.approx(a.dollars)
        else:
            assert b.dollars == pytest.approx(100 * a.dollars)
    # and the metrics, alarms, secrets and dashboards are fixed, the requests and units per lead
    kinds = {line.service + " " + line.term.split(" (")[0]: line.kind for line in small.lines}
    assert kinds["CloudWatch custom metric series"] == FIXED
    assert kinds["CloudWatch alarms"] == FIXED
    assert kinds["Secrets Manager secrets"] == FIXED
    assert kinds["DynamoDB write request units"] == PER_LEAD
    assert kinds["Step Functions standard state transitions"] == PER_LEAD


def test_traces_are_billed_only_when_tracing_is_active_by_default(inventory):
    # Given the template's Tracing default, and the same deployment traced
    prices = load_prices()
    inventory_traced = type(inventory)(**{**inventory.__dict__, "tracing_default": "Active"})

    def traces(inv):
        (line,) = [line for line in compute_bill(10_000, prices, inv, _usage()).lines if line.service == "X-Ray"]
        return line.dollars

    # Then the default (Disabled) records no trace, an active one a trace per invocation
    assert inventory.tracing_default == "Disabled"
    assert traces(inventory) == 0
    assert traces(inventory_traced) == pytest.approx(10_000 * (30 + 26) * 5.0 / 1e6)


DEFINITION = {
    "StartAt": "Decide",
    "States": {
        "Decide": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${DecideArn}"},
            "ResultSelector": {"action.$": "$.Payload.action", "wake_at.$": "$.Payload.wake_at"},
            "ResultPath": "$.decision",
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.decision.action", "StringEquals": "email", "Next": "Send"},
                {"Variable": "$.decision.action", "StringEquals": "retargeting", "Next": "Queue"},
                {"Variable": "$.decision.action", "StringEquals": "wait", "Next": "Sleep"},
            ],
            "Default": "Done",
        },
        "Send": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${SendArn}"},
            "ResultPath": None,
            "Next": "Sleep",
        },
        "Queue": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": "${AudienceQueueUrl}"},
            "ResultPath": None,
            "Next": "Sleep",
        },
        "Sleep": {"Type": "Wait", "TimestampPath": "$.decision.wake_at", "Next": "Decide"},
        "Done": {"Type": "Succeed"},
    },
}


def test_the_timeline_walk_counts_every_state_entered():
    # Given a month of decisions: wait, an email, a retargeting hand-off, then exit
    decisions = [{"action": "wait"}, {"action": "email"}, {"action": "retargeting"}, {"action": "exit"}]

    # When they are walked through the definition
    walked = walk(DEFINITION, decisions)

    # Then each state entered is a transition: 3 for the wait, 4 per touch, 3 for the exit
    assert walked.transitions == 3 + 4 + 4 + 3
    assert walked.lambda_invocations == {"DecideArn": 4, "SendArn": 1}
    assert walked.sqs_messages == {"AudienceQueueUrl": 1}
    # and a month that ends waiting stops at the wait
    assert walk(DEFINITION, [{"action": "wait"}, {"action": "email"}]).transitions == 3 + 4


def test_an_execution_runs_its_month_with_the_deciding_function_and_stops_past_it():
    # Given a deciding function that waits a day, emails, waits ten days, then exits; the email fails once
    start = 1_741_000_000.0
    clock = FixedClock(start)
    decisions = iter(
        [
            {"action": "wait", "wake_at": "2025-03-04T11:06:40Z"},
            {"action": "email", "wake_at": "2025-03-14T11:06:40Z"},
            {"action": "exit", "wake_at": None},
        ]
    )
    called = []

    def invoke(function, payload):
        called.append((function, clock.timestamp()))
        if function == "SendArn":
            raise RuntimeError("SES refused")
        return next(decisions)

    definition = json.loads(json.dumps(DEFINITION))
    definition["States"]["Send"]["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Sleep"}]

    # When it runs for a month, and for five days only
    month = run_execution(definition, {"lead_id": "p1"}, invoke, clock, until=start + 30 * 86400)
    days = run_execution(
        definition, {"lead_id": "p1"}, lambda f, p: {"action": "wait", "wake_at": "2025-03-14T11:06:40Z"},
        FixedClock(start), until=start + 5 * 86400,
    )  # fmt: skip

    # Then every state entered counts, the failed email followed its Catch, and the clock followed the waits
    assert month.transitions == 3 + 4 + 3
    assert month.lambda_invocations == {"DecideArn": 3, "SendArn": 1}
    assert [f for f, _ in called] == ["DecideArn", "DecideArn", "SendArn", "DecideArn"]
    assert called[1][1] >= 1_741_086_400.0 and called[3][1] >= 1_741_950_400.0
    # and a wait beyond the period ends the month's run there
    assert days.transitions == 3


def test_a_tiny_replay_measures_each_lead_month_through_the_real_handlers(inventory):
    # Given eight leads' month of browser traffic (30 calls each)
    from nurture_tools.cost_replay import at_rate, measure_usage

    # When it is replayed through the API, track and enroll functions
    measured = measure_usage(PROJECT_DIR, inventory, leads=10_000, sample_leads=8, seed=3, api_requests=40)
    usage = at_rate(measured, 10_000)

    # Then every call was one API request the API accepted, and the track function stored each
    measured = usage.measured
    assert usage.per_lead["api_requests"] == 30
    assert measured["api_statuses"] == {200: measured["api_requests_replayed"]}
    assert measured["failed_records"] == 0
    # and each event cost at least the write of its own item, and the table holds the leads' items
    assert usage.per_lead["dynamodb_wru"] >= 30
    assert usage.per_lead["dynamodb_rru"] > 0
    assert usage.per_lead["table_bytes"] > 0
    # and each API request was queued: one SQS send each, plus a receive and a delete per track invocation
    track = usage.lambda_per_lead["functions/track"]
    assert usage.per_lead["sqs_requests"] >= 30 + 2 * track["invocations"]
    assert 0 < track["invocations"] <= 30
    # and the functions wrote their logs
    assert usage.lambda_per_lead["functions/api"]["log_bytes"] > 0
    # and the bill of it adds up
    bill = compute_bill(10_000, load_prices(), inventory, usage)
    assert bill.total() == pytest.approx(sum(line.dollars for line in bill.lines))
