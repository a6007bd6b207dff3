"""A local API Gateway HTTP API: turns HTTP requests into the payload format
2.0 events an HTTP API sends the API function's handler, and its format 2.0
responses back into HTTP.

What it copies from AWS's documentation ("Create routes for HTTP APIs" and
"Create AWS Lambda proxy integrations for HTTP APIs", API Gateway developer
guide): a route is a method and a path; the most specific route wins (a
literal segment over a `{parameter}` at the same depth); a request no route
matches never reaches the function and is answered 404 {"message":"Not
Found"}; path parameters are URL-decoded; header names are lower case and
repeated headers joined with commas, as are repeated query values in
queryStringParameters (rawQueryString keeps them apart); the Cookie header
becomes the `cookies` list; a body API Gateway does not take for text is
base64-encoded. AWS does not list the text media types; these are the ones
observed as text on AWS (ministackorg/ministack pull request 766): text/*,
application/json, application/xml, application/javascript. A body of a text
type that is not UTF-8 (gzip under application/json) is base64-encoded here,
the only form in which a JSON event can carry it unchanged.

The API is served at the root, as a `$default` stage would be; the deployed
stage's name is in the path there and the handler strips it."""

from __future__ import annotations

import base64
import time
import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


def lambda_context(function_name: str) -> Any:
    return SimpleNamespace(
        function_name=function_name,
        function_version="$LATEST",
        memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}",
        aws_request_id=str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="local",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def is_text(content_type: str | None) -> bool:
    """Whether an HTTP API passes a body of this media type as text (not base64)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_TYPES


def event_body(data: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """A request body as an HTTP API puts it in the event: (body, isBase64Encoded)."""
    if not data:
        return None, False
    if is_text(content_type):
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode(), True


def call_event(call: str, body: bytes, content_type: str, authorization: str, request_id: str) -> dict[str, Any]:
    """The format 2.0 event an HTTP API on stage "prod" sends for one
    tracking call (POST /v1/{call}) of a browser, for replaying calls into
    the API function's handler without a gateway."""
    text, encoded = event_body(body, content_type)
    route_key, path = "POST /v1/{call}", f"/prod/v1/{call}"
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": content_type, "authorization": authorization},
        "pathParameters": {"call": call},
        "requestContext": {
            "http": {"method": "POST", "path": path, "sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0"},
            "routeKey": route_key,
            "stage": "prod",
            "requestId": request_id,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class ApiGateway:
    def __init__(self, routes: list[tuple[str, str]], handler: Any, function_name: str = "api") -> None:
        self.handler = handler
        self.function_name = function_name
        # Most specific first: literal segments before parameters, segment by segment.
        self._routes = sorted(
            {(method.upper(), path) for method, path in routes},
            key=lambda route: [segment.startswith("{") for segment in route[1].split("/")],
        )

    def match(self, method: str, raw_path: str) -> tuple[str, dict[str, str]] | None:
        """The route key and decoded path parameters of a request, or None."""
        segments = raw_path.split("/")
        for route_method, route in self._routes:
            template = route.split("/")
            if route_method != method or len(template) != len(segments):
                continue
            parameters: dict[str, str] = {}
            for pattern, segment in zip(template, segments, strict=True):
                if pattern.startswith("{") and pattern.endswith("}") and segment:
                    parameters[pattern[1:-1]] = unquote(segment)
                elif pattern != segment:
                    break
            else:
                return f"{method} {route}", parameters
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.respond(request)
        return response(environ, start_response)

    def event(self, request: Request) -> dict[str, Any] | None:
        """The format 2.0 event of a request, or None when no route takes it."""
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        raw_path = raw_uri.split("?", 1)[0] or "/"
        matched = self.match(request.method, raw_path)
        if matched is None:
            return None
        route_key, path_parameters = matched
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers.items():
            name = name.lower()
            if name == "cookie":
                cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
            else:
                headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_query = request.environ.get("QUERY_STRING", "")
        query: dict[str, str] = {}
        for name, values in request.args.lists():
            query[name] = ",".join(values)
        body, encoded = event_body(request.get_data(), request.headers.get("content-type"))
        now = time.time()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": raw_path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr,
                    "userAgent": request.user_agent.string,
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": encoded,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body is not None:
            event["body"] = body
        return event

    def respond(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return Response('{"message":"Request Entity Too Large"}', 413, content_type="application/json")
        event = self.event(request)
        if event is None:
            return Response('{"message":"Not Found"}', 404, content_type="application/json")
        result = self.handler(event, lambda_context(self.function_name))
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        response = Response(data, status=result.get("statusCode", 200))
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = value
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response
