"""Form tools' own webhook signatures and payload shapes, checked against each
tool's own documentation:

- Standard Webhooks: the signing test vector of the specification's reference
  library (github.com/standard-webhooks/standard-webhooks,
  libraries/python/tests/test_webhooks.py, test_sign_function) and the
  verification rules of spec/standard-webhooks.md.
- Typeform: the example payload of typeform.com/developers/webhooks/example-payload/
  (tests/events/typeform_form_response.json), signed as
  typeform.com/developers/webhooks/secure-your-webhooks/ shows.
- Tally: the example webhook event of tally.so/help/webhooks
  (tests/events/tally_form_response.json), signed as its Express.js example
  shows: base64 HMAC-SHA256 of JSON.stringify(payload), the body Tally sends.

Signatures here are computed the way each document shows, not with the code
under test. The clock (`now`) is set near each example's own time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import yaml

from nurture.config.loader import FormSource, load_config
from nurture.core.errors import AuthenticationError, ConfigError
from nurture.ingest.api import Ingestor
from nurture.ingest.form_tools import TOOLS, tally_submission, typeform_submission, whsec
from tests.conftest import EVENTS_DIR, PROJECT_DIR
from tests.unit.builders import FakeKeys, ListQueue, load_event

HOUR = 3600.0
TYPEFORM_SECRET = "typeform-test-secret-4c1d"
TALLY_SECRET = "tally-test-secret-9e27"
WEBINAR_SECRET = "whsec_" + base64.b64encode(b"webinar-test-key-0123456789ab").decode()
KEYS = {"typeform_signing": TYPEFORM_SECRET, "tally_signing": TALLY_SECRET, "webinar_signing": WEBINAR_SECRET}

# The Standard Webhooks reference library's signing test vector.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


TYPEFORM_SUBMITTED_AT = at("2018-01-18T18:17:02Z")
TALLY_CREATED_AT = at("2023-06-28T15:00:21.889Z")


def base64_hmac(secret: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def typeform_body(**hidden: str) -> bytes:
    """Typeform's documented example delivery, byte for byte (or with hidden fields added)."""
    if not hidden:
        return (EVENTS_DIR / "typeform_form_response.json").read_bytes()
    document = load_event("typeform_form_response.json")
    document["form_response"]["hidden"].update(hidden)
    return json.dumps(document, indent=2).encode()


def typeform_headers(body: bytes, secret: str = TYPEFORM_SECRET) -> dict[str, str]:
    """As Typeform documents: sha256= and the base64 HMAC-SHA256 of the payload."""
    return {"Content-Type": "application/json", "Typeform-Signature": "sha256=" + base64_hmac(secret.encode(), body)}


def tally_body(document: dict[str, Any] | None = None) -> bytes:
    """Tally's documented example event as JSON.stringify writes it: compact, in order."""
    document = document if document is not None else load_event("tally_form_response.json")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def tally_with_field(**field: Any) -> bytes:
    document = load_event("tally_form_response.json")
    document["data"]["fields"].append(field)
    return tally_body(document)


def tally_headers(body: bytes, secret: str = TALLY_SECRET) -> dict[str, str]:
    """As Tally documents: the base64 HMAC-SHA256 of the payload."""
    return {"Content-Type": "application/json", "Tally-Signature": base64_hmac(secret.encode(), body)}


def sw_headers(body: bytes, timestamp: int, message_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W") -> dict[str, str]:
    """As the Standard Webhooks specification signs: v1,<base64 HMAC of "{id}.{timestamp}.{body}">."""
    key = base64.b64decode(WEBINAR_SECRET.removeprefix("whsec_"))
    signature = base64_hmac(key, f"{message_id}.{timestamp}.".encode() + body)
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{signature}"}


def one_byte_changed(body: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and body.count(old) == 1
    return body.replace(old, new)


@pytest.fixture
def queue() -> ListQueue:
    return ListQueue()


@pytest.fixture
def ingestor(config, queue) -> Ingestor:
    return Ingestor(config, FakeKeys(KEYS), queue)


def rejected(call) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        call()
    assert caught.value.status == 401
    return caught.value


# --- Standard Webhooks ------------------------------------------------------------------

STANDARD = TOOLS["standard-webhooks"]
SW_HEADERS = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TIMESTAMP), "webhook-signature": SW_SIGNATURE}


def test_standard_webhooks_reference_vector_verifies():
    # Given the reference library's secret, message id, timestamp, payload and expected signature
    # When the delivery is received ten seconds after its timestamp
    submission = STANDARD.receive(SW_SECRET, SW_BODY, SW_HEADERS, SW_TIMESTAMP + 10, None)

    # Then the payload is the submission, with the message id as its id
    assert submission["test"] == 2432232314
    assert submission["webhook-id"] == SW_ID


def test_standard_webhooks_any_one_listed_signature_suffices():
    # Given a signature list (key rotation) where only the last v1 entry is right
    signatures = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,{SW_SIGNATURE[3:]} {SW_SIGNATURE}"
    headers = {**SW_HEADERS, "webhook-signature": signatures}

    # When it is received, Then it verifies
    assert STANDARD.receive(SW_SECRET, SW_BODY, headers, SW_TIMESTAMP, None)["test"] == 2432232314


def test_standard_webhooks_right_value_under_another_version_is_refused():
    # Given the right signature labelled as an asymmetric (v1a) one
    headers = {**SW_HEADERS, "webhook-signature": "v1a," + SW_SIGNATURE[3:]}

    # When it is received, Then it is refused
    error = rejected(lambda: STANDARD.receive(SW_SECRET, SW_BODY, headers, SW_TIMESTAMP, None))
    assert error.field == "webhook-signature"


@pytest.mark.parametrize(
    ("secret", "body", "headers", "field"),
    [
        (SW_SECRET, b'{"test": 2432232315}', SW_HEADERS, "webhook-signature"),
        ("whsec_" + base64.b64encode(b"another key").decode(), SW_BODY, SW_HEADERS, "webhook-signature"),
        (SW_SECRET, SW_BODY, {**SW_HEADERS, "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJeK"}, "webhook-signature"),
        (SW_SECRET, SW_BODY, {**SW_HEADERS, "webhook-timestamp": str(SW_TIMESTAMP + 1)}, "webhook-signature"),
        (SW_SECRET, SW_BODY, {**SW_HEADERS, "webhook-timestamp": "yesterday"}, "webhook-timestamp"),
        (None, SW_BODY, SW_HEADERS, "webhook-signature"),
        ("whsec_not base64!", SW_BODY, SW_HEADERS, "webhook-signature"),
    ],
    ids=[
        "body one byte changed",
        "wrong secret",
        "other id",
        "other timestamp",
        "bad timestamp",
        "no secret",
        "bad secret",
    ],
)
def test_standard_webhooks_refuses_what_was_not_signed(secret, body, headers, field):
    # Given the reference vector with one thing changed, received within the tolerance
    # When it is received
    error = rejected(lambda: STANDARD.receive(secret, body, headers, SW_TIMESTAMP + 1, None))

    # Then it is refused naming the header
    assert error.field == field


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_webhooks_missing_header_is_named(missing):
    headers = {name: value for name, value in SW_HEADERS.items() if name != missing}

    error = rejected(lambda: STANDARD.receive(SW_SECRET, SW_BODY, headers, SW_TIMESTAMP, None))

    assert error.field == missing


@pytest.mark.parametrize(("offset", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_standard_webhooks_timestamp_tolerance_is_five_minutes_either_way(offset, accepted):
    # Given the reference vector received `offset` seconds from its timestamp
    def receive():
        return STANDARD.receive(SW_SECRET, SW_BODY, SW_HEADERS, SW_TIMESTAMP + offset, None)

    # Then within five minutes it verifies; beyond, the timestamp header is named
    if accepted:
        assert receive()["webhook-id"] == SW_ID
    else:
        assert rejected(receive).field == "webhook-timestamp"


def test_standard_webhooks_headers_are_found_whatever_their_case():
    headers = {"Webhook-Id": SW_ID, "WEBHOOK-TIMESTAMP": str(SW_TIMESTAMP), "Webhook-Signature": SW_SIGNATURE}

    assert STANDARD.receive(SW_SECRET, SW_BODY, headers, SW_TIMESTAMP, None)["test"] == 2432232314


def test_whsec_makes_a_standard_webhooks_secret_from_any_secret_text():
    # Given the local stack's form secret
    secret = whsec("dev-form-secret")

    # Then it is whsec_ and the text's bytes in base64, and a whsec_ secret is kept as it is
    assert secret.startswith("whsec_")
    assert base64.b64decode(secret.removeprefix("whsec_")) == b"dev-form-secret"
    assert whsec(SW_SECRET) == SW_SECRET


def test_a_standard_webhooks_registration_is_queued_and_its_retry_keeps_the_message_id(ingestor, queue):
    # Given a webinar registration signed as the specification signs
    now = 1_764_000_000
    registration = {
        "type": "registration.created",
        "timestamp": "2025-11-24T16:00:00Z",
        "data": {
            "email": "Ana.Lopez@Globex.com",
            "first_name": "Ana",
            "company": "Globex",
            "job_title": "VP Marketing",
        },
    }
    body = json.dumps(registration).encode()

    # When it is delivered, and delivered again a minute later with a new timestamp and signature
    first = ingestor.form("webinar-registration", body, sw_headers(body, now), {}, now)
    again = ingestor.form("webinar-registration", body, sw_headers(body, now + 60), {}, now + 60)

    # Then both carry the webhook-id as message id, and the mapped traits
    assert first == again == "form-webinar-registration-msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    assert queue.events[0].traits == {
        "email": "ana.lopez@globex.com",
        "first_name": "Ana",
        "company": "Globex",
        "title": "VP Marketing",
    }


# --- Typeform ---------------------------------------------------------------------------

TYPEFORM = TOOLS["typeform"]


def test_typeform_documented_example_verifies_and_maps(ingestor, queue):
    # Given Typeform's example payload, signed as Typeform documents
    body = typeform_body()

    # When it arrives a minute after it was submitted
    message_id = ingestor.form("revops-assessment", body, typeform_headers(body), {}, TYPEFORM_SUBMITTED_AT + 60)

    # Then one form_submitted event is queued, mapped by the questions' refs, with Typeform's event id
    (event,) = queue.events
    assert message_id == event.message_id == "form-revops-assessment-LtWXD3crgy"
    assert (event.name, event.source, event.email) == ("form_submitted", "form:revops-assessment", "laura@example.com")
    assert event.traits == {"email": "laura@example.com", "first_name": "Laura"}
    assert event.properties["user_id"] == "abc123456"  # a hidden field
    assert event.properties["readable_ref_picture_choice"] == "London, Sydney"
    assert event.properties["token"] == "a3a12ec67a1365927098a606107fac15"
    assert event.properties["form_id"] == "revops-assessment"


def test_typeform_body_changed_by_one_byte_is_refused(ingestor, queue):
    body = typeform_body()
    headers = typeform_headers(body)
    changed = one_byte_changed(body, b"laura@example.com", b"laura@example.org")

    error = rejected(lambda: ingestor.form("revops-assessment", changed, headers, {}, TYPEFORM_SUBMITTED_AT + 60))

    assert error.field == "Typeform-Signature"
    assert queue.events == []


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: typeform_headers(body, secret="another-secret"),
        lambda body: {"Typeform-Signature": "sha256=" + hmac.new(TYPEFORM_SECRET.encode(), body, "sha256").hexdigest()},
        lambda body: {"Typeform-Signature": base64_hmac(TYPEFORM_SECRET.encode(), body)},
        lambda body: {"Content-Type": "application/json"},
    ],
    ids=["wrong secret", "hex digest", "no sha256= prefix", "unsigned"],
)
def test_typeform_delivery_not_signed_as_documented_is_refused(ingestor, queue, headers):
    body = typeform_body()

    error = rejected(lambda: ingestor.form("revops-assessment", body, headers(body), {}, TYPEFORM_SUBMITTED_AT + 60))

    assert error.field == "Typeform-Signature"
    assert queue.events == []


def test_typeform_signature_header_is_found_whatever_its_case(ingestor, queue):
    body = typeform_body()
    headers = {"typeform-signature": typeform_headers(body)["Typeform-Signature"]}

    ingestor.form("revops-assessment", body, headers, {}, TYPEFORM_SUBMITTED_AT + 60)

    assert len(queue.events) == 1


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (10 * HOUR + 35 * 60, True),  # the last of Typeform's retries
        (12 * HOUR, True),
        (12 * HOUR + 1, False),
        (-300, True),
        (-301, False),  # from the future, beyond clock skew
    ],
)
def test_typeform_replay_window_is_on_submitted_at(ingestor, queue, age, accepted):
    # Given the signed example received `age` seconds after it was submitted
    body = typeform_body()

    def deliver():
        return ingestor.form("revops-assessment", body, typeform_headers(body), {}, TYPEFORM_SUBMITTED_AT + age)

    # Then within the 12-hour default window it is accepted; outside, the body field is named
    if accepted:
        deliver()
        assert len(queue.events) == 1
    else:
        assert rejected(deliver).field == "form_response.submitted_at"
        assert queue.events == []


def test_typeform_replay_window_is_configurable_per_source(config, queue):
    # Given a Typeform source that allows one hour
    source = FormSource(
        name="quiz", auth="typeform", secret="typeform_signing", form_id="quiz",
        fields={"email": "readable_ref_email"}, id_field="event_id", replay_window_seconds=HOUR,
    )  # fmt: skip
    ingestor = Ingestor(replace(config, forms={"quiz": source}), FakeKeys(KEYS), queue)
    body = typeform_body()

    # When the example arrives two hours after it was submitted
    error = rejected(lambda: ingestor.form("quiz", body, typeform_headers(body), {}, TYPEFORM_SUBMITTED_AT + 2 * HOUR))

    # Then it is refused, where the shipped default would have taken it
    assert error.field == "form_response.submitted_at"


def test_typeform_signed_body_without_submitted_at_is_refused(ingestor, queue):
    document = load_event("typeform_form_response.json")
    del document["form_response"]["submitted_at"]
    body = json.dumps(document).encode()

    error = rejected(
        lambda: ingestor.form("revops-assessment", body, typeform_headers(body), {}, TYPEFORM_SUBMITTED_AT)
    )

    assert error.field == "form_response.submitted_at"
    assert queue.events == []


def test_typeform_hidden_anonymous_id_stitches_the_visitor(ingestor, queue):
    # Given the example with the visitor's analytics.js anonymous id as a hidden field
    body = typeform_body(anonymous_id="6f2a9c1e-3b7d-4e8a-9c0f-1a2b3c4d5e6f")

    # When it is delivered
    ingestor.form("revops-assessment", body, typeform_headers(body), {}, TYPEFORM_SUBMITTED_AT + 60)

    # Then the event carries it
    assert queue.events[0].anonymous_id == "6f2a9c1e-3b7d-4e8a-9c0f-1a2b3c4d5e6f"


def test_typeform_answers_are_keyed_by_ref_and_found_by_field_id():
    # Given the example, whose answers name their field by id only
    submission = typeform_submission(load_event("typeform_form_response.json"))

    # Then each answer is under its ref from the definition, and also found by field id
    assert submission["readable_ref_email"] == submission["SMEUb7VJz92Q"] == "laura@example.com"
    assert submission["readable_ref_short_text"] == "Laura"
    assert submission["readable_ref_date"] == "2005-10-15"
    assert submission["readable_ref_multiple_choice"] == "London"
    assert submission["readable_ref_legal"] is True and submission["readable_ref_yes_no"] is False
    assert submission["readable_ref_rating"] == 3
    assert submission["readable_ref_calendly"].startswith("https://calendly.com/")
    # hidden fields and variables by name, the delivery's own ids
    assert (submission["user_id"], submission["score"], submission["name"]) == ("abc123456", 4, "typeform")
    assert (submission["event_id"], submission["token"]) == ("LtWXD3crgy", "a3a12ec67a1365927098a606107fac15")
    # field ids are not listed twice, and the email answer is not listed at all
    assert "SMEUb7VJz92Q" not in list(submission) and "readable_ref_email" not in list(submission)


def test_typeform_values_by_answer_type():
    # Given answers of the types the example does not show
    def answer(ref: str, kind: str, value: Any) -> dict[str, Any]:
        return {"type": kind, kind: value, "field": {"id": f"id-{ref}", "type": kind, "ref": ref}}

    document = {
        "event_id": "01H",
        "form_response": {
            "answers": [
                answer("phone", "phone_number", "+14155550142"),
                answer("deck", "file_url", "https://api.typeform.com/responses/files/deck.pdf"),
                answer("site", "url", "https://globex.example"),
                answer("plan", "choice", {"id": "c9", "label": "Enterprise", "ref": "enterprise"}),
                answer("role", "choice", {"other": "Fractional CRO"}),
                answer("tools", "choices", {"labels": ["Salesforce", "HubSpot"], "other": "Pipedrive"}),
                answer(
                    "deposit", "payment", {"amount": "49.00", "last4": "4242", "name": "Ana Lopez", "success": True}
                ),
            ]
        },
    }

    # When it is normalised
    submission = typeform_submission(document)

    # Then each value is taken as its type documents
    assert submission["phone"] == "+14155550142"
    assert submission["deck"].endswith("deck.pdf") and submission["site"] == "https://globex.example"
    assert (submission["plan"], submission["role"]) == ("Enterprise", "Fractional CRO")
    assert submission["tools"] == "Salesforce, HubSpot, Pipedrive"
    assert submission["deposit"] == "49.00"
    assert "phone" not in list(submission)  # personal: found when mapped, never a property


# --- Tally ------------------------------------------------------------------------------

TALLY = TOOLS["tally"]


def test_tally_documented_example_verifies_and_maps(ingestor, queue):
    # Given Tally's example event, signed as Tally documents
    body = tally_body()

    # When it arrives a minute after it was created
    message_id = ingestor.form("contact-us", body, tally_headers(body), {}, TALLY_CREATED_AT + 60)

    # Then one event is queued, mapped by the fields' labels, with Tally's response id
    (event,) = queue.events
    assert message_id == event.message_id == "form-contact-us-2wgx4n"
    assert event.email == "alice@example.com"
    assert event.traits == {"email": "alice@example.com", "phone": "+32491223344", "website": "example.com"}
    assert event.properties["utm_campaign"] == "newsletter"  # a hidden field
    assert event.properties["Multiple choice"] == "In progress"
    # no personal answer is kept as a property, mapped or not
    assert not {"Phone number", "Payment (email)", "Payment (name)", "Signature"} & event.properties.keys()
    assert "question_3EKz4n" not in event.properties  # each field listed once, by label


def test_tally_body_changed_by_one_byte_is_refused(ingestor, queue):
    body = tally_body()
    headers = tally_headers(body)
    changed = one_byte_changed(body, b'"value":"Hello"', b'"value":"Hellp"')

    error = rejected(lambda: ingestor.form("contact-us", changed, headers, {}, TALLY_CREATED_AT + 60))

    assert error.field == "Tally-Signature"
    assert queue.events == []


def test_tally_signature_is_over_the_raw_body_not_a_reserialisation(ingestor, queue):
    # Given the same event sent pretty-printed, with the signature of its compact form
    pretty = json.dumps(load_event("tally_form_response.json"), indent=2).encode()
    headers = tally_headers(tally_body())

    # When it is delivered, Then the bytes received are what must match
    error = rejected(lambda: ingestor.form("contact-us", pretty, headers, {}, TALLY_CREATED_AT + 60))
    assert error.field == "Tally-Signature"


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: tally_headers(body, secret="another-secret"),
        lambda body: {"Tally-Signature": hmac.new(TALLY_SECRET.encode(), body, "sha256").hexdigest()},
        lambda body: {"Content-Type": "application/json"},
    ],
    ids=["wrong secret", "hex digest", "unsigned"],
)
def test_tally_delivery_not_signed_as_documented_is_refused(ingestor, queue, headers):
    body = tally_body()

    error = rejected(lambda: ingestor.form("contact-us", body, headers(body), {}, TALLY_CREATED_AT + 60))

    assert error.field == "Tally-Signature"
    assert queue.events == []


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (31 * HOUR + 35 * 60, True),  # the last of Tally's retries
        (36 * HOUR, True),
        (36 * HOUR + 1, False),
        (-301, False),
    ],
)
def test_tally_replay_window_is_on_created_at(ingestor, queue, age, accepted):
    body = tally_body()

    def deliver():
        return ingestor.form("contact-us", body, tally_headers(body), {}, TALLY_CREATED_AT + age)

    if accepted:
        deliver()
        assert len(queue.events) == 1
    else:
        assert rejected(deliver).field == "createdAt"
        assert queue.events == []


def test_tally_replay_window_is_configurable_per_source(config, queue):
    source = FormSource(
        name="quick", auth="tally", secret="tally_signing", form_id="quick",
        fields={"email": "Email"}, id_field="responseId", replay_window_seconds=HOUR,
    )  # fmt: skip
    ingestor = Ingestor(replace(config, forms={"quick": source}), FakeKeys(KEYS), queue)
    body = tally_body()

    error = rejected(lambda: ingestor.form("quick", body, tally_headers(body), {}, TALLY_CREATED_AT + 2 * HOUR))

    assert error.field == "createdAt"


def test_tally_fields_are_found_by_key_as_well_as_label(config, queue):
    # Given a source mapping Tally fields by key
    source = FormSource(
        name="by-key", auth="tally", secret="tally_signing", form_id="by-key",
        fields={"email": "question_w4Q4Xn", "phone": "question_3jZaa3"}, id_field="responseId",
    )  # fmt: skip
    ingestor = Ingestor(replace(config, forms={"by-key": source}), FakeKeys(KEYS), queue)
    body = tally_body()

    # When the example is delivered
    ingestor.form("by-key", body, tally_headers(body), {}, TALLY_CREATED_AT + 60)

    # Then the keyed fields are mapped
    assert queue.events[0].traits == {"email": "alice@example.com", "phone": "+32491223344"}


def test_tally_choices_are_their_options_text():
    submission = tally_submission(load_event("tally_form_response.json"))

    assert submission["Multiple choice"] == "In progress"
    assert submission["Dropdown"] == "Hard"
    assert submission["Checkboxes"] == "Swimming, Skiing"
    assert submission["Checkboxes (Swimming)"] is True and submission["Checkboxes (Soccer)"] is False
    assert submission["Multi-select"] == "Surf, Golf"
    assert submission["Ranking"] == "Pear, Apple, Banana"
    assert submission["File upload"].endswith("/Tally_Icon.png")
    assert (submission["Number"], submission["Rating"], submission["Score"]) == (10, 4, 20)
    assert (submission["responseId"], submission["eventId"]) == ("2wgx4n", "a4cb511e-d513-4fa5-baee-b815d718dfd1")


def test_tally_hidden_anonymous_id_stitches_the_visitor(ingestor, queue):
    body = tally_with_field(key="question_hidden_anon", label="anonymous_id", type="HIDDEN_FIELDS", value="anon-42")

    ingestor.form("contact-us", body, tally_headers(body), {}, TALLY_CREATED_AT + 60)

    assert queue.events[0].anonymous_id == "anon-42"


def test_tally_redelivery_keeps_the_message_id(ingestor, queue):
    # Given the example delivered, then retried by Tally five minutes later
    body = tally_body()
    first = ingestor.form("contact-us", body, tally_headers(body), {}, TALLY_CREATED_AT + 60)
    again = ingestor.form("contact-us", body, tally_headers(body), {}, TALLY_CREATED_AT + 360)

    # Then both carry the response id, so it is applied once
    assert first == again == "form-contact-us-2wgx4n"


# --- configuration -----------------------------------------------------------------------


def forms_error(config_dir, change) -> ConfigError:
    path = config_dir / "sources.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["forms"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return caught.value


def test_form_tool_sources_default_their_id_field(config):
    assert config.forms["revops-assessment"].id_field == "event_id"
    assert config.forms["contact-us"].id_field == "responseId"
    assert config.forms["webinar-registration"].id_field == "webhook-id"
    assert config.forms["demo-request"].id_field == "submission_id"  # as configured


def test_replay_window_is_loaded(config_dir):
    path = config_dir / "sources.yaml"
    document = yaml.safe_load(path.read_text())
    document["forms"]["contact-us"]["replay_window_seconds"] = 7200
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    assert load_config(config_dir).forms["contact-us"].replay_window_seconds == 7200


@pytest.mark.parametrize(
    ("source", "value", "reason"),
    [
        ("contact-us", -5, "positive"),
        ("contact-us", "a day", "number"),
        ("demo-request", 600, "only typeform or tally"),
        ("webinar-registration", 600, "not standard-webhooks"),
    ],
)
def test_a_bad_replay_window_names_its_path(config_dir, source, value, reason):
    error = forms_error(config_dir, lambda forms: forms[source].update(replay_window_seconds=value))

    assert (error.file, error.path) == ("sources.yaml", f"forms.{source}.replay_window_seconds")
    assert reason in error.reason


def test_an_unknown_auth_lists_the_schemes(config_dir):
    error = forms_error(config_dir, lambda forms: forms["contact-us"].update(auth="jotform"))

    assert error.path == "forms.contact-us.auth"
    assert "hmac, key, standard-webhooks, typeform, tally" in error.reason


def test_the_local_stack_gives_form_tool_sources_development_secrets():
    # Given the local stack with the development form secret
    from nurture_tools.local.runtime import LocalKeys, LocalRuntime

    runtime = LocalRuntime(PROJECT_DIR, keys=LocalKeys("dev-write-key", "dev-admin-key", "dev-form-secret"))

    # When it fills the API-keys secret
    values = runtime._secret_values()

    # Then Typeform and Tally sign with the form secret, and Standard Webhooks with it as a whsec_ key
    assert values["typeform_signing"] == values["tally_signing"] == values["forms_signing"] == "dev-form-secret"
    assert values["webinar_signing"] == "whsec_" + base64.b64encode(b"dev-form-secret").decode()
