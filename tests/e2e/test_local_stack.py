"""`nurture serve`'s stack with real clients: the official Segment SDK, HTTP, boto3."""

from __future__ import annotations

import base64
import json
import time

import pytest
from segment.analytics import Client

from nurture.ingest.api import sign_form
from tests.e2e.conftest import FORM_SECRET, WRITE_KEY

pytestmark = pytest.mark.slow


def _basic() -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "Content-Type": "application/json",
    }


def _sdk(stack) -> Client:
    errors = []
    client = Client(WRITE_KEY, host=stack.api_url, sync_mode=True, on_error=lambda e, batch: errors.append(e))
    client.errors = errors
    return client


def test_the_segment_sdk_builds_one_merged_scored_lead(stack):
    sdk = _sdk(stack)

    # Given an anonymous visitor who read pricing before identifying
    sdk.page(
        anonymous_id="anon-e2e-1", name="Pricing", properties={"path": "/pricing", "url": "https://example.com/pricing"}
    )
    # When they identify with the same anonymous id, then attend a webinar
    sdk.identify(
        "user-e2e-1",
        {
            "email": "Morgan@Stark-Fintech.com",
            "title": "Director of Revenue Operations",
            "industry": "Fintech",
            "employees": 1500,
            "country": "United States",
        },
        anonymous_id="anon-e2e-1",
    )
    sdk.track("user-e2e-1", "Webinar Attended", {"webinar_id": "pipeline-hygiene"})
    sdk.flush()
    assert sdk.errors == []
    stack.wait_until_ingested()

    # Then the lead, found by email, carries all three calls, scored on both axes
    status, lead = stack.lead("morgan@stark-fintech.com")
    assert status == 200
    assert lead["user_id"] == "user-e2e-1"
    assert lead["anonymous_ids"] == ["anon-e2e-1"]
    assert lead["fit"]["grade"] == "A"
    assert lead["engagement"]["score"] > 0
    rules = {row["rule"]: row for row in lead["engagement"]["explanation"]}
    assert set(rules) == {"pricing-page", "webinar-attended"}
    explained = sum(row["points_now"] for row in lead["engagement"]["explanation"])
    assert explained == pytest.approx(lead["engagement"]["score"], abs=0.01)
    assert len(lead["recent_events"]) >= 3


def test_an_event_is_scored_within_a_second_of_the_post(stack):
    # Given a known lead
    body = {"userId": "user-e2e-2", "traits": {"email": "quick@initech.io"}, "messageId": "e2e-fast-1"}
    stack.http("POST", "/v1/identify", json.dumps(body).encode(), _basic())
    stack.wait_until_ingested()

    # When a pricing view is posted
    started = time.monotonic()
    page = {"userId": "user-e2e-2", "properties": {"path": "/pricing"}, "messageId": "e2e-fast-2"}
    assert stack.http("POST", "/v1/page", json.dumps(page).encode(), _basic())[0] == 200
    while stack.lead("quick@initech.io")[1]["engagement"]["score"] == 0 and time.monotonic() - started < 10:
        time.sleep(0.02)

    # Then the lead shows its points (the local loop polls continuously; the
    # one-second figure is printed, not asserted, since machines vary)
    print(f"scored {time.monotonic() - started:.2f}s after the POST")
    assert stack.lead("quick@initech.io")[1]["engagement"]["score"] == 15


def test_sending_the_same_batch_twice_changes_nothing(stack):
    # Given a batch that has been ingested
    batch = json.dumps(
        {
            "batch": [
                {
                    "type": "identify",
                    "userId": "user-e2e-3",
                    "messageId": "dup-1",
                    "traits": {"email": "twice@hooli.com"},
                },
                {"type": "track", "userId": "user-e2e-3", "event": "Webinar Attended", "messageId": "dup-2"},
                {"type": "page", "userId": "user-e2e-3", "messageId": "dup-3", "properties": {"path": "/product/tour"}},
            ]
        }
    ).encode()
    assert stack.http("POST", "/v1/batch", batch, _basic())[0] == 200
    stack.wait_until_ingested()
    before = stack.table_items()

    # When the very same batch is sent again
    assert stack.http("POST", "/v1/batch", batch, _basic())[0] == 200
    stack.wait_until_ingested()

    # Then the person's lead, identities and events are exactly as they were.
    # (Only this person's items: other tests' timelines write when they will.
    # No call of this batch starts a timeline, whose own writes would land at
    # any moment: a pricing view's follow-up did, adding audience members
    # between the two reads.)
    def theirs(items):
        (lead_id,) = {item["lid"]["S"] for item in items if item["pk"]["S"] == "ID#user#user-e2e-3"}
        mine = [
            item for item in items if lead_id in (item["pk"]["S"].removeprefix("LEAD#"), item.get("lid", {}).get("S"))
        ]
        return sorted(mine, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    assert len(theirs(before)) >= 5  # the lead, its identities (user, email) and its events
    assert theirs(stack.table_items()) == theirs(before)


def test_a_malformed_event_is_refused_naming_the_field_and_not_stored(stack):
    # Given a track call without an event name
    body = json.dumps({"userId": "user-e2e-4", "messageId": "bad-1", "properties": {}}).encode()

    # When it is posted
    status, answer = stack.http("POST", "/v1/track", body, _basic())
    stack.wait_until_ingested()

    # Then it is a 400 naming the field, and nothing was stored
    assert status == 400
    assert answer["field"] == "event"
    assert not [item for item in stack.table_items() if item["sk"]["S"] == "EVT#bad-1"]


@pytest.mark.parametrize("forgery", ["forged", "stale"])
def test_a_forged_or_stale_form_signature_is_401(stack, forgery):
    body = json.dumps({"email": "mallory@example.com", "submission_id": f"f-{forgery}"}).encode()
    at = str(int(time.time() - (400 if forgery == "stale" else 0)))
    secret = FORM_SECRET if forgery == "stale" else "not-the-secret"
    headers = {
        "Content-Type": "application/json",
        "X-Nurture-Timestamp": at,
        "X-Nurture-Signature": "sha256=" + sign_form(secret, at, body),
    }

    status, answer = stack.http("POST", "/v1/forms/demo-request", body, headers)

    assert status == 401
    assert answer["field"] == ("X-Nurture-Timestamp" if forgery == "stale" else "X-Nurture-Signature")


def test_crossing_warm_and_hot_publishes_one_of_each(stack):
    stack.bus_events()  # drain what earlier tests published
    sdk = _sdk(stack)

    # Given an A-fit lead who becomes warm (pricing + ROI calculator) ...
    sdk.identify(
        "user-e2e-5",
        {
            "email": "taylor@acme-insure.com",
            "title": "VP Marketing",
            "industry": "Insurance",
            "employees": 3000,
            "country": "GB",
        },
    )
    sdk.page("user-e2e-5", properties={"path": "/pricing"})
    sdk.track("user-e2e-5", "ROI Calculator Completed")
    sdk.flush()
    stack.wait_until_ingested()
    assert stack.lead("taylor@acme-insure.com")[1]["lifecycle"]["stage"] == "warm"
    # ... and then hot (a signed demo request), with the demo form replayed
    body = json.dumps({"email": "taylor@acme-insure.com", "submission_id": "demo-77"}).encode()
    at = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Nurture-Timestamp": at,
        "X-Nurture-Signature": "sha256=" + sign_form(FORM_SECRET, at, body),
    }
    for _ in range(2):
        assert stack.http("POST", "/v1/forms/demo-request", body, headers)[0] == 202
    stack.wait_until_ingested()

    # Then the bus carried exactly one became_warm and one became_hot for the lead
    mine = [e["detail-type"] for e in stack.bus_events() if e["detail"].get("email") == "taylor@acme-insure.com"]
    assert mine.count("lead.became_warm") == 1
    assert mine.count("lead.became_hot") == 1
    assert stack.lead("taylor@acme-insure.com")[1]["lifecycle"]["stage"] == "hot"


def test_a_demo_request_gets_an_acknowledgement_and_a_sales_alert_at_once(stack):
    # Given sales listening on the alerts topic
    sqs, sns = stack.client("sqs"), stack.client("sns")
    inbox = sqs.create_queue(QueueName="sales-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.runtime.environment["SALES_ALERTS_TOPIC_ARN"], Protocol="sqs", Endpoint=inbox_arn)

    # When a signed demo request arrives
    body = json.dumps(
        {
            "email": "rita@wayne-fintech.com",
            "first_name": "Rita",
            "job_title": "VP Sales",
            "company": "Wayne Fintech",
            "submission_id": "demo-501",
        }
    ).encode()
    at = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Nurture-Timestamp": at,
        "X-Nurture-Signature": "sha256=" + sign_form(FORM_SECRET, at, body),
    }
    started = time.monotonic()
    assert stack.http("POST", "/v1/forms/demo-request", body, headers)[0] == 202

    # Then the acknowledgement is sent and sales is alerted, each once
    def answered():
        touches = [
            item for item in stack.table_items() if item["sk"]["S"].startswith("TOUCH#form-form-demo-request-demo-501#")
        ]
        return {item["step_id"]["S"]: item for item in touches if item["status"]["S"] == "sent"}

    while len(answered()) < 2 and time.monotonic() - started < 10:
        time.sleep(0.02)
    print(f"acknowledged and alerted {time.monotonic() - started:.2f}s after the webhook")
    sent = answered()
    assert set(sent) == {"acknowledgement", "sales-alert"}
    assert sent["acknowledgement"]["recipient"]["S"] == "rita@wayne-fintech.com"
    assert sent["acknowledgement"]["klass"]["S"] == "transactional"
    (message,) = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=2).get("Messages", [])
    alert = json.loads(json.loads(message["Body"])["Message"])
    assert (alert["type"], alert["email"], alert["title"]) == ("demo_request", "rita@wayne-fintech.com", "VP Sales")


def test_the_segment_sdk_loses_nothing_valid_when_one_call_of_its_batch_is_bad(stack, monkeypatch):
    from segment.analytics import request as segment_request

    # Given the official SDK, batching, and what it posts on the wire
    answers = []
    post = segment_request._session.post

    def recorded(url, **kwargs):
        response = post(url, **kwargs)
        answers.append((json.loads(kwargs["data"])["batch"], response.status_code, response.json()))
        return response

    monkeypatch.setattr(segment_request._session, "post", recorded)
    errors = []
    sdk = Client(WRITE_KEY, host=stack.api_url, upload_size=10, on_error=lambda e, batch: errors.append(e))

    # When it sends 9 good calls and one whose email trait is no address, as one batch
    for n in range(9):
        sdk.identify(f"user-batch-{n}", {"email": f"person{n}@batch-corp.com"})
    sdk.identify("user-batch-bad", {"email": "not an address"})
    sdk.flush()
    sdk.join()

    # Then the one request was answered 200 with the counts, so the SDK reported nothing lost
    assert len(answers) == 1 and len(answers[0][0]) == 10
    assert answers[0][1:] == (
        200,
        {
            "success": True,
            "accepted": 9,
            "rejected": 1,
            "errors": [
                {"index": 9, "field": "batch[9].traits.email", "message": "'not an address' is not an email address"}
            ],
        },
    )
    assert errors == []

    # And the nine are stored, the bad one is not
    stack.wait_until_ingested()
    assert all(stack.lead(f"person{n}@batch-corp.com")[0] == 200 for n in range(9))
    stored = str(stack.table_items())
    assert "person8@batch-corp.com" in stored and "user-batch-bad" not in stored
