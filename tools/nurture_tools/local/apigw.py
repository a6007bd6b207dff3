"""A local API Gateway: turns HTTP requests into REST API proxy events for the
API function's handler and its responses back into HTTP, as API Gateway does
with binary media types */* (bodies arrive base64-encoded).

Routing is API Gateway's: a literal path segment wins over a `{parameter}` at
the same depth, and a path or method the template does not declare never
reaches the function (403 "Missing Authentication Token"), so a route missing
from template.yaml fails here as it would deployed."""

from __future__ import annotations

import base64
import re
import uuid
from types import SimpleNamespace
from typing import Any

from werkzeug.wrappers import Request, Response

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


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


class ApiGateway:
    def __init__(self, routes: list[tuple[str, str]], handler: Any, function_name: str = "api") -> None:
        self.handler = handler
        self.function_name = function_name
        self._methods: dict[str, set[str]] = {}
        for method, path in routes:
            self._methods.setdefault(path, set()).add(method.upper())
        # Literal segments before parameters, segment by segment, as API Gateway picks a resource.
        self._routes = sorted(
            ((path, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")) for path in self._methods),
            key=lambda route: [segment.startswith("{") for segment in route[0].split("/")],
        )

    def _match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found:
                return (route, found.groupdict()) if method in self._methods[route] else None
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.respond(request)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return Response('{"message":"Request Too Long"}', 413, content_type="application/json")
        matched = self._match(request.method, request.path)
        if matched is None:
            return Response('{"message":"Missing Authentication Token"}', 403, content_type="application/json")
        route, path_parameters = matched
        body = request.get_data()
        query = {key: values for key, values in request.args.lists()}
        event = {
            "resource": route,
            "path": request.path,
            "httpMethod": request.method,
            "headers": {key: value for key, value in request.headers.items()},
            "multiValueHeaders": {key: request.headers.getlist(key) for key in request.headers.keys()},  # noqa: SIM118 - Headers iterates pairs
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route,
                "httpMethod": request.method,
                "path": request.path,
                "stage": "local",
                "requestId": str(uuid.uuid4()),
                "identity": {"sourceIp": request.remote_addr, "userAgent": request.user_agent.string},
            },
            "body": base64.b64encode(body).decode() if body else None,
            "isBase64Encoded": bool(body),
        }
        result = self.handler(event, lambda_context(self.function_name))
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        response = Response(data, status=result.get("statusCode", 200))
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = value
        for key, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(key, value)
        return response
