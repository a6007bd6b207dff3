"""Ad-platform adapters against local fakes that check each platform's documented
request shapes: batching to the platform's limit, add and remove shapes, retries
with back-off, typed errors and credential refresh."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import pytest

from nurture.channels.ad_platforms import (
    AdPlatformError,
    GoogleDataManager,
    LinkedInDmpSegments,
    MetaCustomAudiences,
    RetryPolicy,
)
from nurture.config.audiences import GoogleAccount, GoogleDestination, LinkedInDestination, MetaDestination
from nurture.core.domain import HashedIdentity
from tests.fakes import InMemoryCredentials
from tests.unit.fake_ad_platforms import FakeGoogle, FakeLinkedIn, FakeMeta, direct_opener

TOKEN = "token-current"
META_AUDIENCE = "120210000000000001"
GOOGLE_ACCOUNT = "1234567890"
GOOGLE_AUDIENCE = "9000000001"
LINKEDIN_SEGMENT = "10000001"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def people(count: int, *, phones: bool = False) -> list[HashedIdentity]:
    """`count` distinct identities, hashed as the adapters receive them."""
    return [
        HashedIdentity(email=sha(f"lead{i}@example.com"), phone=sha(f"1415555{i:04d}") if phones else None)
        for i in range(count)
    ]


def credentials(**tokens: str) -> InMemoryCredentials:
    return InMemoryCredentials({name: {"access_token": token} for name, token in tokens.items()})


class Sleeps(list):
    """The injected sleep: records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def meta() -> Iterator[FakeMeta]:
    with FakeMeta(META_AUDIENCE, TOKEN) as server:
        yield server


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(GOOGLE_ACCOUNT, GOOGLE_AUDIENCE, TOKEN) as server:
        yield server


@pytest.fixture
def linkedin() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn(LINKEDIN_SEGMENT, TOKEN) as server:
        yield server


def meta_audience(server: FakeMeta, sleeps: Sleeps, creds=None, audience_id: str = META_AUDIENCE, **options):
    return MetaCustomAudiences(
        MetaDestination(audience_id, "meta-ads"),
        creds or credentials(**{"meta-ads": TOKEN}),
        base_url=server.base_url,
        sleep=sleeps,
        jitter=lambda: 1.0,
        session_ids=lambda: 4242,
        opener=direct_opener(),
        **options,
    )


def google_audience(server: FakeGoogle, sleeps: Sleeps, creds=None, audience_id: str = GOOGLE_AUDIENCE, **fields):
    options = {key: fields.pop(key) for key in ("retry",) if key in fields}
    return GoogleDataManager(
        GoogleDestination(GoogleAccount("GOOGLE_ADS", GOOGLE_ACCOUNT), audience_id, "google-dm", **fields),
        creds or credentials(**{"google-dm": TOKEN}),
        base_url=server.base_url,
        sleep=sleeps,
        jitter=lambda: 1.0,
        opener=direct_opener(),
        **options,
    )


def linkedin_segment(server: FakeLinkedIn, sleeps: Sleeps, creds=None, **options):
    return LinkedInDmpSegments(
        LinkedInDestination(LINKEDIN_SEGMENT, "linkedin-ads"),
        creds or credentials(**{"linkedin-ads": TOKEN}),
        base_url=server.base_url,
        sleep=sleeps,
        jitter=lambda: 1.0,
        opener=direct_opener(),
        **options,
    )


def raw_request(url: str, method: str, body: Mapping, headers: Mapping[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers=dict(headers))
    try:
        with direct_opener().open(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# --- Meta --------------------------------------------------------------------------------


def test_meta_uploads_25000_members_in_three_requests_of_one_session(meta, sleeps):
    # Given 25,000 members to add to a Meta Custom Audience
    audience = meta_audience(meta, sleeps)

    # When they are added
    result = audience.add(people(25_000))

    # Then Meta got exactly three requests of 10,000, 10,000 and 5,000 records
    posts = meta.calls_to("POST")
    assert [len(call.body["payload"]["data"]) for call in posts] == [10_000, 10_000, 5_000]
    assert all(call.path == f"/v25.0/{META_AUDIENCE}/users" and call.status == 200 for call in posts)
    # as one upload session, the last batch flagged
    assert [call.body["session"] for call in posts] == [
        {"session_id": 4242, "batch_seq": seq, "last_batch_flag": seq == 3, "estimated_num_total": 25_000}
        for seq in (1, 2, 3)
    ]
    assert {call.body["payload"]["schema"] for call in posts} == {"EMAIL_SHA256"}
    # and the audience holds every one of them
    assert len(meta.members) == 25_000
    assert (result.requests, result.sent, result.accepted, result.invalid) == (3, 25_000, 25_000, 0)


def test_meta_removes_with_delete_on_the_same_edge(meta, sleeps):
    # Given an audience holding three members
    audience = meta_audience(meta, sleeps)
    first, second, third = people(3)
    audience.add([first, second, third])

    # When two of them are removed
    audience.remove([first, third])

    # Then the removal is a DELETE on /{audience_id}/users with the same payload shape
    (delete,) = meta.calls_to("DELETE")
    assert delete.path == f"/v25.0/{META_AUDIENCE}/users"
    assert delete.body["payload"] == {"schema": "EMAIL_SHA256", "data": [first.email, third.email]}
    assert delete.body["access_token"] == TOKEN
    # and only the second member is left
    assert meta.members == {(second.email, "")}


def test_meta_sends_phones_as_a_multi_key_schema_with_blanks_for_unknown_keys(meta, sleeps):
    # Given one member with an email and a phone and one with a phone only
    both = HashedIdentity(email=sha("ana@example.com"), phone=sha("14155550100"))
    phone_only = HashedIdentity(phone=sha("442071838750"))

    # When they are added
    meta_audience(meta, sleeps).add([both, phone_only])

    # Then the payload uses the multi-key schema, a blank where a key is unknown
    (post,) = meta.calls_to("POST")
    assert post.body["payload"] == {
        "schema": ["EMAIL", "PHONE"],
        "data": [[both.email, both.phone], ["", phone_only.phone]],
    }
    assert meta.members == {(both.email, both.phone), ("", phone_only.phone)}


def test_meta_adds_appsecret_proof_when_the_credential_has_an_app_secret(sleeps):
    # Given an app that requires appsecret_proof on server calls
    with FakeMeta(META_AUDIENCE, TOKEN, app_secret="shh") as server:
        creds = InMemoryCredentials({"meta-ads": {"access_token": TOKEN, "app_secret": "shh"}})

        # When a member is added
        meta_audience(server, sleeps, creds).add(people(1))

        # Then the request carried the proof and was accepted
        assert len(server.members) == 1


def test_meta_throttling_is_retried_with_exponential_back_off(meta, sleeps):
    # Given the Marketing API throttles the custom audience twice (HTTP 400, code 80003)
    meta.throttle_next(2)

    # When members are added
    result = meta_audience(meta, sleeps).add(people(10))

    # Then the same batch is retried after growing waits, and lands once
    assert [call.status for call in meta.calls] == [400, 400, 200]
    assert sleeps == [0.5, 1.0]
    assert result.accepted == 10 and len(meta.members) == 10


def test_meta_429_waits_as_long_as_retry_after_says(meta, sleeps):
    # Given a 429 with Retry-After: 3
    meta.fail_next(1, 429, retry_after="3")

    # When members are added
    meta_audience(meta, sleeps).add(people(2))

    # Then the adapter waited exactly 3 seconds before retrying
    assert sleeps == [3.0]
    assert len(meta.members) == 2


def test_meta_rejected_token_is_re_read_once_then_raises(meta, sleeps):
    # Given a credential the platform does not accept
    creds = credentials(**{"meta-ads": "token-revoked"})

    # When members are added
    with pytest.raises(AdPlatformError) as caught:
        meta_audience(meta, sleeps, creds).add(people(1))

    # Then the cached credential was invalidated and read again once, then the error surfaced
    assert creds.invalidated == ["meta-ads"]
    assert [call.status for call in meta.calls] == [401, 401]
    assert caught.value.http_status == 401 and caught.value.platform_code == "190"
    assert not caught.value.retryable


def test_meta_rotated_token_is_picked_up_after_a_401(meta, sleeps):
    # Given a cached token that was rotated in the secret meanwhile
    class Rotated(InMemoryCredentials):
        def invalidate(self, name: str) -> None:
            super().invalidate(name)
            self.put(name, {"access_token": TOKEN})

    creds = Rotated({"meta-ads": {"access_token": "token-old"}})

    # When members are added
    meta_audience(meta, sleeps, creds).add(people(3))

    # Then the second attempt used the new token and succeeded
    assert [call.status for call in meta.calls] == [401, 200]
    assert len(meta.members) == 3


def test_meta_bad_request_raises_with_the_platforms_message(meta, sleeps):
    # Given an audience id Meta does not know
    audience = meta_audience(meta, sleeps, audience_id="999")

    # When members are added
    with pytest.raises(AdPlatformError) as caught:
        audience.add(people(1))

    # Then the typed error carries Meta's message and code, and nothing was retried
    assert caught.value.http_status == 400
    assert "does not exist" in caught.value.platform_message
    assert caught.value.platform_code == "100/33"
    assert not caught.value.retryable
    assert len(meta.calls) == 1 and sleeps == []


# --- Google -------------------------------------------------------------------------------


def test_google_ingests_25000_members_in_requests_of_10000(google, sleeps):
    # Given 25,000 members with emails and phones
    audience = google_audience(google, sleeps)

    # When they are added
    result = audience.add(people(25_000, phones=True))

    # Then the Data Manager API got three :ingest requests of 10,000, 10,000 and 5,000
    assert [call.path for call in google.calls] == ["/v1/audienceMembers:ingest"] * 3
    assert [len(call.body["audienceMembers"]) for call in google.calls] == [10_000, 10_000, 5_000]
    first = google.calls[0]
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.body["destinations"] == [
        {
            "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": GOOGLE_ACCOUNT},
            "productDestinationId": GOOGLE_AUDIENCE,
        }
    ]
    assert first.body["encoding"] == "HEX"
    assert first.body["audienceMembers"][0] == {
        "userData": {
            "userIdentifiers": [{"emailAddress": sha("lead0@example.com")}, {"phoneNumber": sha("14155550000")}]
        }
    }
    # and the audience holds them all
    assert len(google.members) == 25_000
    assert result.requests == 3 and result.accepted == 25_000
    assert len(audience.request_ids) == 3


def test_google_remove_uses_the_remove_method_without_ingest_only_fields(google, sleeps):
    # Given an audience with consent and terms configured, holding two members
    audience = google_audience(
        google, sleeps, ad_user_data="CONSENT_GRANTED", ad_personalization="CONSENT_GRANTED", terms_accepted=True
    )
    keep, leave = people(2)
    audience.add([keep, leave])

    # When one is removed
    audience.remove([leave])

    # Then the ingest carried consent and terms, the removal did not (the API rejects them there)
    ingest, remove = google.calls
    assert ingest.body["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert ingest.body["termsOfService"] == {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
    assert remove.path == "/v1/audienceMembers:remove" and remove.status == 200
    assert "consent" not in remove.body and "termsOfService" not in remove.body
    assert google.members == {(keep.email, "")}


def test_google_server_errors_are_retried(google, sleeps):
    # Given two 500s before the API recovers
    google.fail_next(2, 500)

    # When members are added
    google_audience(google, sleeps).add(people(5))

    # Then the batch was retried with back-off and landed
    assert [call.status for call in google.calls] == [500, 500, 200]
    assert sleeps == [0.5, 1.0]
    assert len(google.members) == 5


def test_google_gives_up_after_the_last_attempt_with_a_retryable_error(google, sleeps):
    # Given an API that keeps failing
    google.fail_next(10, 503)

    # When members are added with at most three attempts
    with pytest.raises(AdPlatformError) as caught:
        google_audience(google, sleeps, retry=RetryPolicy(max_attempts=3)).add(people(1))

    # Then it tried three times and says the call may succeed later
    assert len(google.calls) == 3
    assert caught.value.retryable and caught.value.http_status == 503
    assert caught.value.platform_code == "UNAVAILABLE"


def test_google_long_retry_after_is_handed_to_the_caller_instead_of_waited(google, sleeps):
    # Given a quota error asking to come back in two minutes
    google.fail_next(1, 429, retry_after="120")

    # When members are added
    with pytest.raises(AdPlatformError) as caught:
        google_audience(google, sleeps).add(people(1))

    # Then the adapter did not sleep in-process; the caller gets the hint
    assert sleeps == []
    assert caught.value.retryable and caught.value.retry_after == 120.0


def test_google_bad_request_raises_with_the_platforms_message(google, sleeps):
    # Given a user list the account does not have
    with pytest.raises(AdPlatformError) as caught:
        google_audience(google, sleeps, audience_id="1").add(people(1))

    # Then the error is typed, not retried, and carries Google's status and message
    assert caught.value.http_status == 400 and caught.value.platform_code == "INVALID_ARGUMENT"
    assert "no such user list" in caught.value.platform_message
    assert len(google.calls) == 1


# --- LinkedIn ----------------------------------------------------------------------------


def test_linkedin_streams_members_in_batches_of_5000(linkedin, sleeps):
    # Given 12,000 members
    segment = linkedin_segment(linkedin, sleeps)

    # When they are added
    result = segment.add(people(12_000))

    # Then LinkedIn got BATCH_CREATE requests of 5,000, 5,000 and 2,000 ADD elements
    assert [len(call.body["elements"]) for call in linkedin.calls] == [5_000, 5_000, 2_000]
    call = linkedin.calls[0]
    assert call.path == f"/rest/dmpSegments/{LINKEDIN_SEGMENT}/users"
    assert call.headers["x-restli-method"] == "BATCH_CREATE"
    assert call.headers["linkedin-version"] == "202601"
    assert call.headers["x-restli-protocol-version"] == "2.0.0"
    assert call.body["elements"][0] == {
        "action": "ADD",
        "userIds": [{"idType": "SHA256_EMAIL", "idValue": sha("lead0@example.com")}],
    }
    assert len(linkedin.members) == 12_000
    assert (result.requests, result.accepted) == (3, 12_000)


def test_linkedin_removal_is_a_remove_action_and_phone_only_members_are_skipped(linkedin, sleeps):
    # Given a segment with two members, and a phone-only identity
    segment = linkedin_segment(linkedin, sleeps)
    keep, leave = people(2)
    segment.add([keep, leave])
    phone_only = HashedIdentity(phone=sha("14155550100"))

    # When one member and the phone-only identity are removed
    result = segment.remove([leave, phone_only])

    # Then one REMOVE element was sent; the phone-only one could not be (LinkedIn matches emails)
    removal = linkedin.calls[-1]
    assert removal.body["elements"] == [
        {"action": "REMOVE", "userIds": [{"idType": "SHA256_EMAIL", "idValue": leave.email}]}
    ]
    assert result.skipped == 1 and result.sent == 1
    assert linkedin.members == {keep.email}


def test_linkedin_429_is_retried(linkedin, sleeps):
    # Given LinkedIn's per-minute limit answers 429 once
    linkedin.fail_next(1, 429)

    # When members are added
    linkedin_segment(linkedin, sleeps).add(people(3))

    # Then the batch was retried after a jittered back-off and landed
    assert [call.status for call in linkedin.calls] == [429, 200]
    assert sleeps == [0.5]
    assert len(linkedin.members) == 3


def test_linkedin_wrong_token_raises(linkedin, sleeps):
    # Given a revoked token
    with pytest.raises(AdPlatformError) as caught:
        linkedin_segment(linkedin, sleeps, credentials(**{"linkedin-ads": "nope"})).add(people(1))

    # Then the error is typed with LinkedIn's code
    assert caught.value.http_status == 401 and caught.value.platform_code == "INVALID_ACCESS_TOKEN"


def test_unreachable_platform_is_retried_then_reported_as_retryable(sleeps):
    # Given a platform endpoint nobody listens on
    with FakeLinkedIn(LINKEDIN_SEGMENT, TOKEN) as server:
        gone = server.base_url
    segment = LinkedInDmpSegments(
        LinkedInDestination(LINKEDIN_SEGMENT, "linkedin-ads"),
        credentials(**{"linkedin-ads": TOKEN}),
        base_url=gone,
        sleep=sleeps,
        jitter=lambda: 1.0,
        opener=direct_opener(),
        retry=RetryPolicy(max_attempts=2),
        timeout=2,
    )

    # When members are added
    with pytest.raises(AdPlatformError) as caught:
        segment.add(people(1))

    # Then it retried once and reports a retryable failure without an HTTP status
    assert sleeps == [0.5]
    assert caught.value.retryable and caught.value.http_status is None


# --- the fakes hold the line ---------------------------------------------------------------


def test_fake_meta_rejects_more_than_10000_records_and_non_hex_hashes(meta):
    # Given requests the Marketing API would refuse
    url = f"{meta.base_url}/v25.0/{META_AUDIENCE}/users"
    headers = {"Content-Type": "application/json"}
    too_many = {"access_token": TOKEN, "payload": {"schema": "EMAIL_SHA256", "data": [sha("x")] * 10_001}}
    upper_case = {"access_token": TOKEN, "payload": {"schema": "EMAIL_SHA256", "data": [sha("x").upper()]}}

    # Then each is a 400 with a Graph error
    for body in (too_many, upper_case):
        status, answer = raw_request(url, "POST", body, headers)
        assert status == 400 and answer["error"]["code"] == 100


def test_fake_linkedin_requires_the_version_and_batch_headers(linkedin):
    # Given a well-formed body sent without LinkedIn-Version or X-RestLi-Method
    url = f"{linkedin.base_url}/rest/dmpSegments/{LINKEDIN_SEGMENT}/users"
    body = {"elements": [{"action": "ADD", "userIds": [{"idType": "SHA256_EMAIL", "idValue": sha("x")}]}]}
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    # Then LinkedIn's checks answer 400
    status, answer = raw_request(url, "POST", body, auth)
    assert status == 400 and answer["code"] == "VERSION_MISSING"
    status, _ = raw_request(
        url, "POST", body, {**auth, "LinkedIn-Version": "202601", "X-Restli-Protocol-Version": "2.0.0"}
    )
    assert status == 400


def test_fake_google_rejects_more_than_10000_members(google):
    # Given an :ingest request one member over the limit
    member = {"userData": {"userIdentifiers": [{"emailAddress": sha("x")}]}}
    body = {
        "destinations": [
            {
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": GOOGLE_ACCOUNT},
                "productDestinationId": GOOGLE_AUDIENCE,
            }
        ],
        "audienceMembers": [member] * 10_001,
        "encoding": "HEX",
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    # Then the API answers INVALID_ARGUMENT
    status, answer = raw_request(f"{google.base_url}/v1/audienceMembers:ingest", "POST", body, headers)
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
