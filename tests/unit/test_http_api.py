"""The HTTP API adapter (nurture.adapters.http_api): payload format 2.0 events
in, the REST proxy events Chalice routes, format 2.0 responses out.

The fixture tests/events/http_api/documented_v2.json is AWS's example format
2.0 event from "Create AWS Lambda proxy integrations for HTTP APIs in API
Gateway" (https://docs.aws.amazon.com/apigateway/latest/developerguide/
http-api-develop-integrations-lambda.html, "Payload format structure"), whose
header names are lower case as the page says all of them are."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from typing import Any

import pytest
from chalice import Chalice, Response

from nurture.adapters.http_api import RouteKeyError, http_api_handler, http_api_response, rest_event
from tests.conftest import EVENTS_DIR

DOCUMENTED = json.loads((EVENTS_DIR / "http_api" / "documented_v2.json").read_text())


def _documented(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(DOCUMENTED)
    event.update(changes)
    return event


def _event(route_key: str, path: str, **changes: Any) -> dict[str, Any]:
    """A format 2.0 event for one request on a declared route."""
    method = route_key.split(" ")[0]
    event = _documented(routeKey=route_key, rawPath=path, rawQueryString="", cookies=None, body=None)
    event.pop("queryStringParameters")
    event.pop("pathParameters")
    event.pop("stageVariables")
    event["headers"] = {"host": "id.execute-api.us-east-1.amazonaws.com"}
    event["requestContext"].update(routeKey=route_key, http={**event["requestContext"]["http"], "method": method})
    event.update(changes)
    return event


def _echo_app(routes: dict[str, list[str]]) -> Chalice:
    """A Chalice app serving `routes`, each view answering what Chalice read of the request."""
    echo = Chalice(app_name="echo")

    def view(**uri_params: str) -> dict[str, Any]:
        request = echo.current_request
        return {
            "route": request.path,
            "method": request.method,
            "uri_params": uri_params,
            "query": {name: request.query_params.getlist(name) for name in request.query_params or {}},
            "headers": dict(request.headers),
            "body": base64.b64encode(request.raw_body).decode(),
            "context_path": request.context.get("path"),
            "source_ip": request.context["identity"]["sourceIp"],
        }

    for path, methods in routes.items():
        for method in methods:
            echo.route(path, methods=[method], content_types=["*/*"], name=f"{method} {path}")(view)
    return echo


def _api_routes() -> dict[str, list[str]]:
    from api.app import app

    return {path: sorted(methods) for path, methods in app.routes.items()}


def _concrete(path: str) -> str:
    return path.replace("{", "").replace("}", "-value")


def test_the_documented_event_on_a_declared_route_becomes_the_rest_event_chalice_reads():
    # Given AWS's documented format 2.0 event, on a declared route
    event = _documented(routeKey="POST /my/path")

    # When it is turned into a REST proxy event
    rest = rest_event(event)

    # Then Chalice finds its route template, method and every value it reads
    assert (rest["requestContext"]["resourcePath"], rest["requestContext"]["httpMethod"]) == ("/my/path", "POST")
    assert (rest["resource"], rest["path"], rest["httpMethod"]) == ("/my/path", "/my/path", "POST")
    assert rest["multiValueQueryStringParameters"] == {"parameter1": ["value1", "value2"], "parameter2": ["value"]}
    assert rest["queryStringParameters"] == {"parameter1": "value2", "parameter2": "value"}
    assert rest["headers"] == {"header1": "value1", "header2": "value1,value2", "cookie": "cookie1; cookie2"}
    assert rest["pathParameters"] == {"parameter1": "value1"}
    assert rest["stageVariables"] == {"stageVariable1": "value1", "stageVariable2": "value2"}
    assert (rest["body"], rest["isBase64Encoded"]) == ("Hello from Lambda", False)
    assert rest["requestContext"]["identity"] == {"sourceIp": "IP", "userAgent": "agent"}
    assert rest["requestContext"]["stage"] == "$default"
    assert rest["requestContext"]["domainName"] == "id.execute-api.us-east-1.amazonaws.com"


def test_the_documented_event_on_the_default_route_is_refused_naming_it():
    # Given AWS's documented event as it is: on the $default route, whose key names no template
    handler = http_api_handler(_echo_app({"/my/path": ["POST"]}), {"/my/path": {"POST": None}})

    # When the handler gets it, Then it refuses it loudly (the template declares every route)
    with pytest.raises(RouteKeyError, match=r"\$default"):
        handler(copy.deepcopy(DOCUMENTED), None)


@pytest.mark.parametrize(
    ("method", "path"), [(method, path) for path, methods in _api_routes().items() for method in methods]
)
def test_every_declared_route_reaches_its_view_with_its_values(method, path):
    # Given a Chalice app with the API's routes, behind the adapter
    echo = _echo_app(_api_routes())
    handler = http_api_handler(echo, echo.routes)
    concrete = _concrete(path)
    parameters = {name[1:-1]: name[1:-1] + "-value" for name in path.split("/") if name.startswith("{")}
    body = b'{"userId":"u1"}' if method in ("POST", "DELETE") else None

    # When a request on it arrives through a named stage
    event = _event(
        f"{method} {path}",
        f"/prod{concrete}",
        rawQueryString="writeKey=wk&form=f",
        pathParameters=parameters or None,
        body=body.decode() if body else None,
    )
    event["requestContext"]["stage"] = "prod"
    answer = handler(event, None)

    # Then Chalice ran the route's view with everything of the request
    assert answer["statusCode"] == 200, answer
    seen = json.loads(answer["body"])
    assert (seen["route"], seen["method"], seen["uri_params"]) == (path, method, parameters)
    assert seen["query"] == {"writeKey": ["wk"], "form": ["f"]}
    assert base64.b64decode(seen["body"]) == (body or b"")
    assert seen["context_path"] == f"/prod{concrete}"
    assert seen["source_ip"] == "IP"


@pytest.mark.parametrize(
    ("body", "is_base64", "expected"),
    [
        (
            base64.b64encode(gzip.compress(b'{"batch":[]}', mtime=0)).decode(),
            True,
            gzip.compress(b'{"batch":[]}', mtime=0),
        ),
        (base64.b64encode(bytes(range(256))).decode(), True, bytes(range(256))),
        ('{"name":"Zoë 😀"}', False, '{"name":"Zoë 😀"}'.encode()),
        ("List-Unsubscribe=One-Click", False, b"List-Unsubscribe=One-Click"),
    ],
    ids=["gzip-base64", "every-byte-base64", "utf8-text", "form-text"],
)
def test_a_body_reaches_the_app_byte_exact_in_either_form(body, is_base64, expected):
    # Given a body as API Gateway delivers it: base64 when it does not take it for text, text otherwise
    echo = _echo_app({"/v1/{call}": ["POST"]})
    event = _event(
        "POST /v1/{call}", "/v1/batch", pathParameters={"call": "batch"}, body=body, isBase64Encoded=is_base64
    )

    # When the app reads it
    answer = http_api_handler(echo, echo.routes)(event, None)

    # Then it has the bytes the client sent
    assert base64.b64decode(json.loads(answer["body"])["body"]) == expected


def test_a_request_without_a_body_reads_as_empty():
    # Given a GET: format 2.0 leaves the body out
    echo = _echo_app({"/v1/sourceConfig": ["GET"]})
    event = _event("GET /v1/sourceConfig", "/v1/sourceConfig")
    assert "body" not in event or event["body"] is None
    event.pop("body", None)

    # When the app reads it, Then its body is empty
    answer = http_api_handler(echo, echo.routes)(event, None)
    assert json.loads(answer["body"])["body"] == ""


def test_repeated_query_keys_reach_the_app_apart_and_in_order():
    # Given a query whose keys repeat, one value holding a comma (2.0's
    # queryStringParameters would join them with commas)
    echo = _echo_app({"/v1/sourceConfig": ["GET"]})
    event = _event(
        "GET /v1/sourceConfig",
        "/v1/sourceConfig",
        rawQueryString="tag=a%2Cb&tag=c&writeKey=wk&empty=",
        queryStringParameters={"tag": "a,b,c", "writeKey": "wk", "empty": ""},
    )

    # When the app reads it
    query = json.loads(http_api_handler(echo, echo.routes)(event, None)["body"])["query"]

    # Then every value is its own, decoded, blank ones kept
    assert query == {"tag": ["a,b", "c"], "writeKey": ["wk"], "empty": [""]}


def test_cookies_reach_the_app_as_one_cookie_header():
    # Given the request's cookies as format 2.0 lists them
    echo = _echo_app({"/v1/sourceConfig": ["GET"]})
    event = _event("GET /v1/sourceConfig", "/v1/sourceConfig", cookies=["ajs_user_id=u1", "theme=dark"])

    # When the app reads its headers, Then the cookies are one Cookie header
    headers = json.loads(http_api_handler(echo, echo.routes)(event, None)["body"])["headers"]
    assert headers["cookie"] == "ajs_user_id=u1; theme=dark"


def test_a_named_stage_is_stripped_from_the_path_but_kept_in_the_context():
    # Given a request through the prod stage: API Gateway puts the stage before the path
    event = _event("GET /v1/projects/{writeKey}/settings", "/prod/v1/projects/wk/settings")
    event["requestContext"]["stage"] = "prod"

    # When it becomes a REST event
    rest = rest_event(event)

    # Then the path is the route's, the context's the full one
    assert (rest["path"], rest["requestContext"]["path"]) == (
        "/v1/projects/wk/settings",
        "/prod/v1/projects/wk/settings",
    )


def test_a_route_the_app_does_not_serve_is_404_without_reaching_it():
    # Given an app that serves only POST /v1/{call}
    reached = []

    def app(event: dict, context: Any) -> dict:
        reached.append(event)
        return {"statusCode": 200, "body": ""}

    handler = http_api_handler(app, {"/v1/{call}": {"POST": None}})

    # When a request arrives on another route key
    answer = handler(_event("PUT /v1/{call}", "/v1/batch"), None)

    # Then it is API Gateway's own answer to an unrouted request
    assert (answer["statusCode"], json.loads(answer["body"])) == (404, {"message": "Not Found"})
    assert reached == []


def test_multi_value_response_headers_are_joined_and_cookies_moved():
    # Given an app answering a header twice, and cookies both ways Chalice can
    echo = Chalice(app_name="headers")

    @echo.route("/v1/sourceConfig", methods=["GET"])
    def answer_with_headers():
        return Response(
            body="{}",
            status_code=201,
            headers={
                "Content-Type": "application/json",
                "Vary": ["Origin", "Accept-Encoding"],
                "Set-Cookie": ["a=1; Path=/", "b=2; Secure"],
                "Cache-Control": "no-store",
            },
        )

    # When its answer goes back through the adapter
    answer = http_api_handler(echo, echo.routes)(_event("GET /v1/sourceConfig", "/v1/sourceConfig"), None)

    # Then each header is one value, joined per RFC 9110, and the cookies are 2.0's list
    assert answer["statusCode"] == 201
    assert answer["headers"] == {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "Vary": "Origin, Accept-Encoding",
    }
    assert answer["cookies"] == ["a=1; Path=/", "b=2; Secure"]
    assert (answer["body"], answer["isBase64Encoded"]) == ("{}", False)


def test_a_header_given_both_single_and_multi_valued_is_one_header():
    response = {
        "statusCode": 200,
        "headers": {"Vary": "Origin", "Set-Cookie": "a=1"},
        "multiValueHeaders": {"vary": ["Accept-Encoding"], "set-cookie": ["b=2"]},
        "body": "",
    }

    assert http_api_response(response) == {
        "statusCode": 200,
        "headers": {"Vary": "Origin, Accept-Encoding"},
        "cookies": ["a=1", "b=2"],
        "body": "",
        "isBase64Encoded": False,
    }


def test_a_base64_answer_stays_base64():
    response = {
        "statusCode": 200,
        "headers": {},
        "body": base64.b64encode(b"\x00\xff").decode(),
        "isBase64Encoded": True,
    }

    answer = http_api_response(response)

    assert (base64.b64decode(answer["body"]), answer["isBase64Encoded"]) == (b"\x00\xff", True)


def test_a_rest_api_event_from_an_old_email_link_reaches_the_app_as_it_came():
    # Given the app behind the adapter, and the REST proxy event the kept REST
    # API sends for an unsubscribe link in email sent before the HTTP API
    handler = http_api_handler(_echo_app(_api_routes()), _api_routes())
    event = {
        "resource": "/v1/unsubscribe/{token}",
        "path": "/v1/unsubscribe/tok-123",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "multiValueHeaders": {"Content-Type": ["application/x-www-form-urlencoded"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"token": "tok-123"},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/v1/unsubscribe/{token}",
            "httpMethod": "POST",
            "path": "/prod/v1/unsubscribe/tok-123",
            "stage": "prod",
            "identity": {"sourceIp": "198.51.100.7"},
        },
        "body": base64.b64encode(b"List-Unsubscribe=One-Click").decode(),
        "isBase64Encoded": True,
    }

    # When it is handled
    answer = handler(copy.deepcopy(event), None)

    # Then the app routed it as the REST API's event it is, body byte-exact,
    # and the answer is the app's own REST proxy response
    assert answer["statusCode"] == 200
    assert "cookies" not in answer
    seen = json.loads(answer["body"])
    assert (seen["route"], seen["method"], seen["uri_params"]) == (
        "/v1/unsubscribe/{token}",
        "POST",
        {"token": "tok-123"},
    )
    assert base64.b64decode(seen["body"]) == b"List-Unsubscribe=One-Click"
    assert seen["source_ip"] == "198.51.100.7"
