"""The API function under moto, driven through API Gateway proxy events exactly
as API Gateway (binary media types */*) sends them."""

from __future__ import annotations

import base64
import gzip
import json
import time

import pytest
from nurture.ingest import sign_form
from nurture.local.apigw import ApiGateway
from nurture.local.template import LocalStack
from werkzeug.test import Client

from tests.conftest import PROJECT_DIR
from tests.integration.conftest import ADMIN_KEY, FORM_SECRET, WRITE_KEY


@pytest.fixture
def api(deployed):
    from api.app import app

    routes = LocalStack(PROJECT_DIR, deployed.session, prefix="routes").api_routes("ApiFunction")
    return Client(ApiGateway(routes, app))


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _queued(deployed) -> list[dict]:
    sqs = deployed.client("sqs")
    messages = sqs.receive_message(QueueUrl=deployed.env["INGEST_QUEUE_URL"], MaxNumberOfMessages=10).get(
        "Messages", []
    )
    return [event for message in messages for event in json.loads(message["Body"])["events"]]


def test_a_batch_is_on_the_queue_before_the_response(api, deployed):
    # Given a Segment batch
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "Webinar Attended", "messageId": "m1"},
            {"type": "page", "anonymousId": "a1", "messageId": "m2", "properties": {"path": "/pricing"}},
        ]
    }

    # When it is posted with the write key
    response = api.post("/v1/batch", json=body, headers=_basic(WRITE_KEY))

    # Then Segment's answer comes back and both events are already queued
    assert response.status_code == 200
    assert response.get_json() == {"success": True}
    assert [event["id"] for event in _queued(deployed)] == ["m1", "m2"]


def test_a_gzip_body_is_accepted(api, deployed):
    body = gzip.compress(json.dumps({"userId": "u1", "traits": {"email": "a@b.co"}, "messageId": "g1"}).encode())

    response = api.post(
        "/v1/identify",
        data=body,
        headers={**_basic(WRITE_KEY), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )

    assert response.status_code == 200
    assert [event["id"] for event in _queued(deployed)] == ["g1"]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({}, "Authorization"),
        ({"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()}, "Authorization"),
    ],
)
def test_tracking_without_a_valid_write_key_is_401(api, deployed, headers, field):
    response = api.post("/v1/track", json={"userId": "u1", "event": "x"}, headers=headers)

    assert response.status_code == 401
    assert response.get_json()["field"] == field
    assert _queued(deployed) == []


def test_a_malformed_event_is_400_naming_the_field_and_nothing_is_queued(api, deployed):
    # Given a batch whose second call has neither userId nor anonymousId
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "ok", "messageId": "m1"},
            {"type": "track", "event": "orphan", "messageId": "m2"},
        ]
    }

    # When it is posted
    response = api.post("/v1/batch", json=body, headers=_basic(WRITE_KEY))

    # Then the answer names the field and no event was queued
    assert response.status_code == 400
    assert response.get_json()["field"] == "batch[1].userId"
    assert _queued(deployed) == []


def test_an_event_over_32_kb_is_413(api, deployed):
    body = {"userId": "u1", "event": "big", "properties": {"blob": "x" * 33_000}}

    response = api.post("/v1/track", json=body, headers=_basic(WRITE_KEY))

    assert response.status_code == 413
    assert _queued(deployed) == []


def _signed(body: bytes, secret: str = FORM_SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    return {
        "X-Nurture-Timestamp": timestamp,
        "X-Nurture-Signature": "sha256=" + sign_form(secret, timestamp, body),
        "Content-Type": "application/json",
    }


def test_a_signed_form_is_accepted_and_queued_as_form_submitted(api, deployed):
    body = json.dumps({"email": "Dee@Wayne-Corp.com", "job_title": "Head of RevOps", "submission_id": "s-1"}).encode()

    response = api.post("/v1/forms/demo-request", data=body, headers=_signed(body))

    assert response.status_code == 202
    (event,) = _queued(deployed)
    assert event["n"] == "form_submitted"
    assert event["em"] == "dee@wayne-corp.com"
    assert event["pr"]["form_id"] == "demo-request"


@pytest.mark.parametrize("forgery", ["wrong secret", "stale", "tampered body"])
def test_a_forged_or_stale_form_signature_is_401(api, deployed, forgery):
    body = json.dumps({"email": "eve@example.com"}).encode()
    headers = {
        "wrong secret": lambda: _signed(body, secret="guess"),
        "stale": lambda: _signed(body, at=time.time() - 301),
        "tampered body": lambda: _signed(b'{"email": "other@example.com"}'),
    }[forgery]()

    response = api.post("/v1/forms/demo-request", data=body, headers=headers)

    assert response.status_code == 401
    assert response.get_json()["field"] in ("X-Nurture-Signature", "X-Nurture-Timestamp")
    assert _queued(deployed) == []


def test_a_form_in_an_unsupported_media_type_is_415(api, deployed):
    body = b"<email>x@y.com</email>"
    headers = {**_signed(body), "Content-Type": "application/xml"}

    response = api.post("/v1/forms/demo-request", data=body, headers=headers)

    assert response.status_code == 415
    assert response.get_json()["field"] == "Content-Type"


def test_a_form_without_an_email_is_422_naming_the_submission_field(api, deployed):
    body = b"first_name=Ann&company=Acme"
    headers = {**_signed(body), "Content-Type": "application/x-www-form-urlencoded"}

    response = api.post("/v1/forms/demo-request", data=body, headers=headers)

    assert response.status_code == 422
    assert response.get_json()["field"] == "email"


def test_the_lead_api_needs_the_admin_key(api):
    assert api.get("/v1/leads/someone@example.com").status_code == 401
    wrong = api.get("/v1/leads/someone@example.com", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_an_unknown_lead_is_404(api):
    response = api.get("/v1/leads/nobody@example.com", headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    assert response.status_code == 404
    assert response.get_json()["field"] == "lead"


# --- consent links: unsubscribe and preferences ---------------------------------------


@pytest.fixture
def subscriber(deployed) -> tuple[str, str]:
    """A stored lead and the signed token its emails' links carry."""
    from nurture import wiring
    from nurture.domain import Lead
    from nurture.email import unsubscribe_token

    wiring.get_store().save_lead(Lead(lead_id="lead-ana", email="ana@globex.com"), 0)
    return "lead-ana", unsubscribe_token(wiring.get_unsubscribe_keys().keys()["value"], "lead-ana")


def _stored(lead_id: str):
    from nurture import wiring

    return wiring.get_store().get_leads([lead_id], consistent=True)[lead_id]


def test_opening_the_unsubscribe_link_only_asks(api, subscriber):
    lead_id, token = subscriber

    response = api.get(f"/v1/unsubscribe/{token}")

    assert response.status_code == 200 and b'<form method="post"' in response.data
    assert _stored(lead_id).consent == "subscribed"


def test_one_click_unsubscribe_opts_the_lead_out(api, subscriber):
    lead_id, token = subscriber

    response = api.post(
        f"/v1/unsubscribe/{token}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert _stored(lead_id).consent == "unsubscribed"


def test_the_preference_page_shows_the_configured_topics(api, subscriber):
    _, token = subscriber

    response = api.get(f"/v1/preferences/{token}")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert b'name="topic" value="forecasting" checked' in response.data


def test_saving_the_preference_form_stores_the_leads_choices(api, subscriber):
    # Given the lead's preference page, When it keeps forecasting only and chooses a weekly frequency
    lead_id, token = subscriber
    response = api.post(
        f"/v1/preferences/{token}",
        data="topic=forecasting&frequency=weekly&pause=0",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    # Then the page confirms and the lead holds the choices its timelines apply
    assert response.status_code == 200 and b"Saved." in response.data
    preferences = _stored(lead_id).preferences
    assert preferences["frequency"] == "weekly"
    assert "forecasting" not in preferences["topics_off"] and "pricing" in preferences["topics_off"]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "field"),
    [
        ("/v1/preferences/{token}", '{"topic": "x"}', "application/json", 415, "Content-Type"),
        ("/v1/preferences/{token}", "topic=golf", "application/x-www-form-urlencoded", 400, "topic"),
        ("/v1/preferences/forged.token", "pause=0", "application/x-www-form-urlencoded", 401, "token"),
    ],
)
def test_a_bad_preference_request_changes_nothing_and_names_the_field(
    api, subscriber, path, body, content_type, status, field
):
    lead_id, token = subscriber

    response = api.post(path.format(token=token), data=body, headers={"Content-Type": content_type})

    assert (response.status_code, response.get_json()["field"]) == (status, field)
    assert _stored(lead_id).preferences == {}
