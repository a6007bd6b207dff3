"""The Segment HTTP Tracking API boundary: payloads as the SDKs send them."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from nurture.core.errors import BadRequestError, PayloadTooLargeError, ValidationError
from nurture.ingest.segment import MAX_BATCH_BYTES, decode_body, parse_message, parse_request
from tests.unit.builders import T0, batch_body, identify, iso, load_event, page, track


def parse_one(message: dict, received_at: float = T0):
    return parse_message(message, None, "website", received_at, None)


def test_track_call_parses():
    # Given a server-side track call
    message = load_event("segment_track.json")

    # When it is parsed
    event = parse_one(message)

    # Then its name, identity, time and properties are kept
    assert (event.kind, event.name) == ("track", "ROI Calculator Completed")
    assert event.message_id == "api-2tFq9bRzXcYpW8vN1mK3sL5dH7j"
    assert event.user_id == "usr_48213" and event.anonymous_id is None
    assert event.timestamp == T0
    assert event.properties["seats"] == 40
    assert event.context == {"library": {"name": "analytics-python", "version": "2.3.3"}, "ip": "203.0.113.24"}


def test_identify_call_parses():
    # Given an analytics.js identify call
    message = load_event("segment_identify.json")

    # When it is parsed
    event = parse_one(message)

    # Then the email is normalised and the traits kept
    assert (event.kind, event.name) == ("identify", "identify")
    assert event.email == "ana.lopez@globex.com"
    assert event.traits["company"]["name"] == "Globex"


def test_page_call_takes_its_properties_from_context_page():
    # Given a page call whose properties are empty but context.page is filled
    message = load_event("segment_page.json")

    # When it is parsed
    event = parse_one(message)

    # Then path, url, title, referrer, search, name and category are in the properties
    assert (event.kind, event.name) == ("page", "page")
    assert event.properties == {
        "path": "/pricing",
        "url": "https://www.example-vendor.com/pricing?plan=team",
        "title": "Pricing | Example Vendor",
        "referrer": "https://www.example-vendor.com/product",
        "search": "?plan=team",
        "name": "Pricing",
        "category": "Product",
    }


def test_page_path_is_derived_from_the_url():
    # Given a page call with only a url
    message = page("/ignored", anonymous_id="anon-1")
    message["properties"] = {"url": "https://www.example-vendor.com/customers/fintech?ref=nav"}

    # When it is parsed
    event = parse_one(message)

    # Then the path is the url's path
    assert event.properties["path"] == "/customers/fintech"


def test_screen_call_parses():
    # Given a mobile screen call
    message = load_event("segment_screen.json")

    # When it is parsed
    event = parse_one(message)

    # Then it is a screen with its name among the properties
    assert (event.kind, event.name) == ("screen", "screen")
    assert event.properties == {"variation": "dark", "name": "Forecast Dashboard"}
    assert event.context == {"library": {"name": "analytics-ios", "version": "4.1.8"}, "timezone": "America/Chicago"}


def test_group_call_parses():
    # Given a group call
    message = load_event("segment_group.json")

    # When it is parsed
    event = parse_one(message)

    # Then the group id and company traits are kept and no email is taken from them
    assert (event.kind, event.group_id) == ("group", "acct_globex")
    assert event.traits["industry"] == "Software"
    assert event.email is None


def test_alias_call_parses():
    # Given an alias call tying an anonymous id to a user
    message = load_event("segment_alias.json")

    # When it is parsed
    event = parse_one(message)

    # Then both ids are kept
    assert (event.kind, event.previous_id, event.user_id) == (
        "alias",
        "6f2a9c1e-3b7d-4e8a-9c0f-1a2b3c4d5e6f",
        "usr_48213",
    )


def test_group_call_with_a_company_email_is_accepted():
    # Given a group call whose traits carry the company's billing address
    message = load_event("segment_group.json")
    message["traits"]["email"] = "billing@globex.com"

    # When it is parsed
    event = parse_one(message)

    # Then it is accepted and the address does not become the lead's email
    assert event.email is None


def test_batch_shares_its_context_with_each_call():
    # Given a real analytics.js batch with a top-level context and sentAt
    body = json.dumps(load_event("segment_batch.json")).encode()

    # When it is parsed
    events = parse_request(body, None, "website", T0).events

    # Then every call is parsed in order, each with the shared context
    assert [event.kind for event in events] == ["page", "identify", "track"]
    assert all(event.context["library"]["name"] == "analytics.js" for event in events)
    assert all(event.context["timezone"] == "America/New_York" for event in events)
    assert events[1].email == "ana.lopez@globex.com"
    assert events[2].name == "Webinar Registered"


def test_single_call_endpoint_uses_its_type():
    # Given a /v1/track body without a type
    message = track("Trial Started", user_id="u-1")
    del message["type"]

    # When it is parsed for the track endpoint
    (event,) = parse_request(json.dumps(message).encode(), "track", "website", T0).events

    # Then it is a track call
    assert (event.kind, event.name) == ("track", "Trial Started")


def test_call_sent_to_the_wrong_endpoint_is_rejected():
    # Given a page call
    message = page("/pricing", user_id="u-1")

    # When it is posted to /v1/track
    with pytest.raises(ValidationError) as caught:
        parse_request(json.dumps(message).encode(), "track", "website", T0)

    # Then the type is named
    assert caught.value.field == "type"


def test_a_call_without_any_id_is_dropped_alone_naming_its_position():
    # Given a batch whose second call has neither userId nor anonymousId
    body = batch_body(page("/pricing", user_id="u-1"), page("/product"), page("/docs", anonymous_id="a-1"))

    # When it is parsed
    parsed = parse_request(body, None, "website", T0)

    # Then its neighbours are kept and it alone is rejected, the field named with the call's index
    assert [event.properties["path"] for event in parsed.events] == ["/pricing", "/docs"]
    assert [(r.index, r.field) for r in parsed.rejected] == [(1, "userId")]
    assert parsed.rejected[0].to_body()["field"] == "batch[1].userId"


def test_a_call_that_is_not_an_object_is_dropped_alone():
    # Given a batch holding a bare string among its calls
    body = json.dumps({"batch": [page("/pricing", user_id="u-1"), "not a call"]}).encode()

    # When it is parsed
    parsed = parse_request(body, None, "website", T0)

    # Then the string is rejected as a call, the page kept
    assert len(parsed.events) == 1
    assert [(r.index, r.field) for r in parsed.rejected] == [(1, "call")]


def test_an_invalid_single_call_is_refused_naming_the_field():
    # Given a /v1/track call with neither userId nor anonymousId
    message = track("Trial Started")
    message.pop("userId", None)
    message.pop("anonymousId", None)

    # When it is parsed for its endpoint
    with pytest.raises(ValidationError) as caught:
        parse_request(json.dumps(message).encode(), "track", "website", T0)

    # Then the request has no valid neighbour to keep: it is refused, naming the field
    assert caught.value.field == "userId"


def test_track_without_event_name_is_rejected():
    # Given a track call without an event name
    message = track("  ", user_id="u-1")

    # When it is parsed
    with pytest.raises(ValidationError) as caught:
        parse_one(message)

    # Then the field is event
    assert caught.value.field == "event"


def test_bad_timestamp_names_the_field():
    # Given a batch call with a timestamp that is not ISO 8601
    call = track("Trial Started", user_id="u-1")
    call["timestamp"] = "yesterday at noon"

    # When it is parsed
    (rejection,) = parse_request(batch_body(call), None, "website", T0).rejected

    # Then the field names the call and the timestamp
    assert rejection.to_body()["field"] == "batch[0].timestamp"
    assert "yesterday at noon" in rejection.message


def test_invalid_email_trait_is_rejected():
    # Given an identify whose email is not an address
    message = identify("ana at globex", user_id="u-1")

    # When it is parsed
    with pytest.raises(ValidationError) as caught:
        parse_one(message)

    # Then the trait is named
    assert caught.value.field == "traits.email"


def test_empty_batch_is_rejected():
    # Given a batch with no calls
    # When it is parsed
    with pytest.raises(ValidationError) as caught:
        parse_request(batch_body(), None, "website", T0)

    # Then the batch is named
    assert caught.value.field == "batch"


def test_body_that_is_not_json_is_a_bad_request():
    # Given a body that is not JSON
    # When it is parsed
    with pytest.raises(BadRequestError) as caught:
        parse_request(b"{batch: [", None, "website", T0)

    # Then the body is named
    assert caught.value.field == "body"


def test_event_over_32_kb_is_too_large():
    # Given a track call of about 33 KB
    message = track("Asset Downloaded", user_id="u-1", notes="x" * (33 * 1024))

    # When it is parsed
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_request(batch_body(message), None, "website", T0)

    # Then the call is named
    assert caught.value.field == "batch[0]"


def test_batch_over_500_kb_is_too_large():
    # Given a plain batch body of about 520 KB (each call under the event limit)
    calls = [track("Asset Downloaded", user_id="u-1", notes="x" * 20_000) for _ in range(26)]
    body = batch_body(*calls)
    assert len(body) > MAX_BATCH_BYTES

    # When the body is decoded
    # Then it is refused
    with pytest.raises(PayloadTooLargeError):
        decode_body(body, None)


def test_gzip_body_is_decoded():
    # Given a gzip-compressed batch, as analytics-python sends it
    body = json.dumps(load_event("segment_batch.json")).encode()

    # When it is decoded
    decoded = decode_body(gzip.compress(body), "gzip")

    # Then the original body comes back
    assert decoded == body


def test_gzip_body_without_content_encoding_is_recognised():
    # Given a gzip body sent without a Content-Encoding header
    body = batch_body(page("/pricing", user_id="u-1"))

    # When it is decoded
    decoded = decode_body(gzip.compress(body), None)

    # Then the magic bytes give it away
    assert decoded == body


def test_corrupt_gzip_is_a_bad_request():
    # Given a gzip body with its deflate stream damaged
    compressed = bytearray(gzip.compress(batch_body(page("/pricing", user_id="u-1"))))
    compressed[10:20] = b"\xff" * 10

    # When it is decoded
    with pytest.raises(BadRequestError) as caught:
        decode_body(bytes(compressed), "gzip")

    # Then the body is named
    assert caught.value.field == "body"


def test_unsupported_content_encoding_is_a_bad_request():
    # Given a brotli-encoded body
    # When it is decoded
    with pytest.raises(BadRequestError) as caught:
        decode_body(b"\x0b\x02\x80", "br")

    # Then the header is named
    assert caught.value.field == "Content-Encoding"


def test_gzip_bomb_is_refused_without_inflating_it():
    # Given 5 MB of zeros compressed to a few kilobytes
    inflated_size = 5 * 1024 * 1024
    bomb = gzip.compress(b"\0" * inflated_size)

    # When it is decoded
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLargeError):
            decode_body(bomb, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then it was refused long before all of it was in memory
    assert peak < inflated_size / 2


def test_clock_skew_is_corrected_from_sent_at():
    # Given a device clock one hour fast: the call was made 5 s before it was sent
    message = track("Trial Started", user_id="u-1", at=None)
    message["originalTimestamp"] = iso(T0 + 3600 - 5)
    message["sentAt"] = iso(T0 + 3600)

    # When it is received at T0
    event = parse_one(message, received_at=T0)

    # Then the event time is receivedAt - (sentAt - originalTimestamp)
    assert event.timestamp == T0 - 5


def test_batch_sent_at_corrects_calls_without_their_own():
    # Given a batch whose sentAt is top-level and a call with only originalTimestamp
    call = track("Trial Started", user_id="u-1", at=None)
    call["originalTimestamp"] = iso(T0 - 3600 - 30)
    body = batch_body(call, sentAt=iso(T0 - 3600))

    # When it is received at T0
    (event,) = parse_request(body, None, "website", T0).events

    # Then the skew is corrected with the batch's sentAt
    assert event.timestamp == T0 - 30


def test_explicit_timestamp_wins_over_skew_correction():
    # Given a call with timestamp, originalTimestamp and sentAt
    message = track("Trial Started", user_id="u-1", at=T0 - 60)
    message["originalTimestamp"] = iso(T0 + 999)
    message["sentAt"] = iso(T0 + 1000)

    # When it is parsed
    event = parse_one(message, received_at=T0)

    # Then the timestamp is used as sent
    assert event.timestamp == T0 - 60


def test_call_without_any_time_happened_when_received():
    # Given a call with no timestamps at all
    message = track("Trial Started", user_id="u-1", at=None)

    # When it is parsed
    event = parse_one(message, received_at=T0)

    # Then it is timed at receipt
    assert event.timestamp == T0


def test_timestamps_far_in_the_future_are_clamped():
    # Given a call claiming to happen a day from now
    message = track("Trial Started", user_id="u-1", at=T0 + 86400)

    # When it is parsed
    event = parse_one(message, received_at=T0)

    # Then it is clamped to five minutes after receipt
    assert event.timestamp == T0 + 300


def test_missing_message_id_is_derived_stably():
    # Given the same call sent twice without a messageId
    first = track("Trial Started", user_id="u-1")
    del first["messageId"]
    second = json.loads(json.dumps(first))

    # When both are parsed (at different receive times)
    one, two = parse_one(first, received_at=T0), parse_one(second, received_at=T0 + 30)

    # Then they get the same id
    assert one.message_id == two.message_id
    assert one.message_id.startswith("derived-")


def test_different_calls_without_message_id_get_different_ids():
    # Given two different calls without messageIds
    first, second = track("Trial Started", user_id="u-1"), track("Trial Started", user_id="u-2")
    del first["messageId"], second["messageId"]

    # When they are parsed
    # Then their ids differ
    assert parse_one(first).message_id != parse_one(second).message_id


# --- held to what the table and the domain take -----------------------------------


@pytest.mark.parametrize(
    ("poison", "field"),
    [
        (b'{"properties": {"seats": NaN}}', "properties.seats"),
        (b'{"properties": {"seats": 1e400}}', "properties.seats"),
        (b'{"properties": {"seats": 1e200}}', "properties.seats"),
        (b'{"properties": {"plan": "\\ud83d"}}', "properties.plan"),
        (b'{"traits": {"employees": "nan"}}', "traits.employees"),
        (b'{"traits": {"annualRevenue": "inf"}}', "traits.annualRevenue"),
        (b'{"traits": {"company": {"employee_count": 1e20}}}', "traits.company.employee_count"),
        (b'{"context": {"traits": {"employees": -3}}}', "context.traits.employees"),
    ],
)
def test_a_call_the_table_would_refuse_is_dropped_alone_naming_the_field(poison, field):
    # Given a batch whose second call carries a value the table or the profile cannot take
    good = json.dumps(track("Docs Read", user_id="u-1")).encode()
    bad = b'{"type": "track", "userId": "u-2", "event": "Docs Read", ' + poison[1:]
    body = b'{"batch": [' + good + b", " + bad + b"]}"

    # When it is parsed
    parsed = parse_request(body, None, "website", T0)

    # Then the good call is kept and the bad one is dropped, naming the field
    assert [event.user_id for event in parsed.events] == ["u-1"]
    assert [(rejection.index, rejection.field) for rejection in parsed.rejected] == [(1, field)]


def test_an_email_longer_than_an_address_may_be_is_refused():
    message = identify("a" * 250 + "@x.com", user_id="u-1")

    with pytest.raises(ValidationError) as raised:
        parse_one(message)

    assert raised.value.field == "traits.email"


@pytest.mark.parametrize("user_id", ["u" * 257, "\U0001f600" * 200])
def test_ids_longer_than_a_key_part_may_be_are_refused(user_id):
    # 257 characters, or 200 characters of 800 bytes: past 256 characters or 512 bytes
    with pytest.raises(ValidationError) as raised:
        parse_one(track("Docs Read", user_id=user_id))

    assert raised.value.field == "userId"


@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp", "sentAt"])
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
def test_a_time_outside_2000_to_2100_is_refused_naming_it(field, value):
    message = {**track("Docs Read", user_id="u-1", at=None), field: value}

    with pytest.raises(ValidationError) as raised:
        parse_one(message)

    assert raised.value.field == field


def test_a_skew_correction_of_decades_is_clamped_to_2000():
    # Given a client clock that claims it sent in 2099 what it recorded in 2000
    message = track("Docs Read", user_id="u-1", at=None)
    message["originalTimestamp"], message["sentAt"] = "2000-01-01T00:00:00Z", "2099-12-31T00:00:00Z"

    # When it is received at T0 (2025)
    event = parse_one(message, received_at=T0)

    # Then its time is clamped to 2000-01-01, the earliest an event may be
    assert event.timestamp == 946684800.0


def test_a_batch_sent_at_outside_the_window_is_ignored():
    call = track("Docs Read", user_id="u-1", at=None)
    call["originalTimestamp"] = iso(T0 - 30)

    (event,) = parse_request(batch_body(call, sentAt="0001-01-01T00:00:00Z"), None, "website", T0).events

    assert event.timestamp == T0 - 30
