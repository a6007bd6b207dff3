"""Every route of the API, fuzzed: generated bodies and headers (malformed
JSON, deep nesting, huge and non-finite numbers, lone surrogates, long
strings, wrong types, missing, extra and wrong credentials) sent through the
local API Gateway to the API function under moto, and what was accepted run
through the track function.

Whatever is sent:
- the answer is never a 5xx, and an error answer names its field;
- a refused request stores nothing: no message on the ingest queue, no
  DynamoDB write;
- an accepted request's events, run through the track function, are all
  stored, none reported as a batch item failure (which would park it in the
  dead-letter queue), and the lead view of every lead they touched answers;
- every DynamoDB write, the API's and the track function's, is one the real
  service takes: moto does not check number precision or nesting, so each
  request is checked here (numbers of at most 38 digits in DynamoDB's range,
  valid Unicode, non-empty names, 32 levels, keys of at most 2,048 and 1,024
  bytes, items under 400 KB).

Deterministic (derandomized, no example database) and bounded: the number of
examples each test tries is FUZZ_EXAMPLES (NURTURE_FUZZ_EXAMPLES raises it
for a longer hunt).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from werkzeug.test import Client

from nurture import wiring
from nurture.ingest.api import sign_form
from nurture_tools.local.apigw import ApiGateway
from nurture_tools.local.moto_runtime import MOTO_CONFIG
from nurture_tools.local.template import LocalStack
from tests.conftest import EVENTS_DIR, PROJECT_DIR
from tests.integration.conftest import (
    ADMIN_KEY,
    FORM_SECRET,
    TALLY_SECRET,
    TYPEFORM_SECRET,
    WEBINAR_SECRET,
    WRITE_KEY,
    provision,
)

FUZZ_EXAMPLES = int(os.environ.get("NURTURE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SUBSCRIBER = "lead-fuzz-subscriber"
ERASABLE = "erasable@fuzz.example"
SITE = "https://www.example.com"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


# --- what DynamoDB itself refuses (and moto lets through) ------------------------------


def _number_refused(text: str) -> str | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return f"N {text!r:.40} is not a number"
    if not number.is_finite():
        return f"N {text!r:.40} is not finite"
    if number.is_zero():
        return None
    digits = number.normalize().as_tuple().digits
    if len(digits) > 38:
        return f"N {text!r:.60} has more than 38 significant digits"
    if not Decimal("1e-130") <= abs(number) < Decimal("1e126"):
        return f"N {text!r:.40} is out of DynamoDB's range"
    return None


def _value_refused(attribute: dict[str, Any], depth: int = 0) -> str | None:
    ((kind, value),) = attribute.items()
    if kind == "N":
        return _number_refused(value)
    if kind == "S":
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "S holds a lone surrogate"
    if kind in ("M", "L"):
        if depth >= 32:
            return "nested deeper than 32 levels"
        children = value.items() if kind == "M" else enumerate(value)
        for name, child in children:
            if kind == "M" and not name:
                return "an empty attribute name in a map"
            problem = _value_refused(child, depth + 1)
            if problem:
                return problem
    return None


def _size(attribute: dict[str, Any]) -> int:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return len(value.encode("utf-8", "surrogatepass"))
    if kind == "N":
        return len(value)
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8", "surrogatepass")) + 1 + _size(v) for name, v in value.items())
    if kind == "L":
        return 3 + sum(1 + _size(v) for v in value)
    return 1


def _item_refused(item: dict[str, Any]) -> str | None:
    for name, attribute in item.items():
        problem = _value_refused(attribute)
        if problem:
            return f"{name}: {problem}"
    for name, limit in (("pk", 2048), ("sk", 1024)):
        if name in item and _size(item[name]) > limit:
            return f"{name} is longer than {limit} bytes"
    if sum(len(name) + _size(value) for name, value in item.items()) > 400 * 1024:
        return "the item is larger than 400 KB"
    return None


def _request_refused(operation: str, params: dict[str, Any]) -> str | None:
    items: list[dict[str, Any]] = []
    if "Item" in params:
        items.append(params["Item"])
    if "Key" in params:
        items.append(params["Key"])
    items.extend({"v": value} for value in (params.get("ExpressionAttributeValues") or {}).values())
    for requests in (params.get("RequestItems") or {}).values():
        for request in requests:
            put, delete = request.get("PutRequest"), request.get("DeleteRequest")
            items.append(put["Item"] if put else delete["Key"])
    for action in params.get("TransactItems") or []:
        for part in action.values():
            items.extend(p for p in (part.get("Item"), part.get("Key")) if p)
            items.extend({"v": value} for value in (part.get("ExpressionAttributeValues") or {}).values())
    for item in items:
        problem = _item_refused(item)
        if problem:
            return f"{operation}: {problem}"
    return None


@dataclass
class WriteLog:
    """The DynamoDB writes made since the last reset, and any DynamoDB would refuse."""

    operations: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    event_keys: set[str] = field(default_factory=set)  # sort keys of the event items written
    lead_keys: set[str] = field(default_factory=set)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name not in WRITES:
            return
        self.operations.append(model.name)
        problem = _request_refused(model.name, params)
        if problem:
            self.refused.append(problem)
        for requests in (params.get("RequestItems") or {}).values():
            for request in requests:
                if "PutRequest" in request:
                    self._note(request["PutRequest"]["Item"])
        if "Item" in params:
            self._note(params["Item"])

    def _note(self, item: dict[str, Any]) -> None:
        from nurture.store import layout

        sort_key = item.get("sk", {}).get("S", "")
        if sort_key.startswith(layout.EVENT_PREFIX):
            self.event_keys.add(sort_key.removeprefix(layout.EVENT_PREFIX))
        if sort_key == layout.LEAD_SK:
            self.lead_keys.add(item["pk"]["S"].removeprefix(layout.LEAD_PREFIX))

    def reset(self) -> None:
        self.operations, self.refused, self.lead_keys = [], [], set()


# --- the stack, once for the module ----------------------------------------------------


@dataclass
class Stack:
    api: Client
    routes: list[tuple[str, str]]  # (method, path) of every route the template gives the API function
    session: Any
    queue_url: str
    writes: WriteLog
    stored_events: set[str] = field(default_factory=set)  # every event id stored so far
    consumed: int = 0  # accepted events run through the track function
    tokens: dict[str, str] = field(default_factory=dict)
    tried: dict[str, int] = field(default_factory=dict)  # requests sent, by route
    tests: set[str] = field(default_factory=set)  # the fuzz tests that sent them

    def drain(self) -> list[dict[str, Any]]:
        sqs, messages = self.session.client("sqs"), []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as patch, mock_aws(config=MOTO_CONFIG):
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        session = boto3.session.Session(region_name="us-east-1")
        env = provision(session, "fuzz", patch, log_level="CRITICAL")
        wiring.reset()
        from api.app import handler

        from nurture.adapters.aws import aws_client
        from nurture.channels.email import unsubscribe_token
        from nurture.core.domain import Lead

        writes = WriteLog()
        aws_client("dynamodb").meta.events.register("before-parameter-build.dynamodb", writes)
        routes = LocalStack(PROJECT_DIR, session, prefix="routes").api_routes("ApiFunction")
        fuzz = Stack(Client(ApiGateway(routes, handler)), routes, session, env["INGEST_QUEUE_URL"], writes)
        store = wiring.get_store()
        store.save_lead(Lead(lead_id=SUBSCRIBER, email="subscriber@fuzz.example"), 0)
        secret = wiring.get_unsubscribe_keys().keys()["value"]
        fuzz.tokens = {"valid": unsubscribe_token(secret, SUBSCRIBER), "stranger": unsubscribe_token(secret, "nobody")}
        seed = _send(
            fuzz, "POST /v1/{call}", "/v1/identify", {"Authorization": _basic(WRITE_KEY)}, _identify_erasable()
        )
        _consume(fuzz, seed)
        fuzz.tried.clear()
        yield fuzz
        _report(fuzz)
        wiring.reset()


def _identify_erasable() -> bytes:
    return json.dumps({"userId": "erasable", "traits": {"email": ERASABLE}, "messageId": "erasable"}).encode()


def _report(stack: Stack) -> None:
    total = sum(stack.tried.values())
    print(
        f"\nfuzzed {total} requests; {stack.consumed} accepted events run through the track function, "
        f"{len(stack.stored_events)} distinct stored: "
        + ", ".join(f"{route} {n}" for route, n in sorted(stack.tried.items()))
    )


# --- sending, and what must hold -------------------------------------------------------


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode("utf-8", "surrogatepass")).decode()


def _send(stack: Stack, route: str, path: str, headers: dict[str, str], body: bytes = b"", query: str = "") -> Any:
    """One request to `route` ("METHOD /template"); asserts it answered below 500, naming the field of an error."""
    stack.writes.reset()
    stack.tried[route] = stack.tried.get(route, 0) + 1
    stack.tests.add(os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0])
    method = route.split(" ")[0]
    url = path + (f"?{query}" if query else "")
    response = stack.api.open(url, method=method, headers=headers, data=body)
    assert response.status_code < 500, f"{method} {path} answered {response.status_code}: {response.data[:300]!r}"
    if response.status_code >= 400 and response.headers.get("Content-Type") == "application/json":
        answer = json.loads(response.data)
        if answer.get("success") is False:
            assert answer.get("field"), f"{method} {path} answered {response.status_code} naming no field: {answer}"
    return response


def _refused_stored_nothing(stack: Stack, response: Any) -> None:
    assert stack.drain() == [], f"refused ({response.status_code}) yet queued"
    assert stack.writes.operations == [], f"refused ({response.status_code}) yet wrote {stack.writes.operations}"


def _consume(stack: Stack, response: Any) -> list[str]:
    """Run the track function on what the request queued; the events' ids."""
    from track.app import handler

    assert stack.writes.refused == [], stack.writes.refused
    messages = stack.drain()
    events = [event["id"] for message in messages for event in json.loads(message["Body"])["events"]]
    if not messages:
        return events
    stack.writes.reset()
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {}}
        for m in messages
    ]
    result = handler({"Records": records}, None)
    assert result == {"batchItemFailures": []}, f"accepted ({response.status_code}) yet dead-lettered: {result}"
    assert stack.writes.refused == [], f"the track function wrote what DynamoDB refuses: {stack.writes.refused}"
    stack.stored_events |= stack.writes.event_keys
    stack.consumed += len(events)
    missing = [event for event in events if event not in stack.stored_events]
    assert missing == [], (
        f"accepted events never stored: {missing[:5]} {stack.writes.operations} {stack.writes.event_keys}"
    )
    for lead_id in sorted(stack.writes.lead_keys)[:3]:
        view = stack.api.get(f"/v1/leads/{quote(lead_id)}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert view.status_code == 200, f"the lead view of {lead_id} answered {view.status_code}: {view.data[:300]!r}"
    return events


def _settle(stack: Stack, response: Any) -> list[str]:
    if response.status_code >= 400:
        _refused_stored_nothing(stack, response)
        return []
    return _consume(stack, response)


# --- strategies ------------------------------------------------------------------------


class Raw(str):
    """A JSON literal written as is (1e400, a 5,000-digit integer)."""


def _encode(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)  # NaN and Infinity as Python writes them


SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
texts = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec="utf-8"), min_size=250, max_size=300),
    st.builds(lambda a, s: a + s, st.text(max_size=4), SURROGATES),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "NaN", "0001-01-01", "\x00", "\u202e"]),
)
special_numbers = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        1e200,
        -1e200,
        1e-200,
        10**39,
        Raw("1e400"),
        Raw("-1e400"),
        Raw("9" * 5000),
        Raw("1" + "0" * 400),
    ]
)
numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), special_numbers)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
anything = st.one_of(json_values, st.builds(lambda n: _nested(n), st.integers(15, 40)))
ids = st.one_of(
    st.uuids().map(str),
    texts,
    numbers,
    st.just("x" * 257),
    st.just("\U0001f600" * 150),
    st.lists(st.integers(), max_size=2),
)
times = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
    st.just(datetime.now(UTC).isoformat()),
    texts,
    numbers,
)
emails = st.one_of(
    st.emails().map(str),
    st.builds(lambda local: f"{local}@fuzz.example", st.text(min_size=1, max_size=300)),
    texts,
    numbers,
)
counts = st.one_of(
    numbers, texts, st.sampled_from(["201-500", "10,000+", "1e400-1e401", "nan-1", " 42 ", "-5", "1e20"])
)
traits = st.fixed_dictionaries(
    {},
    optional={
        "email": emails,
        "employees": counts,
        "numberOfEmployees": counts,
        "annualRevenue": counts,
        "company": st.one_of(
            texts, st.fixed_dictionaries({}, optional={"name": texts, "employee_count": counts, "website": texts})
        ),
        "website": texts,
        "country": texts,
        "title": texts,
        "address": st.fixed_dictionaries({}, optional={"country": texts, "city": texts}),
        "extra": anything,
    },
)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"x": value}
    return value


CALL_TYPES = ["track", "identify", "page", "screen", "group", "alias"]
segment_calls = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(CALL_TYPES), texts)},
    optional={
        "userId": ids,
        "anonymousId": ids,
        "messageId": ids,
        "event": st.one_of(st.sampled_from(["Pricing Viewed", "Webinar Attended", "Demo Requested"]), texts),
        "groupId": ids,
        "previousId": ids,
        "traits": st.one_of(traits, anything),
        "properties": st.one_of(st.dictionaries(texts, json_values, max_size=4), anything),
        "context": st.one_of(
            st.fixed_dictionaries({}, optional={"traits": traits, "page": json_values, "ip": texts}), anything
        ),
        "timestamp": times,
        "originalTimestamp": times,
        "sentAt": times,
        "name": texts,
    },
)
# Calls that pass the shape checks, so the fuzz reaches the values inside them.
plausible_calls = st.builds(
    lambda call, kind, user, call_traits: {
        **call,
        "type": kind,
        "userId": user,
        "event": "Pricing Viewed",
        "groupId": "g-1",
        "traits": call_traits,
    },
    segment_calls,
    st.sampled_from(CALL_TYPES),
    st.uuids().map(str),
    traits,
)
calls = st.one_of(segment_calls, plausible_calls, plausible_calls)


def _deep_body(depth: int) -> bytes:
    return b'{"batch": [' + b"[" * depth + b"]" * depth + b"]}"


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'"text"',
            b"{",
            b'{"batch": []}',
            b'{"batch": {}}',
            b'{"batch": [1, null, "x"]}',
            b'{"a": ' + b"9" * 5000 + b"}",
            b'{"a": 1e400}',
            b'{"a": NaN}',
            b'{"a": "\\ud800"}',
            b'{"a": "\xff\xfe"}',
            _deep_body(1000),
            _deep_body(100_000),
        ]
    ),
)


def _good_call(message_id: str) -> dict[str, Any]:
    return {"type": "track", "userId": "fuzz-good", "event": "Pricing Viewed", "messageId": message_id}


@st.composite
def segment_bodies(draw) -> tuple[str, bytes, str | None]:
    """(shape, the body, the messageId of a good call the body holds): a
    batch always holds one good call among the fuzzed ones, which must be
    stored whatever its neighbours are."""
    shape = draw(st.sampled_from(["call", "batch", "batch", "raw"]))
    if shape == "raw":
        return "raw", draw(raw_bodies), None
    good = None
    if shape == "batch":
        good = f"good-{uuid.UUID(int=draw(st.integers(0, 2**64)))}"
        fuzzed = draw(st.lists(calls, min_size=1, max_size=5))
        position = draw(st.integers(0, len(fuzzed)))
        document: dict[str, Any] = {"batch": [*fuzzed[:position], _good_call(good), *fuzzed[position:]]}
        document.update(draw(st.fixed_dictionaries({}, optional={"sentAt": times, "context": json_values})))
    else:
        document = draw(calls)
    return shape, _encode(document).encode("utf-8", "surrogatepass"), good


def _auth_strategy() -> st.SearchStrategy[tuple[dict[str, str], str, str | None]]:
    """(headers, query, the writeKey to put in the body): every way a key comes, valid or not."""
    wrong = st.one_of(texts, st.just("wk-guessed"))
    valid = st.sampled_from([({"Authorization": _basic(WRITE_KEY)}, "", None), ({}, "", WRITE_KEY)])
    invalid = st.one_of(
        st.builds(lambda key: ({"Authorization": _basic(key)}, "", None), wrong),
        st.builds(lambda junk: ({"Authorization": "Basic " + junk}, "", None), texts.filter(_latin1)),
        st.just(({}, f"writeKey={WRITE_KEY}", None)),
        st.builds(lambda key: ({}, "writeKey=" + quote(key, safe="", errors="surrogatepass"), None), wrong),
        st.builds(lambda key: ({}, "", key), wrong),
        st.just(({}, "", None)),
    )
    return st.integers(0, 9).flatmap(lambda n: valid if n < 6 else invalid)  # most requests get past the key


def _latin1(text: str) -> bool:
    """Header values travel as Latin-1; what cannot be sent is not fuzzed."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return "\n" not in text and "\r" not in text


def _with_body_key(body: bytes, key: str | None) -> bytes:
    """The body with a top-level writeKey, where it is a JSON object with members."""
    if key is None or not body.startswith(b"{") or len(body) < 3:
        return body
    return b'{"writeKey": ' + json.dumps(key).encode() + b", " + body[1:]


# --- Segment ---------------------------------------------------------------------------

SEGMENT_PATHS = ["batch", "b", "track", "t", "identify", "i", "page", "p", "screen", "group", "alias", "a", "x"]


@FUZZ
@given(
    path=st.sampled_from(SEGMENT_PATHS),
    body=segment_bodies(),
    auth=_auth_strategy(),
    gzipped=st.booleans(),
    origin=st.sampled_from([None, None, SITE, "https://evil.example"]),
)
def test_segment_calls_and_batches(stack, path, body, auth, gzipped, origin):
    headers, query, body_key = auth
    shape, payload, good = body
    payload = _with_body_key(payload, body_key)
    headers = {**headers, "Content-Type": "text/plain"}
    if gzipped:
        payload, headers = gzip.compress(payload), {**headers, "Content-Encoding": "gzip"}
    if origin:
        headers["Origin"] = origin

    response = _send(stack, "POST /v1/{call}", f"/v1/{path}", headers, payload, query)

    stored = _settle(stack, response)
    if response.status_code == 200 and path in ("batch", "b"):
        assert len(stored) == json.loads(response.data)["accepted"]
    authenticated = auth[0].get("Authorization") == _basic(WRITE_KEY) or body_key == WRITE_KEY
    if good and authenticated and origin != "https://evil.example" and path in ("batch", "b"):
        assert response.status_code == 200, response.data[:300]
        assert good in stored and good in stack.stored_events  # a poisoned neighbour costs it nothing


@FUZZ
@given(body=segment_bodies(), auth=_auth_strategy())
def test_beacon_batches(stack, body, auth):
    headers, query, body_key = auth
    _, payload, _ = body

    response = _send(
        stack, "POST /beacon/v1/batch", "/beacon/v1/batch", headers, _with_body_key(payload, body_key), query
    )

    _settle(stack, response)


@FUZZ
@given(key=st.one_of(st.just(WRITE_KEY), st.just("product-key"), texts), auth=_auth_strategy())
def test_sdk_settings_and_source_config(stack, key, auth):
    headers, query, _ = auth
    encoded = quote(key, safe="", errors="surrogatepass") or "%20"

    settings_answer = _send(stack, "GET /v1/projects/{writeKey}/settings", f"/v1/projects/{encoded}/settings", {})
    config_answer = _send(stack, "GET /v1/sourceConfig", "/v1/sourceConfig", headers, query=query)

    for response in (settings_answer, config_answer):
        _refused_stored_nothing(stack, response)  # reads never write


PREFLIGHTS = [
    ("/v1/{call}", "/v1/batch"),
    ("/beacon/v1/batch", "/beacon/v1/batch"),
    ("/v1/projects/{writeKey}/settings", f"/v1/projects/{WRITE_KEY}/settings"),
    ("/v1/sourceConfig", "/v1/sourceConfig"),
    ("/v1/forms/{source}", "/v1/forms/content-download"),
]


@FUZZ
@given(
    route=st.sampled_from(PREFLIGHTS),
    origin=st.one_of(
        st.none(), st.sampled_from([SITE, "https://a.example.com", "null", "https://evil.example"]), texts
    ),
    requested=st.one_of(st.none(), texts),
)
def test_preflights(stack, route, origin, requested):
    template, path = route
    headers = {k: v for k, v in {"Origin": origin, "Access-Control-Request-Headers": requested}.items() if v}
    headers = {k: v for k, v in headers.items() if _latin1(v)}

    response = _send(stack, f"OPTIONS {template}", path, headers)

    _refused_stored_nothing(stack, response)


# --- forms -----------------------------------------------------------------------------

submission_values = st.one_of(texts, numbers, json_values, emails)


@st.composite
def demo_requests(draw) -> bytes:
    submission = json.loads((EVENTS_DIR / "form_demo_request.json").read_text())
    submission["submission_id"] = str(uuid.uuid4())
    for name in draw(st.lists(st.sampled_from(sorted(submission)), max_size=4, unique=True)):
        submission[name] = draw(submission_values)
    submission.update(draw(st.dictionaries(texts, submission_values, max_size=3)))
    form_encoded = draw(st.booleans())
    if form_encoded:
        flat = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in submission.items()}
        return "&".join(
            f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}" for k, v in flat.items()
        ).encode()
    return _encode(submission).encode("utf-8", "surrogatepass")


def _signed_headers(body: bytes, timestamp: str, content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "X-Nurture-Timestamp": timestamp,
        "X-Nurture-Signature": "sha256=" + sign_form(FORM_SECRET, timestamp, body),
    }


@FUZZ
@given(
    body=st.one_of(demo_requests(), raw_bodies),
    timestamp=st.one_of(
        st.just("now"), st.sampled_from(["NaN", "nan", "inf", "-1", "1e9", "\u0661\u0662", "1_7"]), texts
    ),
    signature=st.one_of(st.just("valid"), texts.filter(_latin1)),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/xml", ""]),
)
def test_signed_forms(stack, body, timestamp, signature, content_type):
    stamp = str(int(time.time())) if timestamp == "now" else timestamp
    if not _latin1(stamp):
        stamp = "0"
    if body[:1] != b"{" and content_type == "application/json":
        content_type = "application/x-www-form-urlencoded"
    headers = _signed_headers(body, stamp, content_type)
    if signature != "valid":
        headers["X-Nurture-Signature"] = signature

    response = _send(stack, "POST /v1/forms/{source}", "/v1/forms/demo-request", headers, body)

    _settle(stack, response)
    if timestamp != "now" and response.status_code < 400:
        pytest.fail(f"a form signed at {timestamp!r} was accepted")


@st.composite
def content_downloads(draw) -> bytes:
    submission = json.loads((EVENTS_DIR / "form_content_download.json").read_text())
    submission["response_id"] = draw(st.one_of(st.uuids().map(str), ids))
    for name in draw(st.lists(st.sampled_from(sorted(submission["contact"])), max_size=3, unique=True)):
        submission["contact"][name] = draw(submission_values)
    if draw(st.booleans()):
        submission["anonymous_id"] = draw(ids)
    return _encode(submission).encode("utf-8", "surrogatepass")


@FUZZ
@given(
    body=st.one_of(content_downloads(), raw_bodies),
    key=st.one_of(st.just(FORM_SECRET), texts),
    where=st.sampled_from(["header", "query", "none"]),
    origin=st.sampled_from([None, SITE, "https://evil.example"]),
)
def test_keyed_forms(stack, body, key, where, origin):
    headers = {"Content-Type": "application/json"}
    query = ""
    if where == "header" and _latin1(key):
        headers["X-Nurture-Key"] = key
    elif where == "query":
        query = "key=" + quote(key, safe="", errors="surrogatepass")
    if origin:
        headers["Origin"] = origin

    response = _send(stack, "POST /v1/forms/{source}", "/v1/forms/content-download", headers, body, query)

    _settle(stack, response)


def _base64_hmac(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _typeform(draw) -> tuple[str, bytes, dict[str, str]]:
    document = json.loads((EVENTS_DIR / "typeform_form_response.json").read_text())
    response = document["form_response"]
    response["submitted_at"] = draw(st.one_of(st.just(datetime.now(UTC).isoformat()), times))
    document["event_id"] = draw(st.one_of(st.uuids().map(str), ids))
    for answer in draw(st.lists(st.sampled_from(range(len(response["answers"]))), max_size=4, unique=True)):
        kind = response["answers"][answer]["type"]
        response["answers"][answer][kind] = draw(submission_values)
    response["hidden"] = draw(st.dictionaries(texts, submission_values, max_size=3))
    body = _encode(document).encode("utf-8", "surrogatepass")
    return "revops-assessment", body, {"Typeform-Signature": "sha256=" + _base64_hmac(TYPEFORM_SECRET.encode(), body)}


def _tally(draw) -> tuple[str, bytes, dict[str, str]]:
    document = json.loads((EVENTS_DIR / "tally_form_response.json").read_text())
    document["createdAt"] = draw(st.one_of(st.just(datetime.now(UTC).isoformat()), times))
    document["data"]["submissionId"] = draw(st.one_of(st.uuids().map(str), ids))
    fields = document["data"]["fields"]
    for index in draw(st.lists(st.sampled_from(range(len(fields))), max_size=4, unique=True)):
        fields[index]["value"] = draw(submission_values)
    body = _encode(document).encode("utf-8", "surrogatepass")
    return "contact-us", body, {"Tally-Signature": _base64_hmac(TALLY_SECRET.encode(), body)}


def _webinar(draw) -> tuple[str, bytes, dict[str, str]]:
    data = draw(
        st.fixed_dictionaries(
            {"email": st.one_of(st.just("ana@globex.com"), emails)},
            optional={"company": submission_values, "first_name": submission_values, "job_title": submission_values},
        )
    )
    body = _encode({"type": "registration.created", "data": data}).encode("utf-8", "surrogatepass")
    message_id = draw(st.one_of(st.uuids().map(str), texts.filter(_latin1).filter(bool)))
    timestamp = draw(st.one_of(st.just(str(int(time.time()))), texts.filter(_latin1).filter(bool)))
    key = base64.b64decode(WEBINAR_SECRET.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode("utf-8", "surrogatepass") + body
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + _base64_hmac(key, signed),
    }
    return "webinar-registration", body, headers


@st.composite
def tool_deliveries(draw) -> tuple[str, bytes, dict[str, str]]:
    source, body, headers = draw(st.sampled_from([_typeform, _tally, _webinar]))(draw)
    if draw(st.integers(0, 3)) == 0:  # a forged or mangled signature header
        name = next(iter(headers)) if source != "webinar-registration" else "webhook-signature"
        headers[name] = draw(texts.filter(_latin1))
    if draw(st.integers(0, 5)) == 0:
        body = draw(raw_bodies)
    return source, body, {"Content-Type": "application/json", **headers}


@FUZZ
@given(delivery=tool_deliveries())
def test_form_tool_deliveries(stack, delivery):
    source, body, headers = delivery

    response = _send(stack, "POST /v1/forms/{source}", f"/v1/forms/{source}", headers, body)

    _settle(stack, response)


# --- leads -----------------------------------------------------------------------------

admin_headers = st.one_of(
    st.just({"Authorization": f"Bearer {ADMIN_KEY}"}),
    st.builds(lambda token: {"Authorization": f"Bearer {token}"}, texts.filter(_latin1)),
    st.builds(lambda value: {"Authorization": value}, texts.filter(_latin1)),
    st.just({}),
)
references = st.one_of(
    st.just(SUBSCRIBER),
    st.just("nobody@fuzz.example"),
    st.just("x" * 3000 + "@fuzz.example"),
    texts.filter(bool),
    emails.map(str).filter(bool),
)


def _lead_path(reference: str, suffix: str = "") -> str:
    return "/v1/leads/" + (quote(reference, safe="", errors="surrogatepass") or "%20") + suffix


@FUZZ
@given(reference=references, headers=admin_headers)
def test_the_lead_view(stack, reference, headers):
    response = _send(stack, "GET /v1/leads/{lead}", _lead_path(reference), headers)

    _refused_stored_nothing(stack, response)


@FUZZ
@given(reference=st.one_of(st.just(ERASABLE), references.filter(lambda r: r != SUBSCRIBER)), headers=admin_headers)
def test_erasure(stack, reference, headers):
    response = _send(stack, "DELETE /v1/leads/{lead}", _lead_path(reference), headers)

    if response.status_code >= 400:
        _refused_stored_nothing(stack, response)


outcomes = st.fixed_dictionaries(
    {
        "outcome_id": st.one_of(st.uuids().map(str), ids),
        "outcome": st.one_of(st.sampled_from(["accepted", "rejected", "opportunity_created", "won", "lost"]), texts),
    },
    optional={
        "revenue": numbers,
        "currency": st.one_of(st.just("USD"), texts),
        "reason": st.one_of(st.sampled_from(["bad_timing", "no_budget", "not_a_fit"]), texts),
        "note": texts,
        "rep": texts,
    },
)


@FUZZ
@given(
    reference=st.one_of(st.just(SUBSCRIBER), references),
    headers=admin_headers,
    body=st.one_of(outcomes.map(lambda o: _encode(o).encode("utf-8", "surrogatepass")), raw_bodies),
)
def test_sales_outcomes(stack, reference, headers, body):
    response = _send(
        stack,
        "POST /v1/leads/{lead}/outcome",
        _lead_path(reference, "/outcome"),
        {**headers, "Content-Type": "application/json"},
        body,
    )

    _settle(stack, response)


@FUZZ
@given(
    reference=references,
    form=st.one_of(st.sampled_from(["demo-request", "content-download", "revops-assessment"]), texts, st.none()),
    headers=st.one_of(
        admin_headers,
        st.builds(lambda key: {"X-Nurture-Key": key}, st.one_of(st.just(FORM_SECRET), texts.filter(_latin1))),
    ),
)
def test_next_fields(stack, reference, form, headers):
    query = "" if form is None else "form=" + quote(form, safe="", errors="surrogatepass")

    response = _send(
        stack, "GET /v1/leads/{lead}/next-fields", _lead_path(reference, "/next-fields"), headers, query=query
    )

    _refused_stored_nothing(stack, response)
    if response.status_code == 200 and headers.get("X-Nurture-Key") == FORM_SECRET and form == "content-download":
        assert set(json.loads(response.data)) == {"form", "fields", "max"}  # a public key learns no lead


# --- consent links ---------------------------------------------------------------------

tokens = st.one_of(
    st.sampled_from(["valid", "stranger"]),
    texts,
    st.builds(lambda a, b: f"{a}.{b}", texts, texts),
)
preference_forms = st.one_of(
    st.builds(
        lambda topics, frequency, pause: "&".join(
            [
                *(f"topic={quote(t, errors='surrogatepass')}" for t in topics),
                f"frequency={quote(frequency, errors='surrogatepass')}",
                f"pause={quote(pause, errors='surrogatepass')}",
            ]
        ),
        st.lists(st.one_of(st.sampled_from(["forecasting", "pricing", "product"]), texts), max_size=3),
        st.one_of(st.sampled_from(["regular", "weekly", "monthly"]), texts),
        st.one_of(st.sampled_from(["0", "7", "30", "\u0661", "9" * 5000]), texts),
    ).map(str.encode),
    raw_bodies,
)


def _token_path(kind: str, token: str, stack: Stack) -> str:
    value = stack.tokens.get(token, token)
    return f"/v1/{kind}/" + (quote(value, safe="", errors="surrogatepass") or "%20")


@FUZZ
@given(
    token=tokens,
    body=st.one_of(st.just(b"List-Unsubscribe=One-Click"), raw_bodies),
    method=st.sampled_from(["GET", "POST"]),
)
def test_unsubscribe_links(stack, token, body, method):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    response = _send(
        stack,
        f"{method} /v1/unsubscribe/{{token}}",
        _token_path("unsubscribe", token, stack),
        headers,
        body if method == "POST" else b"",
    )

    if response.status_code >= 400 or method == "GET":
        _refused_stored_nothing(stack, response)


@FUZZ
@given(
    token=tokens,
    body=preference_forms,
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", ""]),
    method=st.sampled_from(["GET", "POST"]),
)
def test_preference_pages(stack, token, body, content_type, method):
    headers = {"Content-Type": content_type} if content_type else {}

    response = _send(
        stack,
        f"{method} /v1/preferences/{{token}}",
        _token_path("preferences", token, stack),
        headers,
        body if method == "POST" else b"",
    )

    if response.status_code >= 400 or method == "GET":
        _refused_stored_nothing(stack, response)


FUZZ_TESTS = {
    name for name, test in list(globals().items()) if name.startswith("test_") and hasattr(test, "hypothesis")
}


def test_the_fuzz_reaches_every_route_and_past_the_door(stack):
    """The suite is only worth something if generated requests reach every
    route and get accepted and stored as well as refused; this runs last in
    the module and checks the tally of the fuzz tests above."""
    # Given the requests the fuzz tests above sent (the module's stack is shared)
    if stack.tests != FUZZ_TESTS:
        pytest.skip("checks the whole module's run")

    # Then every route of the API was tried, and many events were stored, not just refused
    assert set(stack.tried) == {f"{method} {path}" for method, path in stack.routes}
    assert stack.consumed >= FUZZ_EXAMPLES // 2
