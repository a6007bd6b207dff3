"""Ad-platform audience adapters: Meta Custom Audiences, Google Data Manager and
LinkedIn DMP segments, on the standard library's urllib only.

Every adapter takes already-hashed identities (SHA-256, 64 lower-case hex
characters; audiences.py normalises and hashes per platform), splits them into
the platform's documented per-request maximum, retries throttling and server
errors with exponential back-off and full jitter (honouring Retry-After), and
raises AdPlatformError with the platform's own message for any other failure.
Requests and waits stop short of the invocation's deadline
(nurture.core.deadline) with a retryable AdPlatformError, so the queue
retries the work instead of Lambda killing it half-way.

Adds and removes are idempotent on all three platforms (re-adding a member or
removing an absent one succeeds), so a batch retried after a timeout, or a whole
call retried by the queue, is safe: delivery is at least once.

Per-request limits, from each platform's documentation:
  Meta      10,000 records  developers.facebook.com/docs/marketing-api/reference/custom-audience/users
  Google    10,000 members  developers.google.com/data-manager/api/devguides/limits
  LinkedIn   5,000 elements the integration brief (not confirmed in LinkedIn's pages we could read;
                            a constructor argument so it can be lowered without a release)
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nurture.config.audiences import Destination, GoogleDestination, LinkedInDestination, MetaDestination
from nurture.core.deadline import Deadline
from nurture.core.deadline import current as current_deadline
from nurture.core.domain import HashedIdentity, PlatformResult
from nurture.core.errors import NurtureError
from nurture.core.ports import AudiencePlatform, CredentialSource
from nurture.core.retries import RetryPolicy, retry_after_seconds

META_BATCH_LIMIT = 10_000
GOOGLE_BATCH_LIMIT = 10_000
LINKEDIN_BATCH_LIMIT = 5_000
META_API_VERSION = "v25.0"
LINKEDIN_API_VERSION = "202601"  # LinkedIn-Version header, YYYYMM; each version is supported for about a year
META_BASE_URL = "https://graph.facebook.com"
GOOGLE_BASE_URL = "https://datamanager.googleapis.com"
LINKEDIN_BASE_URL = "https://api.linkedin.com"
# Graph API error codes that mean "slow down" or "try again", sent with HTTP 400/403
# rather than 429: unknown, service, app/user/page limits, ad-account and custom-audience limits.
META_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80003, 80004})
META_AUTH_CODE = 190


class AdPlatformError(NurtureError):
    """A platform refused a request, or kept failing after every retry.

    `retryable` tells the caller whether doing the same call later may succeed
    (throttled, server errors, Retry-After longer than we wait in-process);
    `retry_after` is the platform's own hint in seconds when it gave one.
    """

    status = 502
    code = "AdPlatformError"

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        http_status: int | None = None,
        platform_code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        where = f"HTTP {http_status}" if http_status is not None else "no response"
        super().__init__(f"{platform}: {where}: {message}")
        self.platform = platform
        self.platform_message = message
        self.http_status = http_status
        self.platform_code = platform_code
        self.retryable = retryable
        self.retry_after = retry_after


# --- destinations (parsed from audiences.yaml) -----------------------------------


# --- HTTP with retries ---------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON


class _Transport:
    """One JSON request/response over urllib, with retries and credentials."""

    def __init__(
        self,
        platform: str,
        credentials: CredentialSource,
        secret: str,
        *,
        classify: Callable[[_Response], tuple[str, str, str | None]],
        timeout: float,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        jitter: Callable[[], float],
        opener: urllib.request.OpenerDirector | None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.platform = platform
        self.credentials = credentials
        self.secret = secret
        self._classify = classify  # response -> (kind: ok|auth|retry|fail, message, platform code)
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._jitter = jitter
        self._opener = opener or urllib.request.build_opener()
        self._now = now

    def send(self, method: str, url: str, build: Callable[[Mapping[str, str]], tuple[dict[str, str], bytes]]) -> Any:
        """Send the request `build(credential)` makes; returns the parsed 2xx body.
        A rejected credential is invalidated and re-read once. Requests and
        waits stop short of the invocation's deadline (nurture.core.deadline):
        out of time, it raises a retryable AdPlatformError for the queue."""
        deadline = current_deadline()
        refreshed = False
        attempt = 0
        while True:
            timeout = deadline.request_timeout(self._timeout)
            if timeout is None:
                raise AdPlatformError(
                    self.platform,
                    f"no time left in this invocation ({attempt} attempts made)",
                    retryable=True,
                )
            headers, body = build(self.credentials.credential(self.secret))
            try:
                response = self._exchange(method, url, headers, body, timeout)
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
                reason = getattr(exc, "reason", exc)
                attempt += 1
                self._wait_or_raise(deadline, attempt, None, f"request failed: {reason}", None, None)
                continue
            kind, message, platform_code = self._classify(response)
            if kind == "ok":
                return response.body
            if kind == "auth" and not refreshed:
                refreshed = True
                self.credentials.invalidate(self.secret)
                continue
            if kind == "retry":
                attempt += 1
                retry_after = retry_after_seconds(response.headers.get("retry-after"), self._now())
                self._wait_or_raise(deadline, attempt, retry_after, message, response.status, platform_code)
                continue
            raise AdPlatformError(self.platform, message, http_status=response.status, platform_code=platform_code)

    def _wait_or_raise(
        self,
        deadline: Deadline,
        attempt: int,
        retry_after: float | None,
        message: str,
        status: int | None,
        platform_code: str | None,
    ) -> None:
        delay = self._retry.delay(attempt, retry_after, self._jitter, deadline)
        if delay is None:
            raise AdPlatformError(
                self.platform,
                message,
                http_status=status,
                platform_code=platform_code,
                retryable=True,
                retry_after=retry_after,
            )
        self._sleep(delay)

    def _exchange(self, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> _Response:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
        try:
            with self._opener.open(request, timeout=timeout) as reply:
                return _Response(reply.status, _lower(reply.headers), _parse(reply.read()))
        except urllib.error.HTTPError as exc:
            with exc:
                return _Response(exc.code, _lower(exc.headers), _parse(exc.read()))


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers.items() if headers is not None else ())}


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _generic_classify(response: _Response, message: str) -> tuple[str, str, str | None]:
    status = response.status
    if 200 <= status < 300:
        return "ok", "", None
    if status == 401:
        return "auth", message, None
    if status == 429 or status >= 500:
        return "retry", message, None
    return "fail", message, None


# --- Meta -----------------------------------------------------------------------------


class MetaCustomAudiences:
    """A Meta customer-list Custom Audience: POST /{audience_id}/users adds,
    DELETE /{audience_id}/users removes, at most 10,000 records a request.

    Members with a phone are sent as a multi-key schema ["EMAIL", "PHONE"] (a blank
    for an unknown key), members with only an email as schema EMAIL_SHA256. The
    batches of one call share an upload `session` (id, batch_seq, last_batch_flag),
    which lets Meta tie them together and de-duplicate a replayed batch. Parameters
    go in a JSON body, access_token among them (a 10,000-record DELETE would not
    fit in a query string); appsecret_proof is added when the credential has an
    app_secret. Meta processes uploads asynchronously (up to 24 hours)."""

    platform = "meta"

    def __init__(
        self,
        destination: MetaDestination,
        credentials: CredentialSource,
        *,
        api_version: str = META_API_VERSION,
        base_url: str = META_BASE_URL,
        batch_limit: int = META_BATCH_LIMIT,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        session_ids: Callable[[], int] = lambda: random.getrandbits(62),
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.destination = destination
        self._url = f"{base_url.rstrip('/')}/{api_version}/{destination.audience_id}/users"
        self._batch_limit = min(batch_limit, META_BATCH_LIMIT)
        self._session_ids = session_ids
        self._http = _Transport(
            "meta",
            credentials,
            destination.secret,
            classify=_meta_classify,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            sleep=sleep,
            jitter=jitter,
            opener=opener,
        )

    def add(self, identities: Sequence[HashedIdentity]) -> PlatformResult:
        return self._send("POST", identities)

    def remove(self, identities: Sequence[HashedIdentity]) -> PlatformResult:
        return self._send("DELETE", identities)

    def _send(self, method: str, identities: Sequence[HashedIdentity]) -> PlatformResult:
        identities = list(dict.fromkeys(identities))
        if not identities:
            return PlatformResult()
        batches = list(_chunks(identities, self._batch_limit))
        session_id = self._session_ids()
        result = PlatformResult()
        for seq, batch in enumerate(batches, start=1):
            if any(identity.phone for identity in batch):
                payload: dict[str, Any] = {
                    "schema": ["EMAIL", "PHONE"],
                    "data": [[identity.email or "", identity.phone or ""] for identity in batch],
                }
            else:
                payload = {"schema": "EMAIL_SHA256", "data": [identity.email for identity in batch]}
            session = {
                "session_id": session_id,
                "batch_seq": seq,
                "last_batch_flag": seq == len(batches),
                "estimated_num_total": len(identities),
            }

            def build(credential: Mapping[str, str], payload=payload, session=session) -> tuple[dict[str, str], bytes]:
                token = credential["access_token"]
                body: dict[str, Any] = {"payload": payload, "session": session, "access_token": token}
                if credential.get("app_secret"):
                    body["appsecret_proof"] = hmac.new(
                        credential["app_secret"].encode(), token.encode(), hashlib.sha256
                    ).hexdigest()
                return {"Content-Type": "application/json", "Accept": "application/json"}, _json(body)

            reply = self._http.send(method, self._url, build)
            received = int(reply.get("num_received", len(batch))) if isinstance(reply, Mapping) else len(batch)
            invalid = int(reply.get("num_invalid_entries", 0)) if isinstance(reply, Mapping) else 0
            result += PlatformResult(1, len(batch), received - invalid, invalid, 0)
        return result


def _meta_classify(response: _Response) -> tuple[str, str, str | None]:
    error = response.body.get("error") if isinstance(response.body, Mapping) else None
    if 200 <= response.status < 300 and not error:
        return "ok", "", None
    error = error if isinstance(error, Mapping) else {}
    message = str(error.get("error_user_msg") or error.get("message") or response.body or "no error message")
    code = error.get("code")
    subcode = error.get("error_subcode")
    platform_code = None if code is None else f"{code}/{subcode}" if subcode else f"{code}"
    if response.status == 401 or code == META_AUTH_CODE:
        return "auth", message, platform_code
    if response.status == 429 or response.status >= 500 or code in META_TRANSIENT_CODES or error.get("is_transient"):
        return "retry", message, platform_code
    return "fail", message, platform_code


# --- Google -----------------------------------------------------------------------


class GoogleDataManager:
    """A Customer Match audience through the Google Data Manager API:
    POST /v1/audienceMembers:ingest adds, POST /v1/audienceMembers:remove removes,
    at most 10,000 audience members a request. Identifiers are SHA-256 hex
    (encoding HEX); each member carries its email and/or phone identifier.
    Processing is asynchronous: a 200 returns a requestId, and per-member
    diagnostics come later from requestStatus:retrieve."""

    platform = "google"

    def __init__(
        self,
        destination: GoogleDestination,
        credentials: CredentialSource,
        *,
        base_url: str = GOOGLE_BASE_URL,
        batch_limit: int = GOOGLE_BATCH_LIMIT,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.destination = destination
        self._base = f"{base_url.rstrip('/')}/v1/audienceMembers"
        self._batch_limit = min(batch_limit, GOOGLE_BATCH_LIMIT)
        self.request_ids: list[str] = []
        self._http = _Transport(
            "google",
            credentials,
            destination.secret,
            classify=_google_classify,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            sleep=sleep,
            jitter=jitter,
            opener=opener,
        )

    def add(self, identities: Sequence[HashedIdentity]) -> PlatformResult:
        return self._send("ingest", identities)

    def remove(self, identities: Sequence[HashedIdentity]) -> PlatformResult:
        return self._send("remove", identities)

    def _destination(self) -> dict[str, Any]:
        destination: dict[str, Any] = {
            "operatingAccount": self.destination.operating_account.to_json(),
            "productDestinationId": self.destination.audience_id,
        }
        if self.destination.login_account is not None:
            destination["loginAccount"] = self.destination.login_account.to_json()
        return destination

    def _send(self, verb: str, identities: Sequence[HashedIdentity]) -> PlatformResult:
        identities = list(dict.fromkeys(identities))
        result = PlatformResult()
        for batch in _chunks(identities, self._batch_limit):
            document: dict[str, Any] = {
                "destinations": [self._destination()],
                "audienceMembers": [
                    {"userData": {"userIdentifiers": _google_identifiers(identity)}} for identity in batch
                ],
                "encoding": "HEX",
            }
            if verb == "ingest":
                consent = {
                    key: value
                    for key, value in (
                        ("adUserData", self.destination.ad_user_data),
                        ("adPersonalization", self.destination.ad_personalization),
                    )
                    if value
                }
                if consent:
                    document["consent"] = consent
                if self.destination.terms_accepted:
                    document["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
            body = _json(document)

            def build(credential: Mapping[str, str], body=body) -> tuple[dict[str, str], bytes]:
                return {
                    "Authorization": f"Bearer {credential['access_token']}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                }, body

            reply = self._http.send("POST", f"{self._base}:{verb}", build)
            if isinstance(reply, Mapping) and reply.get("requestId"):
                self.request_ids.append(str(reply["requestId"]))
            result += PlatformResult(1, len(batch), len(batch), 0, 0)
        return result


def _google_identifiers(identity: HashedIdentity) -> list[dict[str, str]]:
    identifiers = []
    if identity.email:
        identifiers.append({"emailAddress": identity.email})
    if identity.phone:
        identifiers.append({"phoneNumber": identity.phone})
    return identifiers


def _google_classify(response: _Response) -> tuple[str, str, str | None]:
    error = response.body.get("error") if isinstance(response.body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    message = str(error.get("message") or response.body or "no error message")
    kind, _, _ = _generic_classify(response, message)
    return kind, message, error.get("status")


# --- LinkedIn -------------------------------------------------------------------------


class LinkedInDmpSegments:
    """A LinkedIn contact-list DMP segment: POST /rest/dmpSegments/{id}/users
    with X-RestLi-Method: BATCH_CREATE, one element per member with action ADD
    or REMOVE and its SHA256_EMAIL. LinkedIn matches on email only, so members
    without one are skipped (counted). Each element gets its own status in the
    response; non-2xx element statuses are counted as invalid."""

    platform = "linkedin"

    def __init__(
        self,
        destination: LinkedInDestination,
        credentials: CredentialSource,
        *,
        api_version: str = LINKEDIN_API_VERSION,
        base_url: str = LINKEDIN_BASE_URL,
        batch_limit: int = LINKEDIN_BATCH_LIMIT,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.destination = destination
        self._url = f"{base_url.rstrip('/')}/rest/dmpSegments/{destination.segment_id}/users"
        self._version = api_version
        self._batch_limit = min(batch_limit, LINKEDIN_BATCH_LIMIT)
        self._http = _Transport(
            "linkedin",
            credentials,
            destination.secret,
            classify=_linkedin_classify,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            sleep=sleep,
            jitter=jitter,
            opener=opener,
        )

    def add(self, identities: Sequence[HashedIdentity]) -> PlatformResult:
        return self._send("ADD", identities)

    def remove(self, identities: Sequence[HashedIdentity]) -> PlatformResult:
        return self._send("REMOVE", identities)

    def _send(self, action: str, identities: Sequence[HashedIdentity]) -> PlatformResult:
        emails = list(dict.fromkeys(identity.email for identity in identities if identity.email))
        result = PlatformResult(skipped=sum(1 for identity in identities if not identity.email))
        for batch in _chunks(emails, self._batch_limit):
            body = _json(
                {
                    "elements": [
                        {"action": action, "userIds": [{"idType": "SHA256_EMAIL", "idValue": email}]} for email in batch
                    ]
                }
            )

            def build(credential: Mapping[str, str], body=body) -> tuple[dict[str, str], bytes]:
                return {
                    "Authorization": f"Bearer {credential['access_token']}",
                    "LinkedIn-Version": self._version,
                    "X-Restli-Protocol-Version": "2.0.0",
                    "X-RestLi-Method": "BATCH_CREATE",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                }, body

            reply = self._http.send("POST", self._url, build)
            statuses = [
                int(element.get("status", 201))
                for element in (reply.get("elements") or [] if isinstance(reply, Mapping) else [])
                if isinstance(element, Mapping)
            ]
            invalid = sum(1 for status in statuses if not 200 <= status < 300)
            result += PlatformResult(1, len(batch), len(batch) - invalid, invalid, 0)
        return result


def _linkedin_classify(response: _Response) -> tuple[str, str, str | None]:
    body = response.body if isinstance(response.body, Mapping) else {}
    message = str(body.get("message") or response.body or "no error message")
    kind, _, _ = _generic_classify(response, message)
    code = body.get("code") or body.get("serviceErrorCode")
    return kind, message, None if code is None else str(code)


# --- factory --------------------------------------------------------------------------


def platform_for(destination: Destination, credentials: CredentialSource, **options: Any) -> AudiencePlatform:
    """The adapter for a destination from audiences.yaml; `options` go to its constructor."""
    if isinstance(destination, MetaDestination):
        return MetaCustomAudiences(destination, credentials, **options)
    if isinstance(destination, GoogleDestination):
        return GoogleDataManager(destination, credentials, **options)
    if isinstance(destination, LinkedInDestination):
        return LinkedInDmpSegments(destination, credentials, **options)
    raise TypeError(f"not an ad-platform destination: {destination!r}")
