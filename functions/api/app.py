"""The HTTP API: Segment-compatible tracking, form webhooks, lead lookup."""

from __future__ import annotations

import functools
import json
from urllib.parse import unquote

from chalice import Chalice, Response
from nurture.clock import get_clock
from nurture.errors import NurtureError
from nurture.observability import flush_metrics, get_logger

app = Chalice(app_name="nurture-api")
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


def _segment(call_type: str | None) -> Response:
    from nurture.wiring import get_ingestor

    request = app.current_request
    get_ingestor().segment(call_type, _raw_body(), request.headers, get_clock().timestamp())
    return _json(200, {"success": True})


@app.route("/v1/batch", methods=["POST"], content_types=_ANY)
@answers_errors
def batch():
    return _segment(None)


@app.route("/v1/track", methods=["POST"], content_types=_ANY)
@answers_errors
def track():
    return _segment("track")


@app.route("/v1/identify", methods=["POST"], content_types=_ANY)
@answers_errors
def identify():
    return _segment("identify")


@app.route("/v1/page", methods=["POST"], content_types=_ANY)
@answers_errors
def page():
    return _segment("page")


@app.route("/v1/screen", methods=["POST"], content_types=_ANY)
@answers_errors
def screen():
    return _segment("screen")


@app.route("/v1/group", methods=["POST"], content_types=_ANY)
@answers_errors
def group():
    return _segment("group")


@app.route("/v1/alias", methods=["POST"], content_types=_ANY)
@answers_errors
def alias():
    return _segment("alias")


@app.route("/v1/forms/{source}", methods=["POST"], content_types=_ANY)
@answers_errors
def form(source: str):
    from nurture.wiring import get_ingestor

    request = app.current_request
    message_id = get_ingestor().form(
        source, _raw_body(), request.headers, dict(request.query_params or {}), get_clock().timestamp()
    )
    return _json(202, {"success": True, "message_id": message_id})


@app.route("/v1/leads/{lead}", methods=["GET"])
@answers_errors
def get_lead(lead: str):
    from nurture.lead_view import describe_lead
    from nurture.wiring import get_config, get_ingestor, get_store

    get_ingestor().authenticate_admin(app.current_request.headers)
    return _json(200, describe_lead(get_store(), get_config(), unquote(lead), get_clock().timestamp()))


@app.route("/v1/leads/{lead}", methods=["DELETE"])
@answers_errors
def erase_lead(lead: str):
    """Erasure: the lead's profile, events, touches and enrollments go; a hashed tombstone stays."""
    from nurture.wiring import get_eraser, get_ingestor

    get_ingestor().authenticate_admin(app.current_request.headers)
    return _json(200, {"success": True, **get_eraser().erase(unquote(lead), get_clock().timestamp())})


@app.route("/v1/leads/{lead}/outcome", methods=["POST"], content_types=_ANY)
@answers_errors
def lead_outcome(lead: str):
    """A sales outcome (accepted, rejected, opportunity_created, won, lost), queued for the track consumer."""
    from nurture.outcomes import record_outcome
    from nurture.wiring import get_config, get_ingestor, get_store

    ingestor = get_ingestor()
    ingestor.authenticate_admin(app.current_request.headers)
    now = get_clock().timestamp()
    return _json(202, record_outcome(get_store(), ingestor.queue, get_config(), unquote(lead), _raw_body(), now))


@app.route("/v1/leads/{lead}/next-fields", methods=["GET"])
@answers_errors
def next_fields(lead: str):
    """Progressive profiling: the next unknown profile fields a form should ask."""
    from nurture.profiling import next_fields as fields_to_ask
    from nurture.wiring import get_config, get_ingestor, get_store

    request = app.current_request
    form = (request.query_params or {}).get("form")
    get_ingestor().authenticate_form_reader(form, request.headers)
    return _json(200, fields_to_ask(get_store(), get_config(), unquote(lead), form))


def _html(status: int, page: str) -> Response:
    return Response(body=page, status_code=status, headers={"Content-Type": "text/html; charset=utf-8"})


def _unsubscribing_lead(token: str) -> str:
    from nurture.email import verify_unsubscribe_token
    from nurture.wiring import get_unsubscribe_keys

    return verify_unsubscribe_token(get_unsubscribe_keys().keys()["value"], unquote(token))


@app.route("/v1/unsubscribe/{token}", methods=["GET"])
@answers_errors
def unsubscribe_page(token: str):
    """A confirmation page: a link scanner's GET never unsubscribes anyone."""
    from nurture.consent import confirmation_page

    _unsubscribing_lead(token)
    return _html(200, confirmation_page(token, "", done=False))


@app.route("/v1/unsubscribe/{token}", methods=["POST"], content_types=_ANY)
@answers_errors
def unsubscribe_one_click(token: str):
    """RFC 8058 one-click (List-Unsubscribe-Post) and the confirmation form."""
    from nurture.consent import confirmation_page, unsubscribe
    from nurture.wiring import get_publisher, get_store

    lead_id = _unsubscribing_lead(token)
    unsubscribe(get_store(), get_publisher(), lead_id, get_clock().timestamp())
    return _html(200, confirmation_page(token, "", done=True))


def _preference_options():
    from nurture.wiring import get_config

    return get_config().policy.preferences


def _preferring_lead(token: str):
    from nurture.errors import NotFoundError
    from nurture.wiring import get_store

    lead_id = _unsubscribing_lead(token)
    lead = get_store().get_leads([lead_id], consistent=True).get(lead_id)
    if lead is None:
        raise NotFoundError("no such lead", field="token")
    return lead


@app.route("/v1/preferences/{token}", methods=["GET"])
@answers_errors
def preferences_page(token: str):
    """The lead's preference page (topics, frequency, pause), from the link in every email."""
    from nurture.consent import preference_page

    lead = _preferring_lead(token)
    now = get_clock().timestamp()
    return _html(200, preference_page(_preference_options(), lead.preferences, now, f"../unsubscribe/{token}"))


@app.route("/v1/preferences/{token}", methods=["POST"], content_types=_ANY)
@answers_errors
def preferences_save(token: str):
    """The preference form's submission (HTML form encoding only)."""
    from nurture.consent import parse_preferences, preference_page, save_preferences
    from nurture.errors import UnsupportedMediaTypeError
    from nurture.wiring import get_store

    content_type = app.current_request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError("send the form as application/x-www-form-urlencoded", field="Content-Type")
    lead = _preferring_lead(token)
    now = get_clock().timestamp()
    options = _preference_options()
    preferences = parse_preferences(_raw_body().decode("utf-8", "replace"), options, now)
    save_preferences(get_store(), lead.lead_id, preferences, now)
    page = preference_page(options, preferences, now, f"../unsubscribe/{token}", saved=True)
    return _html(200, page)
