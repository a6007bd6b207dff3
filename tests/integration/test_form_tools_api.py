"""Form tools' own deliveries through the API function under moto: Typeform's
and Tally's documented example deliveries and a Standard Webhooks delivery,
signed as each documents, are queued once checked; anything else is a 401 that
queues nothing. The API's clock is set near each example's own time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

import pytest
from werkzeug.test import Client

from nurture.core.clock import FixedClock, SystemClock, set_clock
from nurture_tools.local.apigw import ApiGateway
from nurture_tools.local.template import LocalStack
from tests.conftest import EVENTS_DIR, PROJECT_DIR
from tests.integration.conftest import TALLY_SECRET, TYPEFORM_SECRET, WEBINAR_SECRET

HOUR = 3600.0
TYPEFORM_SUBMITTED_AT = datetime.fromisoformat("2018-01-18T18:17:02+00:00").timestamp()
TALLY_CREATED_AT = datetime.fromisoformat("2023-06-28T15:00:21.889+00:00").timestamp()
NOW = 1_764_000_000
RETRY_AFTER = 5 * 60  # the first retry of each tool


@pytest.fixture
def api(deployed):
    from api.app import handler

    routes = LocalStack(PROJECT_DIR, deployed.session, prefix="routes").api_routes("ApiFunction")
    return Client(ApiGateway(routes, handler))


@pytest.fixture
def clock():
    """Sets the API's clock: clock(t) makes it t (Unix seconds)."""
    yield lambda timestamp: set_clock(FixedClock(timestamp))
    set_clock(SystemClock())


def _queued(deployed) -> list[dict]:
    sqs = deployed.client("sqs")
    messages = sqs.receive_message(QueueUrl=deployed.env["INGEST_QUEUE_URL"], MaxNumberOfMessages=10).get(
        "Messages", []
    )
    return [event for message in messages for event in json.loads(message["Body"])["events"]]


def _base64_hmac(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _typeform() -> tuple[bytes, dict[str, str]]:
    """Typeform's documented example payload, signed as Typeform documents."""
    body = (EVENTS_DIR / "typeform_form_response.json").read_bytes()
    signature = "sha256=" + _base64_hmac(TYPEFORM_SECRET.encode(), body)
    return body, {"Content-Type": "application/json", "Typeform-Signature": signature}


def _tally() -> tuple[bytes, dict[str, str]]:
    """Tally's documented example event as Tally sends it (JSON.stringify), signed as Tally documents."""
    event = json.loads((EVENTS_DIR / "tally_form_response.json").read_text())
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return body, {"Content-Type": "application/json", "Tally-Signature": _base64_hmac(TALLY_SECRET.encode(), body)}


def _registration(sent_at: float = NOW) -> tuple[bytes, dict[str, str]]:
    """A webinar registration signed as the Standard Webhooks specification signs."""
    body = json.dumps({"type": "registration.created", "data": {"email": "Ana@Globex.com", "company": "Globex"}})
    message_id, timestamp = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", str(int(sent_at))
    key = base64.b64decode(WEBINAR_SECRET.removeprefix("whsec_"))
    signature = _base64_hmac(key, f"{message_id}.{timestamp}.{body}".encode())
    headers = {"webhook-id": message_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}"}
    return body.encode(), {"Content-Type": "application/json", **headers}


@pytest.mark.parametrize(
    ("source", "delivery", "at", "email", "message_id"),
    [
        ("revops-assessment", _typeform, TYPEFORM_SUBMITTED_AT + 60, "laura@example.com", "LtWXD3crgy"),
        ("contact-us", _tally, TALLY_CREATED_AT + 60, "alice@example.com", "2wgx4n"),
        ("webinar-registration", _registration, NOW, "ana@globex.com", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
    ],
    ids=["typeform", "tally", "standard-webhooks"],
)
def test_a_documented_delivery_is_queued_as_form_submitted(
    api, deployed, clock, source, delivery, at, email, message_id
):
    # Given the tool's delivery, signed as the tool documents, arriving a minute after its own time
    clock(at)
    body, headers = delivery()

    # When it is posted to the source
    response = api.post(f"/v1/forms/{source}", data=body, headers=headers)

    # Then it is accepted and queued as one form_submitted event with the mapped email
    assert response.status_code == 202
    assert response.get_json()["message_id"] == f"form-{source}-{message_id}"
    (event,) = _queued(deployed)
    assert (event["n"], event["em"], event["id"]) == ("form_submitted", email, f"form-{source}-{message_id}")
    assert event["pr"]["form_source"] == source


def _tampered(delivery):
    def changed() -> tuple[bytes, dict[str, str]]:
        body, headers = delivery()
        changed = body.replace(b"example.com", b"example.org", 1).replace(b"Globex.com", b"Globex.org", 1)
        assert changed != body and len(changed) == len(body)
        return changed, headers

    return changed


def _unsigned(delivery, header: str):
    def stripped() -> tuple[bytes, dict[str, str]]:
        body, headers = delivery()
        return body, {name: value for name, value in headers.items() if name != header}

    return stripped


@pytest.mark.parametrize(
    ("source", "delivery", "at", "field"),
    [
        ("revops-assessment", _tampered(_typeform), TYPEFORM_SUBMITTED_AT + 60, "Typeform-Signature"),
        ("revops-assessment", _unsigned(_typeform, "Typeform-Signature"), TYPEFORM_SUBMITTED_AT, "Typeform-Signature"),
        ("revops-assessment", _typeform, TYPEFORM_SUBMITTED_AT + 13 * HOUR, "form_response.submitted_at"),
        ("contact-us", _tampered(_tally), TALLY_CREATED_AT + 60, "Tally-Signature"),
        ("contact-us", _unsigned(_tally, "Tally-Signature"), TALLY_CREATED_AT, "Tally-Signature"),
        ("contact-us", _tally, TALLY_CREATED_AT + 37 * HOUR, "createdAt"),
        ("webinar-registration", _tampered(_registration), NOW, "webhook-signature"),
        ("webinar-registration", _unsigned(_registration, "webhook-signature"), NOW, "webhook-signature"),
        ("webinar-registration", _registration, NOW + 6 * 60, "webhook-timestamp"),
    ],
    ids=[
        "typeform wrong signature",
        "typeform unsigned",
        "typeform replay outside window",
        "tally wrong signature",
        "tally unsigned",
        "tally replay outside window",
        "standard-webhooks wrong signature",
        "standard-webhooks unsigned",
        "standard-webhooks replay outside window",
    ],
)
def test_an_untrusted_delivery_is_401_naming_the_field_and_nothing_is_queued(
    api, deployed, clock, source, delivery, at, field
):
    clock(at)
    body, headers = delivery()

    response = api.post(f"/v1/forms/{source}", data=body, headers=headers)

    assert response.status_code == 401
    assert response.get_json()["field"] == field
    assert _queued(deployed) == []


@pytest.mark.parametrize(
    ("source", "delivery", "redelivery", "at"),
    [
        ("revops-assessment", _typeform, _typeform, TYPEFORM_SUBMITTED_AT + 60),
        ("contact-us", _tally, _tally, TALLY_CREATED_AT + 60),
        ("webinar-registration", _registration, lambda: _registration(NOW + RETRY_AFTER), NOW),
    ],
    ids=["typeform", "tally", "standard-webhooks"],
)
def test_a_duplicate_delivery_keeps_its_message_id(api, deployed, clock, source, delivery, redelivery, at):
    # Given a delivery accepted once
    clock(at)
    first = api.post(f"/v1/forms/{source}", data=delivery()[0], headers=delivery()[1])

    # When the tool delivers it again after its first retry delay (re-signed where the scheme signs a time)
    clock(at + RETRY_AFTER)
    body, headers = redelivery()
    again = api.post(f"/v1/forms/{source}", data=body, headers=headers)

    # Then both are queued with the same message id, which the track consumer applies once
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.get_json()["message_id"] == again.get_json()["message_id"]
    assert [event["id"] for event in _queued(deployed)] == [first.get_json()["message_id"]] * 2
