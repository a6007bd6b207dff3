"""The local HTTP API (nurture_tools.local.apigw): requests become payload
format 2.0 events the way API Gateway builds them ("Create routes for HTTP
APIs" and "Create AWS Lambda proxy integrations for HTTP APIs", API Gateway
developer guide), so every local and end-to-end test goes through the
function's adapter as a deployed request does."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import pytest
from werkzeug.test import Client

from nurture_tools.local.apigw import ApiGateway

ROUTES = [
    ("POST", "/v1/{call}"),
    ("OPTIONS", "/v1/{call}"),
    ("GET", "/v1/sourceConfig"),
    ("GET", "/v1/leads/{lead}"),
    ("GET", "/v1/leads/{lead}/next-fields"),
]


class Recorder:
    """A handler that records each event and answers with a cookie and a header."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json", "Vary": "Origin"},
            "cookies": ["a=1", "b=2"],
            "body": base64.b64encode(b'{"ok":true}').decode(),
            "isBase64Encoded": True,
        }


@pytest.fixture
def gateway() -> tuple[Client, Recorder]:
    recorder = Recorder()
    return Client(ApiGateway(ROUTES, recorder)), recorder


def test_a_literal_route_wins_over_a_parameter_at_the_same_depth(gateway):
    client, recorder = gateway

    client.get("/v1/sourceConfig")
    client.post("/v1/track", data=b"{}", content_type="application/json")

    assert [event["routeKey"] for event in recorder.events] == ["GET /v1/sourceConfig", "POST /v1/{call}"]
    assert recorder.events[1]["pathParameters"] == {"call": "track"}


def test_a_method_no_route_declares_takes_the_route_that_declares_it(gateway):
    # POST /v1/sourceConfig: GET /v1/sourceConfig is not a match, POST /v1/{call} is
    client, recorder = gateway

    client.post("/v1/sourceConfig", data=b"{}", content_type="application/json")

    assert recorder.events[0]["routeKey"] == "POST /v1/{call}"


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/batch"), ("GET", "/v1/leads"), ("GET", "/v2/track")])
def test_a_request_no_route_matches_is_404_and_never_reaches_the_function(gateway, method, path):
    client, recorder = gateway

    response = client.open(path, method=method)

    assert (response.status_code, response.get_json()) == (404, {"message": "Not Found"})
    assert recorder.events == []


def test_the_event_has_the_route_the_raw_path_and_decoded_path_parameters(gateway):
    client, recorder = gateway

    client.get("/v1/leads/ana%40example.com/next-fields?form=demo&tag=a&tag=b", headers={"User-Agent": "ua/1"})

    (event,) = recorder.events
    assert (event["version"], event["routeKey"]) == ("2.0", "GET /v1/leads/{lead}/next-fields")
    assert event["rawPath"] == "/v1/leads/ana%40example.com/next-fields"
    assert event["pathParameters"] == {"lead": "ana@example.com"}
    assert event["rawQueryString"] == "form=demo&tag=a&tag=b"
    assert event["queryStringParameters"] == {"form": "demo", "tag": "a,b"}
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["http"]["userAgent"] == "ua/1"
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert "body" not in event and event["isBase64Encoded"] is False


def test_headers_are_lower_case_and_cookies_a_list():
    recorder = Recorder()
    client = Client(ApiGateway(ROUTES, recorder), use_cookies=False)  # sends the Cookie header as given

    client.get(
        "/v1/sourceConfig",
        headers=[("X-Retry-Count", "1"), ("Accept", "text/html"), ("Accept", "*/*"), ("Cookie", "a=1; b=2")],
    )

    (event,) = recorder.events
    assert event["headers"]["x-retry-count"] == "1"
    # (WSGI has joined the repeated header already; API Gateway joins with commas too)
    assert [value.strip() for value in event["headers"]["accept"].split(",")] == ["text/html", "*/*"]
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]


@pytest.mark.parametrize(
    ("content_type", "data", "as_text"),
    [
        ("application/json", b'{"a":"\xc3\xa9"}', True),
        ("text/plain;charset=UTF-8", b'{"batch":[]}', True),
        ("application/x-www-form-urlencoded", b"pause=7", False),
        ("application/octet-stream", b"\x00\x01", False),
        ("application/json", gzip.compress(b"{}", mtime=0), False),
        (None, b"{}", False),
    ],
    ids=["json", "beacon-text", "form", "octets", "gzip-json", "no-type"],
)
def test_a_body_is_text_or_base64_as_api_gateway_passes_it(gateway, content_type, data, as_text):
    client, recorder = gateway
    headers = {"Content-Type": content_type} if content_type else {}

    client.post("/v1/batch", data=data, headers=headers)

    (event,) = recorder.events
    assert event["isBase64Encoded"] is not as_text
    received = event["body"].encode() if as_text else base64.b64decode(event["body"])
    assert received == data


def test_the_answer_carries_its_headers_cookies_and_decoded_body(gateway):
    client, _ = gateway

    response = client.get("/v1/sourceConfig")

    assert response.get_json() == {"ok": True}
    assert response.headers["Vary"] == "Origin"
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
