"""The HTTP API: Segment-compatible tracking, form webhooks, lead lookup."""

from __future__ import annotations

import functools
import json
from urllib.parse import unquote

from chalice import Chalice, Response

from nurture.adapters.http_api import http_api_handler
from nurture.core.clock import get_clock
from nurture.core.errors import NurtureError
from nurture.core.observability import flush_metrics, get_logger

app = Chalice(app_name="nurture-api")
# Lambda's entry point (template.yaml's Handler): the HTTP API's payload
# format 2.0 events, turned into the REST proxy events Chalice routes.
handler = http_api_handler(app, app.routes)
logger = get_logger()


@app.middleware("http")
def flushes_metrics(event, get_response):
    """Every request's business metrics (events accepted) reach CloudWatch, errors included."""
    try:
        return get_response(event)
    finally:
        flush_metrics()


_ANY = ["*/*"]  # content types are checked in the use cases, with errors naming the field


def _json(status: int, body: dict) -> Response:
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": "application/json"})


def answers_errors(view):
    """The one place typed errors become HTTP responses (Chalice turns any
    exception escaping a view into a bare 500 before middleware sees it)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except NurtureError as error:
            if error.status >= 500:
                logger.exception("request failed")
            return _json(error.status, error.to_body())

    return wrapper


def _raw_body() -> bytes:
    body = app.current_request.raw_body
    return body if isinstance(body, bytes) else body.encode()


# The Segment HTTP Tracking API paths: the long ones of the server SDKs and
# RudderStack, and analytics.js's one-letter ones. None is /v1/batch.
SEGMENT_CALLS: dict[str, str | None] = {
    "batch": None,
    "b": None,
    "track": "track",
    "t": "track",
    "identify": "identify",
    "i": "identify",
    "page": "page",
    "p": "page",
    "screen": "screen",
    "s": "screen",
    "group": "group",
    "g": "group",
    "alias": "alias",
    "a": "alias",
}
_SEGMENT_ROUTES = ("/v1/{call}", "/beacon/v1/batch", "/v1/projects/{writeKey}/settings", "/v1/sourceConfig")
_FORM_ROUTE = "/v1/forms/{source}"


def _web_origins(request) -> list | None:
    """The origins any source of this route allows (a preflight carries no key),
    or None for routes that no web page calls across origins."""
    from nurture.wiring import get_config

    route = (request.context or {}).get("resourcePath")
    if route in _SEGMENT_ROUTES:
        return [source.origins for source in get_config().segment_sources.values()]
    if route == _FORM_ROUTE:
        form = get_config().forms.get((request.uri_params or {}).get("source", ""))
        return [form.origins] if form else []
    return None


@app.middleware("http")
def cross_origin(event, get_response):
    """CORS for the routes browsers call: every answer varies by Origin, and an
    origin some source allows may read it (errors too, so an SDK sees a 4xx
    as final rather than retrying a blocked response)."""
    from nurture.config.origins import allow_headers, any_allows
    from nurture.core.payloads import header

    response = get_response(event)
    origins = _web_origins(event)
    if origins is not None:
        origin = header(event.headers, "origin")
        if any_allows(origins, origin):
            response.headers.update(allow_headers(origin))
        else:
            response.headers["Vary"] = "Origin"
    return response


def _preflight(methods: str, **_path_parameters: str) -> Response:
    from nurture.config.origins import any_allows, preflight_headers
    from nurture.core.errors import ForbiddenError
    from nurture.core.payloads import header

    request = app.current_request
    origin = header(request.headers, "origin")
    if not any_allows(_web_origins(request) or [], origin):
        raise ForbiddenError(
            f"no source allows web pages of {origin or 'an unnamed origin'}: list it in allowed_origins",
            field="Origin",
        )
    requested = header(request.headers, "access-control-request-headers")
    return Response(body="", status_code=204, headers=preflight_headers(origin, methods, requested))


def _ingest(call_type: str | None) -> Response:
    from nurture.wiring import get_ingestor

    request = app.current_request
    parsed = get_ingestor().segment(
        call_type, _raw_body(), request.headers, get_clock().timestamp(), dict(request.query_params or {})
    )
    body: dict = {"success": True}
    if call_type is None:
        body.update(accepted=len(parsed.events), rejected=len(parsed.rejected))
        if parsed.rejected:
            body["errors"] = [rejection.to_body() for rejection in parsed.rejected[:20]]
    return _json(200, body)


@app.route("/v1/{call}", methods=["POST"], content_types=_ANY)
@answers_errors
def segment_call(call: str):
    """Segment's HTTP Tracking API: /v1/batch, /v1/track… and analytics.js's /v1/b, /v1/t…"""
    from nurture.core.errors import NotFoundError

    if call not in SEGMENT_CALLS:
        raise NotFoundError(f"no route /v1/{call:.100}: use one of {', '.join(SEGMENT_CALLS)}", field="path")
    return _ingest(SEGMENT_CALLS[call])


@app.route("/beacon/v1/batch", methods=["POST"], content_types=_ANY)
@answers_errors
def beacon_batch():
    """RudderStack's navigator.sendBeacon batches: the write key comes as ?writeKey=."""
    return _ingest(None)


@app.route("/v1/projects/{writeKey}/settings", methods=["GET"])
@answers_errors
def segment_settings(writeKey: str):  # noqa: N803 - the path parameter's name is Segment's
    """analytics.js's CDN settings, so `analytics._cdn` can point at Nurture."""
    from nurture.ingest.sdk_settings import api_host
    from nurture.ingest.sdk_settings import segment_settings as settings_for
    from nurture.wiring import get_ingestor

    write_key = unquote(writeKey)
    get_ingestor().browser_source(write_key)
    protocol, host = api_host(*_public_base())
    return _json(200, settings_for(write_key, protocol, host))


@app.route("/v1/sourceConfig", methods=["GET"])
@answers_errors
def rudderstack_source_config():
    """RudderStack's source configuration (its `configUrl`), keyed by ?writeKey= or HTTP Basic."""
    from nurture.ingest.api import basic_user
    from nurture.ingest.sdk_settings import rudderstack_source_config as config_for
    from nurture.wiring import get_ingestor

    request = app.current_request
    write_key = basic_user(request.headers.get("authorization")) or (request.query_params or {}).get("writeKey")
    if not write_key:
        from nurture.core.errors import AuthenticationError

        raise AuthenticationError("send the write key as ?writeKey= or the HTTP Basic user name", field="writeKey")
    source = get_ingestor().browser_source(write_key)
    return _json(200, config_for(source, write_key, get_clock().now().isoformat()))


def _public_base() -> tuple[str, str, str]:
    """How the caller reached this API: scheme, host and the path before /v1
    (API Gateway's stage; not a custom domain's base path, which HTTP API
    events do not carry: map a custom domain to the stage at its root)."""
    request = app.current_request
    context = request.context or {}
    scheme = request.headers.get("x-forwarded-proto", "http").split(",")[0].strip()
    host = request.headers.get("host") or context.get("domainName", "")
    # the path as sent (a named stage first) and the same path after the stage
    route_path = request.to_original_event().get("path") or request.path
    full_path = context.get("path") or route_path
    base = full_path[: -len(route_path)] if route_path and full_path.endswith(route_path) else ""
    return scheme, host, base


for _route in (*_SEGMENT_ROUTES, _FORM_ROUTE):
    _methods = "GET, OPTIONS" if _route.startswith(("/v1/projects", "/v1/sourceConfig")) else "POST, OPTIONS"
    app.route(_route, methods=["OPTIONS"], content_types=_ANY, name=f"preflight {_route}")(
        answers_errors(functools.partial(_preflight, _methods))
    )


@app.route("/v1/forms/{source}", methods=["POST"], content_types=_ANY)
@answers_errors
def form(source: str):
    from nurture.wiring import get_ingestor

    request = app.current_request
    message_id = get_ingestor().form(
        source, _raw_body(), request.headers, dict(request.query_params or {}), get_clock().timestamp()
    )
    return _json(202, {"success": True, "message_id": message_id})


def _lead(lead: str) -> str:
    from nurture.ingest.api import lead_reference

    return lead_reference(unquote(lead))


@app.route("/v1/leads/{lead}", methods=["GET"])
@answers_errors
def get_lead(lead: str):
    from nurture.wiring import get_ingestor, get_lead_viewer

    get_ingestor().authenticate_admin(app.current_request.headers)
    return _json(200, get_lead_viewer().describe(_lead(lead), get_clock().timestamp()))


@app.route("/v1/leads/{lead}", methods=["DELETE"])
@answers_errors
def erase_lead(lead: str):
    """Erasure: the lead's profile, events, touches and enrollments go; a hashed tombstone stays."""
    from nurture.wiring import get_eraser, get_ingestor

    get_ingestor().authenticate_admin(app.current_request.headers)
    return _json(200, {"success": True, **get_eraser().erase(_lead(lead), get_clock().timestamp())})


@app.route("/v1/leads/{lead}/outcome", methods=["POST"], content_types=_ANY)
@answers_errors
def lead_outcome(lead: str):
    """A sales outcome (accepted, rejected, opportunity_created, won, lost), queued for the track consumer."""
    from nurture.wiring import get_ingestor, get_outcome_recorder

    get_ingestor().authenticate_admin(app.current_request.headers)
    return _json(202, get_outcome_recorder().record(_lead(lead), _raw_body(), get_clock().timestamp()))


@app.route("/v1/leads/{lead}/next-fields", methods=["GET"])
@answers_errors
def next_fields(lead: str):
    """Progressive profiling: the next unknown profile fields a form should ask
    (a public form key names the visitor by anonymous id only, see ingest.profiling)."""
    from nurture.wiring import get_ingestor, get_profile_advisor

    request = app.current_request
    form = (request.query_params or {}).get("form")
    trusted = get_ingestor().authenticate_form_reader(form, request.headers)
    return _json(200, get_profile_advisor().next_fields(_lead(lead), form, by_anonymous_id=not trusted))


def _html(status: int, page: str) -> Response:
    return Response(body=page, status_code=status, headers={"Content-Type": "text/html; charset=utf-8"})


def _unsubscribing_lead(token: str) -> str:
    from nurture.channels.email import verify_unsubscribe_token
    from nurture.wiring import get_unsubscribe_keys

    return verify_unsubscribe_token(get_unsubscribe_keys().keys()["value"], unquote(token))


@app.route("/v1/unsubscribe/{token}", methods=["GET"])
@answers_errors
def unsubscribe_page(token: str):
    """A confirmation page: a link scanner's GET never unsubscribes anyone."""
    from nurture.channels.consent import confirmation_page

    _unsubscribing_lead(token)
    return _html(200, confirmation_page(token, "", done=False))


@app.route("/v1/unsubscribe/{token}", methods=["POST"], content_types=_ANY)
@answers_errors
def unsubscribe_one_click(token: str):
    """RFC 8058 one-click (List-Unsubscribe-Post) and the confirmation form."""
    from nurture.channels.consent import confirmation_page
    from nurture.wiring import get_consent_keeper

    lead_id = _unsubscribing_lead(token)
    get_consent_keeper().unsubscribe(lead_id, get_clock().timestamp())
    return _html(200, confirmation_page(token, "", done=True))


def _preference_options():
    from nurture.wiring import get_config

    return get_config().policy.preferences


def _preferring_lead(token: str):
    from nurture.wiring import get_consent_keeper

    return get_consent_keeper().lead(_unsubscribing_lead(token))


@app.route("/v1/preferences/{token}", methods=["GET"])
@answers_errors
def preferences_page(token: str):
    """The lead's preference page (topics, frequency, pause), from the link in every email."""
    from nurture.channels.consent import preference_page

    lead = _preferring_lead(token)
    now = get_clock().timestamp()
    return _html(200, preference_page(_preference_options(), lead.preferences, now, f"../unsubscribe/{token}"))


def _check_pause(form_body: str) -> None:
    """The pause is a number of days in ASCII digits: int() would also read
    other scripts' digits and refuse a thousand of them with a ValueError."""
    from urllib.parse import parse_qs

    from nurture.core.errors import ValidationError

    for pause in parse_qs(form_body, keep_blank_values=True).get("pause", []):
        if not (pause.isascii() and pause.isdigit() and len(pause) <= 5):
            raise ValidationError(f"{pause!r:.40} is not a pause on the preference page", field="pause")


@app.route("/v1/preferences/{token}", methods=["POST"], content_types=_ANY)
@answers_errors
def preferences_save(token: str):
    """The preference form's submission (HTML form encoding only)."""
    from nurture.channels.consent import parse_preferences, preference_page
    from nurture.core.errors import UnsupportedMediaTypeError
    from nurture.wiring import get_consent_keeper

    content_type = app.current_request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError("send the form as application/x-www-form-urlencoded", field="Content-Type")
    lead = _preferring_lead(token)
    now = get_clock().timestamp()
    options = _preference_options()
    form_body = _raw_body().decode("utf-8", "replace")
    _check_pause(form_body)
    preferences = parse_preferences(form_body, options, now)
    get_consent_keeper().save_preferences(lead.lead_id, preferences, now)
    page = preference_page(options, preferences, now, f"../unsubscribe/{token}", saved=True)
    return _html(200, page)
