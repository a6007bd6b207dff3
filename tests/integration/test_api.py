"""The API function under moto, driven through the HTTP API's payload format
2.0 events as the local gateway (tools/nurture_tools/local/apigw.py) builds
them the way API Gateway does."""

from __future__ import annotations

import base64
import gzip
import json
import time

import pytest
from werkzeug.test import Client

from nurture.ingest.api import sign_form
from nurture_tools.local.apigw import ApiGateway
from nurture_tools.local.template import LocalStack
from tests.conftest import PROJECT_DIR
from tests.integration.conftest import ADMIN_KEY, FORM_SECRET, WRITE_KEY


@pytest.fixture
def api(deployed):
    from api.app import handler

    routes = LocalStack(PROJECT_DIR, deployed.session, prefix="routes").api_routes("ApiFunction")
    return Client(ApiGateway(routes, handler))


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

    # Then Segment's answer, with the counts, comes back and both events are already queued
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "accepted": 2, "rejected": 0}
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


def test_a_batch_with_one_invalid_call_stores_the_rest_and_answers_200_with_the_counts(api, deployed):
    # Given a batch of 10 calls, the fifth with neither userId nor anonymousId
    calls = [{"type": "track", "userId": "u1", "event": "Docs Read", "messageId": f"m{n}"} for n in range(10)]
    del calls[4]["userId"]

    # When it is posted
    response = api.post("/v1/batch", json={"batch": calls}, headers=_basic(WRITE_KEY))

    # Then the 9 valid calls are queued and the answer is 200 with the counts and the field at fault
    assert response.status_code == 200
    body = response.get_json()
    assert (body["success"], body["accepted"], body["rejected"]) == (True, 9, 1)
    assert body["errors"] == [{"index": 4, "field": "batch[4].userId", "message": "userId or anonymousId is required"}]
    assert sorted(event["id"] for event in _queued(deployed)) == sorted(f"m{n}" for n in range(10) if n != 4)


def test_a_single_invalid_call_is_400_naming_the_field_and_nothing_is_queued(api, deployed):
    # Given a /v1/track call with neither userId nor anonymousId
    body = {"type": "track", "event": "orphan", "messageId": "m2"}

    # When it is posted
    response = api.post("/v1/track", json=body, headers=_basic(WRITE_KEY))

    # Then the answer names the field and nothing was queued
    assert response.status_code == 400
    assert response.get_json()["field"] == "userId"
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


@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_lead_named_longer_than_any_address_is_400_naming_it(api, method):
    # A key the table would refuse (over 2,048 bytes) is never asked for
    response = getattr(api, method)(f"/v1/leads/{'a' * 3000}@x.com", headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    assert (response.status_code, response.get_json()["field"]) == (400, "lead")


def test_an_unknown_lead_is_404(api):
    response = api.get("/v1/leads/nobody@example.com", headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    assert response.status_code == 404
    assert response.get_json()["field"] == "lead"


# --- consent links: unsubscribe and preferences ---------------------------------------


@pytest.fixture
def subscriber(deployed) -> tuple[str, str]:
    """A stored lead and the signed token its emails' links carry."""
    from nurture import wiring
    from nurture.channels.email import unsubscribe_token
    from nurture.core.domain import Lead

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
        ("/v1/preferences/{token}", "pause=%D9%A1", "application/x-www-form-urlencoded", 400, "pause"),
        ("/v1/preferences/{token}", "pause=" + "9" * 5000, "application/x-www-form-urlencoded", 400, "pause"),
    ],
)
def test_a_bad_preference_request_changes_nothing_and_names_the_field(
    api, subscriber, path, body, content_type, status, field
):
    lead_id, token = subscriber

    response = api.post(path.format(token=token), data=body, headers={"Content-Type": content_type})

    assert (response.status_code, response.get_json()["field"]) == (status, field)
    assert _stored(lead_id).preferences == {}


# ------------------------------------------------------- browsers (CORS)

SITE = "https://www.example.com"


def _preflight(api, path: str, origin: str, headers: str = "authorization,content-type"):
    return api.open(
        path,
        method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers},
    )


def test_a_preflight_from_a_configured_origin_is_allowed(api):
    # Given analytics.js on the company's site about to post with its headers
    # When the browser asks first
    response = _preflight(api, "/v1/t", SITE, "authorization,content-type,x-retry-count")

    # Then it may post, with exactly those headers, and caches vary by origin
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert response.headers["Vary"] == "Origin"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type, x-retry-count"


def test_a_preflight_from_an_origin_not_configured_is_refused(api):
    # Given a page of a site the company does not own
    # When its browser asks to post
    response = _preflight(api, "/v1/batch", "https://www.example.org")

    # Then it is refused: no allow-origin header, a 403 naming the Origin
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.get_json()["field"] == "Origin"


def test_subdomains_match_only_a_wildcard_entry(api):
    # Given `https://*.example.com` in the website's allowed origins
    # Then a subdomain is allowed, a look-alike domain and another scheme are not
    assert _preflight(api, "/v1/p", "https://blog.example.com").status_code == 204
    assert _preflight(api, "/v1/p", "https://blog.example.com.evil.net").status_code == 403
    assert _preflight(api, "/v1/p", "http://blog.example.com").status_code == 403


def test_analytics_js_short_paths_take_text_plain_with_the_key_in_the_body(api, deployed):
    # Given analytics.js's own request: /v1/t, text/plain, writeKey in the JSON body, from the site
    call = {"type": "track", "event": "Webinar Attended", "userId": "u1", "messageId": "t-1", "writeKey": WRITE_KEY}

    # When it is posted
    response = api.post("/v1/t", data=json.dumps(call), headers={"Content-Type": "text/plain", "Origin": SITE})

    # Then it is queued, and the page may read the answer
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert [event["id"] for event in _queued(deployed)] == ["t-1"]


@pytest.mark.parametrize(
    "short,long", [("t", "track"), ("p", "page"), ("i", "identify"), ("g", "group"), ("a", "alias"), ("s", "screen")]
)
def test_each_short_path_is_its_long_path(api, deployed, short, long):
    call = {
        "userId": "u1",
        "anonymousId": "a1",
        "event": "E",
        "groupId": "g1",
        "previousId": "p1",
        "messageId": f"{short}-1",
    }

    # A call of another type on the short path is refused as on the long one
    wrong = {"page": "track", "track": "page"}.get(long, "track")
    assert api.post(f"/v1/{short}", json={**call, "type": wrong}, headers=_basic(WRITE_KEY)).status_code == 400
    assert api.post(f"/v1/{short}", json={**call, "type": long}, headers=_basic(WRITE_KEY)).status_code == 200
    assert [event["k"] for event in _queued(deployed)] == [long]


def test_an_unknown_call_path_is_404(api):
    assert api.post("/v1/x", json={}, headers=_basic(WRITE_KEY)).status_code == 404


def test_a_page_of_another_origin_cannot_send_even_without_a_preflight(api, deployed):
    # Given a simple (un-preflighted) text/plain post from a page not listed
    call = {"type": "page", "anonymousId": "a1", "messageId": "x-1", "writeKey": WRITE_KEY}

    # When it is posted
    response = api.post(
        "/v1/p", data=json.dumps(call), headers={"Content-Type": "text/plain", "Origin": "https://www.example.org"}
    )

    # Then it is refused and nothing is queued
    assert response.status_code == 403
    assert response.get_json()["field"] == "Origin"
    assert _queued(deployed) == []


def test_rudderstack_beacon_batches_carry_the_key_in_the_query(api, deployed):
    body = {"batch": [{"type": "page", "anonymousId": "a1", "messageId": "b-1"}], "sentAt": "2026-12-01T00:00:00Z"}

    response = api.post(
        f"/beacon/v1/batch?writeKey={WRITE_KEY}", data=json.dumps(body), headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 200
    assert [event["id"] for event in _queued(deployed)] == ["b-1"]


def test_analytics_js_settings_point_its_api_host_at_this_api(api):
    # Given the analytics.js snippet with analytics._cdn = this API
    # When it loads its settings from the page
    response = api.get(f"/v1/projects/{WRITE_KEY}/settings", headers={"Origin": SITE, "Host": "nurture.test:8000"})

    # Then Segment.io delivers here, nothing else is loaded, and the page may read it
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    settings = response.get_json()
    assert settings["integrations"]["Segment.io"]["apiHost"] == "nurture.test:8000/v1"
    assert settings["integrations"]["Segment.io"]["protocol"] == "http"
    assert list(settings["integrations"]) == ["Segment.io"]
    assert settings["remotePlugins"] == [] and settings["metrics"]["sampleRate"] == 0


def test_analytics_js_settings_name_the_deployed_stage_in_the_api_host(deployed):
    from api.app import handler

    # Given the request an HTTP API's prod stage sends: the stage is the
    # path's first segment (the access logs' $context.path is /{stage}/...)
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    event = {
        "version": "2.0",
        "routeKey": "GET /v1/projects/{writeKey}/settings",
        "rawPath": f"/prod/v1/projects/{WRITE_KEY}/settings",
        "rawQueryString": "",
        "headers": {"host": host, "x-forwarded-proto": "https", "origin": SITE},
        "pathParameters": {"writeKey": WRITE_KEY},
        "requestContext": {
            "http": {"method": "GET", "path": f"/prod/v1/projects/{WRITE_KEY}/settings", "sourceIp": "203.0.113.7"},
            "routeKey": "GET /v1/projects/{writeKey}/settings",
            "stage": "prod",
            "domainName": host,
        },
        "isBase64Encoded": False,
    }

    # When the function answers it
    answer = handler(event, None)

    # Then analytics.js is told to send to the stage, where the routes are
    assert answer["statusCode"] == 200
    segment = json.loads(answer["body"])["integrations"]["Segment.io"]
    assert (segment["protocol"], segment["apiHost"]) == ("https", f"{host}/prod/v1")


def test_settings_for_an_unknown_key_are_404(api):
    assert api.get("/v1/projects/wk-guessed/settings").status_code == 404


def test_rudderstack_source_config_answers_its_write_key(api):
    response = api.get(f"/v1/sourceConfig?p=npm&v=3&writeKey={WRITE_KEY}", headers={"Origin": SITE})

    assert response.status_code == 200
    source = response.get_json()["source"]
    assert (source["id"], source["enabled"], source["destinations"]) == ("website", True, [])
    assert response.headers["Access-Control-Allow-Origin"] == SITE


def test_a_method_the_template_does_not_route_never_reaches_the_function(api):
    response = api.put("/v1/batch", json={})

    # an HTTP API answers a request no route matches itself (docs: "Create routes for HTTP APIs")
    assert (response.status_code, response.get_json()) == (404, {"message": "Not Found"})
