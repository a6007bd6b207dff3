"""The API use cases: authenticate a source, validate its payload, queue events."""

from __future__ import annotations

import base64
import gzip
import json
from urllib.parse import urlencode

import pytest

from nurture.core.errors import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from nurture.core.observability import flush_metrics
from nurture.ingest.api import Ingestor, sign_form
from tests.emf import business_records, record_values
from tests.unit.builders import T0, FakeKeys, ListQueue, batch_body, load_event, page, track

KEYS = {
    "website": "wk-website-3f9a",
    "product_app": "wk-product-71c2",
    "forms_signing": "form-signing-secret-a8d4",
    "forms_key": "form-source-key-55e0",
    "admin": "admin-key-0b6d",
}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def queue() -> ListQueue:
    return ListQueue()


@pytest.fixture
def ingestor(config, queue) -> Ingestor:
    return Ingestor(config, FakeKeys(KEYS), queue)


def basic(write_key: str) -> dict[str, str]:
    """Segment's auth: the write key as the Basic user name, empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def signed(body: bytes, at: float = T0, secret: str = KEYS["forms_signing"]) -> dict[str, str]:
    timestamp = str(int(at))
    signature = "sha256=" + sign_form(secret, timestamp, body)
    return {**JSON, "X-Nurture-Timestamp": timestamp, "X-Nurture-Signature": signature}


def demo_request_body(**changes) -> bytes:
    submission = {**load_event("form_demo_request.json"), **changes}
    return json.dumps({k: v for k, v in submission.items() if v is not None}).encode()


def test_segment_write_key_maps_to_its_source(ingestor, queue):
    # Given a batch sent with the product app's write key
    body = batch_body(track("Trial Started", user_id="u-1"), page("/pricing", user_id="u-1"))

    # When it is accepted
    count = len(ingestor.segment(None, body, basic(KEYS["product_app"]), T0).events)

    # Then both events are queued under the product-app source
    assert count == 2
    assert [event.source for event in queue.events] == ["product-app", "product-app"]


def test_lower_case_authorization_header_is_accepted(ingestor, queue):
    # Given API Gateway's lower-cased header names
    headers = {"authorization": basic(KEYS["website"])["Authorization"]}

    # When a track call is sent
    ingestor.segment("track", json.dumps(track("Trial Started", user_id="u-1")).encode(), headers, T0)

    # Then it is queued for the website source
    assert [event.source for event in queue.events] == ["website"]


def test_unknown_write_key_is_rejected(ingestor, queue):
    # Given a batch with a write key nobody issued
    body = batch_body(page("/pricing", user_id="u-1"))

    # When it is sent
    with pytest.raises(AuthenticationError) as caught:
        ingestor.segment(None, body, basic("wk-guessed"), T0)

    # Then it is a 401 naming the Authorization header, and nothing is queued
    assert (caught.value.status, caught.value.field) == (401, "Authorization")
    assert queue.events == []


def test_missing_write_key_is_rejected(ingestor, queue):
    # Given a batch without any credentials
    # When it is sent
    with pytest.raises(AuthenticationError) as caught:
        ingestor.segment(None, batch_body(page("/pricing", user_id="u-1")), {}, T0)

    # Then the Authorization header is named
    assert caught.value.field == "Authorization"
    assert queue.events == []


def test_write_key_in_the_body_is_accepted_without_a_header(ingestor, queue):
    # Given an analytics.js batch carrying its writeKey in the body
    body = batch_body(page("/pricing", anonymous_id="anon-1"), writeKey=KEYS["website"])

    # When it is sent without Authorization
    ingestor.segment(None, body, {}, T0)

    # Then it is queued for the website source
    assert [event.source for event in queue.events] == ["website"]


def test_gzip_batch_is_accepted(ingestor, queue):
    # Given the real analytics.js batch, gzip-compressed
    body = gzip.compress(json.dumps(load_event("segment_batch.json")).encode())

    # When it is sent with Content-Encoding: gzip
    count = len(ingestor.segment(None, body, {**basic(KEYS["website"]), "Content-Encoding": "gzip"}, T0).events)

    # Then all three calls are queued
    assert count == 3
    assert [event.kind for event in queue.events] == ["page", "identify", "track"]


def test_one_invalid_call_costs_none_of_its_neighbours(ingestor, queue, capsys):
    # Given a batch of 10 calls whose fourth has no event name
    calls = [page(f"/docs/{i}", user_id="u-1") for i in range(10)]
    calls[3] = track("", user_id="u-1")
    body = batch_body(*calls)

    # When it is sent
    parsed = ingestor.segment(None, body, basic(KEYS["website"]), T0)

    # Then the 9 valid calls are queued, the bad one is reported with its field and counted by reason
    assert len(queue.events) == 9
    assert [(r.index, r.field) for r in parsed.rejected] == [(3, "event")]
    flush_metrics()
    out = capsys.readouterr().out
    assert record_values(business_records(out), "EventsRejected", reason="event") == [1]
    assert record_values(business_records(out), "EventsAccepted") == [9]


def test_a_batch_of_only_invalid_calls_queues_nothing(ingestor, queue):
    # Given a batch whose every call lacks an id
    body = batch_body(page("/pricing"), page("/docs"))

    # When it is sent
    parsed = ingestor.segment(None, body, basic(KEYS["website"]), T0)

    # Then both are rejected and nothing is queued
    assert (len(parsed.events), len(parsed.rejected)) == (0, 2)
    assert queue.events == []


def test_a_page_of_an_allowed_origin_may_send(ingestor, queue):
    # Given analytics.js on a page of the company's site
    headers = {**basic(KEYS["website"]), "Origin": "https://www.example.com"}

    # When it sends a page view
    ingestor.segment(None, batch_body(page("/pricing", anonymous_id="a-1")), headers, T0)

    # Then it is queued
    assert len(queue.events) == 1


def test_a_page_of_another_origin_is_refused_and_nothing_is_queued(ingestor, queue):
    # Given the website's write key copied onto someone else's page
    headers = {**basic(KEYS["website"]), "Origin": "https://evil.example.net"}

    # When it sends
    with pytest.raises(ForbiddenError) as caught:
        ingestor.segment(None, batch_body(page("/pricing", anonymous_id="a-1")), headers, T0)

    # Then it is a 403 naming the Origin, and nothing is queued
    assert (caught.value.status, caught.value.field) == (403, "Origin")
    assert queue.events == []


def test_a_server_source_accepts_no_browser(ingestor, queue):
    # Given the product app's key (a source with no allowed origins) used from a web page
    headers = {**basic(KEYS["product_app"]), "Origin": "https://www.example.com"}

    # When it sends
    with pytest.raises(ForbiddenError):
        ingestor.segment(None, batch_body(track("Trial Started", user_id="u-1")), headers, T0)

    # Then nothing is queued; the same call without an Origin (a server) is accepted
    assert queue.events == []
    ingestor.segment(None, batch_body(track("Trial Started", user_id="u-1")), basic(KEYS["product_app"]), T0)
    assert len(queue.events) == 1


def test_the_write_key_may_come_as_a_query_parameter(ingestor, queue):
    # Given RudderStack's sendBeacon batch, which cannot set headers
    body = batch_body(page("/pricing", anonymous_id="a-1"))

    # When it is sent with ?writeKey=
    ingestor.segment(None, body, {"Content-Type": "text/plain"}, T0, {"writeKey": KEYS["website"]})

    # Then it is queued for the website source
    assert [event.source for event in queue.events] == ["website"]


def test_only_browser_sources_answer_a_settings_request(ingestor):
    # Given the website key (allowed origins) and the product app key (none)
    # When each is asked for
    source = ingestor.browser_source(KEYS["website"])

    # Then the website source answers; the server key is as unknown as a guessed one
    assert source.name == "website"
    for key in (KEYS["product_app"], "wk-guessed"):
        with pytest.raises(NotFoundError):
            ingestor.browser_source(key)


def test_signed_form_is_accepted_and_mapped(ingestor, queue):
    # Given a demo request signed with the form secret
    body = demo_request_body()

    # When it is posted
    message_id = ingestor.form("demo-request", body, signed(body), {}, T0)

    # Then one form_submitted event is queued with the mapped traits
    (event,) = queue.events
    assert message_id == event.message_id == "form-demo-request-sub_9f8e7d6c"
    assert (event.kind, event.name, event.source) == ("track", "form_submitted", "form:demo-request")
    assert event.email == "ana.lopez@globex.com"
    assert event.anonymous_id == "6f2a9c1e-3b7d-4e8a-9c0f-1a2b3c4d5e6f"
    assert event.traits == {
        "email": "ana.lopez@globex.com",
        "first_name": "Ana",
        "last_name": "Lopez",
        "title": "VP of Marketing",
        "company": "Globex",
        "employees": 350,
        "country": "us",
        "phone": "+1 415 555 0142",
        "product_interest": "Forecasting",
    }


def test_form_properties_keep_context_but_not_personal_data(ingestor, queue):
    # Given a signed demo request with UTM fields
    body = demo_request_body()

    # When it is posted
    ingestor.form("demo-request", body, signed(body), {}, T0)

    # Then properties name the form and keep the unmapped fields, without email, name or phone
    properties = queue.events[0].properties
    assert properties["form_id"] == "demo-request" and properties["form_source"] == "demo-request"
    assert properties["utm_campaign"] == "q1-revops"
    assert properties["company"] == "Globex"
    assert not {"email", "first_name", "last_name", "phone"} & properties.keys()


def test_forged_signature_is_rejected(ingestor, queue):
    # Given a demo request signed with the wrong secret
    body = demo_request_body()

    # When it is posted
    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("demo-request", body, signed(body, secret="guessed"), {}, T0)

    # Then the signature header is named and nothing is queued
    assert (caught.value.status, caught.value.field) == (401, "X-Nurture-Signature")
    assert queue.events == []


def test_tampered_body_is_rejected(ingestor, queue):
    # Given a correctly signed body that is changed in transit
    headers = signed(demo_request_body())

    # When the altered body is posted with the original signature
    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("demo-request", demo_request_body(email="mallory@evil.example"), headers, {}, T0)

    # Then the signature does not match
    assert caught.value.field == "X-Nurture-Signature"
    assert queue.events == []


def test_stale_signature_is_rejected(ingestor, queue):
    # Given a demo request signed six minutes ago
    body = demo_request_body()
    headers = signed(body, at=T0 - 6 * 60)

    # When it is posted now
    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("demo-request", body, headers, {}, T0)

    # Then the timestamp header is named
    assert caught.value.field == "X-Nurture-Timestamp"
    assert queue.events == []


@pytest.mark.parametrize("missing", ["X-Nurture-Timestamp", "X-Nurture-Signature"])
def test_signed_form_without_its_headers_is_rejected(ingestor, queue, missing):
    # Given a demo request missing one of the signing headers
    body = demo_request_body()
    headers = signed(body)
    del headers[missing]

    # When it is posted
    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("demo-request", body, headers, {}, T0)

    # Then the missing header is named
    assert caught.value.field == missing
    assert queue.events == []


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({**JSON, "X-Nurture-Key": KEYS["forms_key"]}, {}),
        (JSON, {"key": KEYS["forms_key"]}),
    ],
)
def test_key_form_accepts_the_key_as_header_or_query(ingestor, queue, headers, query):
    # Given a content download from a form tool that cannot sign
    body = json.dumps(load_event("form_content_download.json")).encode()

    # When it is posted with the source key
    ingestor.form("content-download", body, headers, query, T0)

    # Then it is queued
    assert [event.source for event in queue.events] == ["form:content-download"]


def test_key_form_with_a_wrong_key_is_rejected(ingestor, queue):
    # Given a content download with a wrong key
    body = json.dumps(load_event("form_content_download.json")).encode()

    # When it is posted
    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("content-download", body, JSON, {"key": "nope"}, T0)

    # Then the key is named
    assert caught.value.field == "X-Nurture-Key"
    assert queue.events == []


@pytest.mark.parametrize(
    ("origin", "accepted"), [("https://www.example.com", True), ("https://evil.example.net", False)]
)
def test_a_browser_posts_a_form_only_from_its_allowed_origins(ingestor, queue, origin, accepted):
    # Given the content-download form posted by a browser on a page of `origin`
    body = json.dumps(load_event("form_content_download.json")).encode()
    headers = {**JSON, "Origin": origin}

    # When it is posted with the right key
    if accepted:
        ingestor.form("content-download", body, headers, {"key": KEYS["forms_key"]}, T0)
    else:
        with pytest.raises(ForbiddenError) as caught:
            ingestor.form("content-download", body, headers, {"key": KEYS["forms_key"]}, T0)
        assert caught.value.field == "Origin"

    # Then only a page of an allowed origin gets it queued
    assert len(queue.events) == (1 if accepted else 0)


def test_nested_json_fields_are_mapped(ingestor, queue):
    # Given a content download whose contact details are nested
    body = json.dumps(load_event("form_content_download.json")).encode()

    # When it is posted
    message_id = ingestor.form("content-download", body, {**JSON, "X-Nurture-Key": KEYS["forms_key"]}, {}, T0)

    # Then contact.* fields become traits and the asset fields stay properties
    (event,) = queue.events
    assert message_id == "form-content-download-resp_20250303_0042"
    assert event.traits == {
        "email": "bob.stone@initech.io",
        "first_name": "Bob",
        "last_name": "Stone",
        "title": "Director of Revenue Operations",
        "company": "Initech",
        "industry": "financial services",
    }
    assert event.properties["asset_type"] == "white_paper"
    assert event.properties["asset_id"] == "wp-revenue-analytics-guide"


def test_urlencoded_form_is_mapped(ingestor, queue):
    # Given a content download posted as an HTML form would
    body = urlencode(
        {
            "response_id": "resp-77",
            "contact.email": "Carla@Initech.io",
            "contact.first_name": "Carla",
            "contact.title": "CFO",
            "asset_type": "white_paper",
            "asset_id": "business-case-template",
        }
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "X-Nurture-Key": KEYS["forms_key"]}

    # When it is posted
    message_id = ingestor.form("content-download", body, headers, {}, T0)

    # Then the dotted field names map like nested JSON
    (event,) = queue.events
    assert message_id == "form-content-download-resp-77"
    assert event.traits == {"email": "carla@initech.io", "first_name": "Carla", "title": "CFO"}
    assert event.properties["asset_id"] == "business-case-template"


@pytest.mark.parametrize("email", [None, ""])
def test_form_without_email_names_the_submissions_field(ingestor, queue, email):
    # Given a content download whose contact has no email
    submission = load_event("form_content_download.json")
    submission["contact"]["email"] = email
    body = json.dumps(submission).encode()

    # When it is posted
    with pytest.raises(UnprocessableError) as caught:
        ingestor.form("content-download", body, {**JSON, "X-Nurture-Key": KEYS["forms_key"]}, {}, T0)

    # Then it is a 422 naming the submission's own field, and nothing is queued
    assert (caught.value.status, caught.value.field) == (422, "contact.email")
    assert queue.events == []


def test_form_with_an_invalid_email_is_unprocessable(ingestor, queue):
    # Given a signed demo request with a mistyped email
    body = demo_request_body(email="ana.lopez@globex")

    # When it is posted
    with pytest.raises(UnprocessableError) as caught:
        ingestor.form("demo-request", body, signed(body), {}, T0)

    # Then the email field is named
    assert caught.value.field == "email"
    assert queue.events == []


def test_form_with_an_unsupported_content_type_is_rejected(ingestor, queue):
    # Given a signed demo request sent as text/plain
    body = demo_request_body()
    headers = {**signed(body), "Content-Type": "text/plain"}

    # When it is posted
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        ingestor.form("demo-request", body, headers, {}, T0)

    # Then it is a 415 naming Content-Type
    assert (caught.value.status, caught.value.field) == (415, "Content-Type")
    assert queue.events == []


def test_resubmitted_form_keeps_its_message_id(ingestor, queue):
    # Given a demo request
    body = demo_request_body()

    # When the form tool resends it a minute later
    first = ingestor.form("demo-request", body, signed(body, at=T0), {}, T0)
    second = ingestor.form("demo-request", body, signed(body, at=T0 + 60), {}, T0 + 60)

    # Then both deliveries carry the same message id, so tracking applies it once
    assert first == second
    assert [event.message_id for event in queue.events] == [first, first]


def test_form_without_submission_id_gets_an_id_from_its_body(ingestor, queue):
    # Given a demo request without a submission id, sent twice
    body = demo_request_body(submission_id=None)

    # When both are posted
    first = ingestor.form("demo-request", body, signed(body), {}, T0)
    second = ingestor.form("demo-request", body, signed(body), {}, T0)

    # Then the id is derived from the body, and stable
    assert first == second
    assert first.startswith("form-demo-request-")


def test_unknown_form_source_is_not_found(ingestor, queue):
    # Given a form source nobody configured
    # When a submission is posted to it
    with pytest.raises(NotFoundError) as caught:
        ingestor.form("newsletter", b"{}", JSON, {}, T0)

    # Then the source is named
    assert (caught.value.status, caught.value.field) == (404, "source")


@pytest.mark.parametrize("authorization", ["", "Bearer wrong", basic(KEYS["admin"])["Authorization"]])
def test_admin_calls_need_the_admin_bearer_key(ingestor, authorization):
    # Given an admin request without the right bearer key
    # When it is authenticated
    with pytest.raises(AuthenticationError) as caught:
        ingestor.authenticate_admin({"Authorization": authorization})

    # Then Authorization is named
    assert caught.value.field == "Authorization"


def test_admin_bearer_key_is_accepted(ingestor):
    # Given the admin key as a bearer token
    # When it is authenticated
    # Then no error is raised
    ingestor.authenticate_admin({"Authorization": f"Bearer {KEYS['admin']}"})


# --- the key before the body; nothing a client sends is a 500 ---------------------

DEEP = b'{"batch": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (basic("wk-guessed"), DEEP),  # a header key nobody issued
        ({}, DEEP[:-1] + b', "writeKey": "wk-guessed"}'),  # a body key nobody issued
        ({}, DEEP),  # no key at all
    ],
    ids=["header key", "body key", "no key"],
)
def test_a_request_without_a_valid_key_is_refused_before_its_body_is_parsed(ingestor, queue, headers, body):
    # Given a body nested too deeply to parse, sent without a valid write key
    # When it is sent
    with pytest.raises(AuthenticationError) as caught:
        ingestor.segment(None, body, headers, T0)

    # Then the key is what is refused (a parse would have been a 400), and nothing is queued
    assert caught.value.status == 401
    assert queue.events == []


def test_a_body_key_must_be_the_bodys_own_write_key(ingestor, queue):
    # Given a body whose only valid write key is nested inside a call, not at the top
    call = {**page("/pricing", anonymous_id="anon-1"), "properties": {"writeKey": KEYS["website"]}}
    body = batch_body(call, writeKey="wk-guessed")

    # When it is sent without a header key
    with pytest.raises(AuthenticationError) as caught:
        ingestor.segment(None, body, {}, T0)

    # Then it is refused
    assert caught.value.field in ("writeKey", "Authorization")
    assert queue.events == []


@pytest.mark.parametrize("timestamp", ["NaN", "nan", "inf", "-inf", "1_700_000_000", "\u0661\u0662\u0663", "1e9"])
def test_a_signed_form_timestamp_must_be_unix_seconds_in_ascii_digits(ingestor, queue, timestamp):
    # Given a signed form whose timestamp float() would read (NaN would never expire)
    body = demo_request_body()
    headers = {**signed(body), "X-Nurture-Timestamp": timestamp}
    headers["X-Nurture-Signature"] = "sha256=" + sign_form(KEYS["forms_signing"], timestamp, body)

    # When it is posted
    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("demo-request", body, headers, {}, T0)

    # Then the timestamp is refused, and nothing is queued
    assert caught.value.field == "X-Nurture-Timestamp"
    assert queue.events == []


@pytest.mark.parametrize("signature", ["sha256=\u00e9t\u00e9", "\ud800", "x" * 5000])
def test_a_malformed_signature_is_a_401_not_a_crash(ingestor, queue, signature):
    body = demo_request_body()
    headers = {**signed(body), "X-Nurture-Signature": signature}

    with pytest.raises(AuthenticationError) as caught:
        ingestor.form("demo-request", body, headers, {}, T0)

    assert caught.value.field == "X-Nurture-Signature"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"submission_id": "s" * 300}, "submission_id"),
        ({"anonymous_id": "a" * 300}, "anonymous_id"),
        ({"anonymous_id": {"nested": True}}, "anonymous_id"),
        ({"company_size": "1e400"}, "company_size"),
        ({"email": "a" * 250 + "@x.com"}, "email"),
        ({"job_title": float("nan")}, "job_title"),
    ],
)
def test_a_form_field_the_table_or_profile_cannot_take_is_422_naming_it(ingestor, queue, changes, field):
    # Given a signed form with one field out of what a key, the table or the profile takes
    body = demo_request_body(**changes)

    # When it is posted
    with pytest.raises((UnprocessableError, ValidationError)) as caught:
        ingestor.form("demo-request", body, signed(body), {}, T0)

    # Then that field is named and nothing is queued
    assert (caught.value.status // 100, caught.value.field) == (4, field)
    assert queue.events == []


def test_a_form_event_too_large_for_one_message_is_413(ingestor, queue):
    body = demo_request_body(**{f"answer_{n}": "y" * 290 for n in range(300)})

    with pytest.raises(PayloadTooLargeError):
        ingestor.form("demo-request", body, signed(body), {}, T0)

    assert queue.events == []


def test_a_write_key_that_is_not_valid_unicode_is_simply_unknown(ingestor):
    with pytest.raises(NotFoundError):
        ingestor.browser_source("\ud800")


@pytest.mark.parametrize(
    ("headers", "trusted"),
    [
        ({"Authorization": f"Bearer {KEYS['admin']}"}, True),
        ({"X-Nurture-Key": KEYS["forms_signing"]}, True),  # demo-request signs: its secret stays on servers
    ],
)
def test_the_admin_and_signing_secrets_may_look_leads_up(ingestor, headers, trusted):
    assert ingestor.authenticate_form_reader("demo-request", headers) is trusted


def test_a_public_form_key_may_not_look_leads_up_by_email(ingestor):
    # content-download's key travels in page URLs (auth: key)
    assert ingestor.authenticate_form_reader("content-download", {"X-Nurture-Key": KEYS["forms_key"]}) is False
