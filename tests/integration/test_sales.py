"""Sales hand-off, outcomes, timers and erasure: the functions under moto with
the template's resources, a real HTTP endpoint standing in for the CRM."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime

import pytest
from werkzeug.test import Client

from nurture import wiring
from nurture.ingest.api import sign_form
from nurture_tools.local.apigw import ApiGateway
from nurture_tools.local.template import LocalStack
from tests.conftest import PROJECT_DIR
from tests.integration.conftest import ADMIN_KEY, ingest_record

CRM_SECRET = "crm-signing-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ICP = {
    "email": "dana@globex.com",
    "title": "VP of Marketing",
    "phone": "+14155550123",
    "company": {"name": "Globex", "industry": "Software", "employee_count": 350},
    "address": {"country": "United States"},
}


class CrmEndpoint(http.server.ThreadingHTTPServer):
    """A CRM webhook receiver on 127.0.0.1: records each POST, answers `statuses` in turn (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.received.append((dict(self.headers), body))
                self.send_response(endpoint.statuses.pop(0) if endpoint.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def deliveries(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def crm(deployed):
    endpoint = CrmEndpoint()
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    deployed.client("secretsmanager").put_secret_value(
        SecretId=deployed.env["CRM_WEBHOOK_SECRET_ARN"],
        SecretString=json.dumps(
            {"url": f"http://127.0.0.1:{endpoint.server_port}/hooks", "signing_secret": CRM_SECRET}
        ),
    )
    yield endpoint
    endpoint.shutdown()
    endpoint.server_close()


@pytest.fixture
def sales_inbox(deployed) -> str:
    """A queue subscribed to the sales SNS topic."""
    sqs = deployed.client("sqs")
    url = sqs.create_queue(QueueName="sales-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployed.client("sns").subscribe(TopicArn=deployed.env["SALES_ALERTS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn)
    return url


def inbox(deployed, url: str) -> list[dict]:
    messages = deployed.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]


@pytest.fixture
def api(deployed):
    from api.app import handler

    routes = LocalStack(PROJECT_DIR, deployed.session, prefix="routes").api_routes("ApiFunction")
    return Client(ApiGateway(routes, handler))


def hot_lead(deployed) -> tuple[str, dict]:
    """Dana, an ideal-customer lead who becomes hot; returns her id and the lead.became_hot event."""
    from track.app import handler as track

    calls = [
        {"type": "identify", "userId": "u-dana", "messageId": "d-identify", "traits": ICP},
        {"type": "page", "userId": "u-dana", "messageId": "d-pricing", "properties": {"path": "/pricing"}},
        {"type": "page", "userId": "u-dana", "messageId": "d-case", "properties": {"path": "/customers/fintech"}},
        {"type": "track", "userId": "u-dana", "messageId": "d-roi", "event": "ROI Calculator Completed"},
        {"type": "track", "userId": "u-dana", "messageId": "d-webinar", "event": "Webinar Attended"},
        {"type": "track", "userId": "u-dana", "messageId": "d-reg", "event": "Webinar Registered"},
    ]
    track({"Records": [ingest_record(*calls)]}, None)
    (lead_id,) = wiring.get_store().lookup_identities(["email#dana@globex.com"]).values()
    (hot,) = [e for e in deployed.bus_events() if e["detail-type"] == "lead.became_hot"]
    return lead_id, hot


def schedules(deployed) -> dict[str, dict]:
    scheduler = deployed.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules()["Schedules"]]
    return {name: scheduler.get_schedule(Name=name) for name in names}


def test_a_hot_lead_is_handed_to_the_crm_and_sns_once_with_an_sla_timer(deployed, crm, sales_inbox):
    from handoff.app import handler

    # Given a lead that just became hot
    lead_id, hot = hot_lead(deployed)

    # When the hand-off function gets lead.became_hot, and EventBridge delivers it twice
    assert handler(hot, None)["outcome"] == "handed_off"
    assert handler(hot, None)["outcome"] == "duplicate"

    # Then the CRM got one signed hand-off with the lead's context
    ((headers, body),) = crm.received
    assert headers["X-Nurture-Signature"] == "sha256=" + sign_form(CRM_SECRET, headers["X-Nurture-Timestamp"], body)
    (delivery,) = crm.deliveries()
    assert (delivery["type"], delivery["data"]["lead_id"], delivery["data"]["fit"]["grade"]) == (
        "handoff",
        lead_id,
        "A",
    )
    assert delivery["data"]["engagement"]["top_reasons"][0]["rule"] == "roi-calculator"
    # ... and the sales topic got it once too
    assert [m["handoff_id"] for m in inbox(deployed, sales_inbox)] == [delivery["id"]]
    # ... and one one-time schedule, deleting itself after it fires, invokes the timer function 4 hours later
    ((name, schedule),) = schedules(deployed).items()
    assert name.startswith(f"nurture-prod-sla-{lead_id}")
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"].endswith(":function:test-SalesTimerFunction")
    assert schedule["Target"]["DeadLetterConfig"]["Arn"].endswith("test-SalesTimerDeadLetterQueue")
    handed_off_at = json.loads(schedule["Target"]["Input"])["handed_off_at"]
    due = datetime.fromtimestamp(handed_off_at + 4 * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert schedule["ScheduleExpression"] == f"at({due})"
    assert "lead.handed_off" in [e["detail-type"] for e in deployed.bus_events()]


def test_the_sla_timer_escalates_an_unanswered_hand_off(deployed, crm):
    from handoff.app import handler
    from sales_timers.app import handler as timer

    # Given a hand-off sales has not answered
    _, hot = hot_lead(deployed)
    handler(hot, None)
    ((schedule),) = schedules(deployed).values()

    # When its schedule fires
    result = timer(json.loads(schedule["Target"]["Input"]), None)

    # Then it is escalated, to the CRM and on the bus
    assert result["outcome"] == "escalated"
    assert [d["type"] for d in crm.deliveries()] == ["handoff", "handoff_escalation"]
    assert "lead.handoff_escalated" in [e["detail-type"] for e in deployed.bus_events()]


def test_a_crm_outage_leaves_the_hand_off_to_eventbridges_retry(deployed, crm):
    from handoff.app import handler

    # Given a CRM answering 503 to every attempt of the first delivery
    _, hot = hot_lead(deployed)
    crm.statuses = [503, 503, 503, 503]

    # When the hand-off fails, and EventBridge retries the event
    with pytest.raises(Exception, match="503"):
        handler(hot, None)
    assert handler(hot, None)["outcome"] == "handed_off"

    # Then the retry delivered it
    assert [d["type"] for d in crm.deliveries()] == ["handoff"] * 5


def queued_to_track(deployed) -> None:
    """Consume what the API put on the ingest queue with the track function."""
    from track.app import handler as track

    sqs = deployed.client("sqs")
    messages = sqs.receive_message(QueueUrl=deployed.env["INGEST_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]
    assert track({"Records": records}, None) == {"batchItemFailures": []}


def test_a_rejection_recycles_the_lead_and_its_cool_down_ends_in_lead_recycled(deployed, api):
    from handoff.app import handler
    from sales_timers.app import handler as timer

    # Given a hot lead
    lead_id, _ = hot_lead(deployed)

    # When sales rejects it through the API
    body = {"outcome_id": "sf-opp-1", "outcome": "rejected", "reason": "bad_timing", "rep": "sam@vendor.com"}
    response = api.post(f"/v1/leads/{lead_id}/outcome", json=body, headers=ADMIN)
    queued_to_track(deployed)

    # Then the API accepted it, and the track consumer moved the lead to recycled
    assert response.status_code == 202
    assert response.get_json()["outcome_id"] == "sf-opp-1"
    lead = wiring.get_store().get_leads([lead_id])[lead_id]
    assert (lead.lifecycle, lead.sales["rejection_reason"]) == ("recycled", "bad_timing")

    # When the stage change reaches the hand-off function, and its cool-down schedule fires
    (to_recycled,) = [
        e
        for e in deployed.bus_events()
        if e["detail-type"] == "lead.stage_changed" and e["detail"]["to_stage"] == "recycled"
    ]
    handler(to_recycled, None)
    ((name, schedule),) = schedules(deployed).items()
    assert name.startswith(f"nurture-prod-recycle-{lead_id}")
    timer(json.loads(schedule["Target"]["Input"]), None)

    # Then lead.recycled is published (the recycle track enrolls on it)
    (recycled,) = [e for e in deployed.bus_events() if e["detail-type"] == "lead.recycled"]
    assert (recycled["detail"]["lead_id"], recycled["detail"]["reason"]) == (lead_id, "bad_timing")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"outcome_id": "o-1", "outcome": "rejected", "reason": "busy"}, 400, "reason"),
        ({"outcome": "accepted"}, 400, "outcome_id"),
        ({"outcome_id": "o-1", "outcome": "won", "revenue": 10}, 400, "currency"),
    ],
)
def test_an_invalid_outcome_is_refused_naming_the_field(deployed, api, body, status, field):
    lead_id, _ = hot_lead(deployed)

    response = api.post(f"/v1/leads/{lead_id}/outcome", json=body, headers=ADMIN)

    assert (response.status_code, response.get_json()["field"]) == (status, field)


def test_an_outcome_needs_the_admin_key(deployed, api):
    response = api.post("/v1/leads/p1/outcome", json={"outcome_id": "o", "outcome": "accepted"})

    assert (response.status_code, response.get_json()["field"]) == (401, "Authorization")


def test_an_outcome_for_an_unknown_lead_is_not_found(deployed, api):
    response = api.post(
        "/v1/leads/nobody@globex.com/outcome", json={"outcome_id": "o", "outcome": "accepted"}, headers=ADMIN
    )

    assert response.status_code == 404


def test_next_fields_asks_for_what_is_still_unknown(deployed, api):
    hot_lead(deployed)

    response = api.get("/v1/leads/dana@globex.com/next-fields?form=demo-request", headers=ADMIN)

    assert response.status_code == 200
    assert response.get_json()["fields"] == ["product_interest"]


def test_next_fields_accepts_the_form_sources_key(deployed, api):
    response = api.get(
        "/v1/leads/someone@new.com/next-fields?form=content-download", headers={"X-Nurture-Key": "test-form-secret"}
    )

    assert (response.status_code, response.get_json()["fields"]) == (200, ["first_name", "company"])


def test_a_public_form_key_cannot_tell_whether_an_email_is_a_lead(deployed, api):
    # Given a hot lead, and the content-download key that pages carry in their URLs
    hot_lead(deployed)
    public = {"X-Nurture-Key": "test-form-secret"}

    # When a page asks about the lead's email and about a stranger's
    known = api.get("/v1/leads/dana@globex.com/next-fields?form=content-download", headers=public)
    stranger = api.get("/v1/leads/nobody@globex.com/next-fields?form=content-download", headers=public)

    # Then the answers are the same, with no lead id
    assert known.status_code == stranger.status_code == 200
    assert (
        known.get_json()
        == stranger.get_json()
        == {"form": "content-download", "fields": ["first_name", "company"], "max": 2}
    )


def test_erasure_leaves_only_the_tombstone_in_the_table(deployed, api):
    # Given a hot lead with events and a hand-off touch
    from handoff.app import handler

    lead_id, hot = hot_lead(deployed)
    handler(hot, None)

    # When it is erased through the API
    response = api.delete("/v1/leads/dana@globex.com", headers=ADMIN)

    # Then the table holds nothing but the hashed tombstones
    assert response.status_code == 200
    items = deployed.client("dynamodb").scan(TableName=deployed.env["TABLE_NAME"])["Items"]
    assert {item["sk"]["S"] for item in items} == {"TOMBSTONE"}
    assert "dana@globex.com" not in json.dumps(items)
    # ... the audiences are told (hashed), and the erasure is on the bus
    sqs = deployed.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=deployed.env["AUDIENCE_QUEUE_URL"])["Messages"]
    assert set(json.loads(message["Body"])["remove"]["identities"]) == {"meta", "google", "linkedin"}
    assert [e["detail"]["lead_id"] for e in deployed.bus_events() if e["detail-type"] == "lead.erased"] == [lead_id]
    # ... and the lead is gone
    assert api.get("/v1/leads/dana@globex.com", headers=ADMIN).status_code == 404
