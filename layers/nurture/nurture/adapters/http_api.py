"""API Gateway's HTTP API in front of a REST-shaped app: turns each payload
format 2.0 event into the REST proxy event (format 1.0) the app's router
reads, and the app's answer into a format 2.0 response.

The formats are AWS's "Create AWS Lambda proxy integrations for HTTP APIs"
(docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html):
2.0 has no multiValueHeaders or multiValueQueryStringParameters (repeated
headers and query values arrive joined with commas, so the query is read
from rawQueryString instead), header names are lower case, the request's
cookies come as a `cookies` list rather than a Cookie header, and a
response's `cookies` become one set-cookie header each. The route comes from
`routeKey` ("POST /v1/{call}"): the API declares every route, so a request
never arrives on `$default`, whose key names no template.

What it guarantees: the app sees the route template, method, path and
stage, every query value in order, the headers, the body exactly as API
Gateway delivered it (text, or base64 with isBase64Encoded) and the
caller's address and user agent; a request on a route the app does not
serve is answered 404 without reaching it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

RestApp = Callable[[dict[str, Any], Any], dict[str, Any]]
NOT_FOUND = {
    "statusCode": 404,
    "headers": {"Content-Type": "application/json"},
    "body": json.dumps({"message": "Not Found"}),
    "isBase64Encoded": False,
}


class RouteKeyError(ValueError):
    """The event's routeKey is not "METHOD /path" (the `$default` route's is not)."""


def route_of(event: Mapping[str, Any]) -> tuple[str, str]:
    """(method, route template) of a format 2.0 event, from its routeKey."""
    route_key = str(event.get("routeKey") or "")
    method, _, template = route_key.partition(" ")
    if not template.startswith("/"):
        raise RouteKeyError(f"route key {route_key!r} names no route: declare every route, never $default")
    return method.upper(), template


def _stage_relative(raw_path: str, stage: str) -> str:
    """The path after the stage: a named stage's requests carry it as their
    first segment (the access logs' $context.path is "/{stage}/root/child"),
    the $default stage's and a custom domain's do not."""
    prefix = f"/{stage}"
    if stage and stage != "$default" and (raw_path == prefix or raw_path.startswith(prefix + "/")):
        return raw_path[len(prefix) :] or "/"
    return raw_path


def rest_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The REST proxy event API Gateway would have sent for this format 2.0 one."""
    method, template = route_of(event)
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    stage = str(context.get("stage") or "$default")
    raw_path = str(event.get("rawPath") or http.get("path") or "/")
    headers = dict(event.get("headers") or {})
    cookies = event.get("cookies") or []
    if cookies:
        # The request's Cookie headers, each cookie an item (RFC 6265: "; " between pairs).
        headers["cookie"] = "; ".join(cookies)
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True):
        query.setdefault(name, []).append(value)
    path = _stage_relative(raw_path, stage)
    return {
        "version": "1.0",
        "resource": template,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        # 2.0 has joined repeated headers with commas: one value each, as received.
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": dict(event.get("pathParameters") or {}) or None,
        "stageVariables": dict(event.get("stageVariables") or {}) or None,
        "requestContext": {
            "resourcePath": template,
            "httpMethod": method,
            "path": raw_path,
            "stage": stage,
            "requestId": context.get("requestId"),
            "apiId": context.get("apiId"),
            "accountId": context.get("accountId"),
            "domainName": context.get("domainName"),
            "domainPrefix": context.get("domainPrefix"),
            "protocol": http.get("protocol"),
            "requestTimeEpoch": context.get("timeEpoch"),
            "identity": {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")},
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def http_api_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """The format 2.0 response of a REST proxy one: multi-value headers joined
    with ", " (RFC 9110 section 5.3), Set-Cookie's values moved to `cookies`,
    which API Gateway sends as one set-cookie header each."""
    headers: dict[str, str] = {}
    names: dict[str, str] = {}  # lower-case name -> the spelling first seen
    cookies: list[str] = []

    def add(name: str, value: Any) -> None:
        if name.lower() == "set-cookie":
            cookies.append(str(value))
            return
        key = names.setdefault(name.lower(), name)
        headers[key] = f"{headers[key]}, {value}" if key in headers else str(value)

    for name, value in (response.get("headers") or {}).items():
        add(name, value)
    for name, values in (response.get("multiValueHeaders") or {}).items():
        for value in values:
            add(name, value)
    answer: dict[str, Any] = {
        "statusCode": int(response.get("statusCode") or 200),
        "headers": headers,
        "body": response.get("body") or "",
        "isBase64Encoded": bool(response.get("isBase64Encoded")),
    }
    if cookies:
        answer["cookies"] = cookies
    return answer


def is_rest_event(event: Mapping[str, Any]) -> bool:
    """A REST API's proxy event (no format version 2.0, a method of its own):
    the format the app reads, passed through as it is. The template keeps a
    REST API for the unsubscribe and preference links in email sent before
    the HTTP API."""
    return event.get("version") != "2.0" and "httpMethod" in event


def http_api_handler(app: RestApp, routes: Mapping[str, Mapping[str, Any]]) -> Callable[[dict[str, Any], Any], dict]:
    """A Lambda handler for an HTTP API integration (payload format 2.0) in
    front of `app`, a REST proxy handler serving `routes` (template -> methods)."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if is_rest_event(event):
            return app(event, context)
        method, template = route_of(event)
        if method not in (routes.get(template) or {}):
            return dict(NOT_FOUND)
        return http_api_response(app(rest_event(event), context))

    return handler
