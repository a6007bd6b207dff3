"""Local stand-ins for the Meta, Google Data Manager and LinkedIn audience APIs.

Each is a real HTTP server on 127.0.0.1 (a free port, a background thread) that
checks requests the way its platform documents them: path, method, headers,
auth, JSON shape, SHA-256 hex identifiers and the per-request limit. A bad
request gets the platform's own error shape and status (400, 401, 404); a good
one changes the fake's member set, so tests assert on who ends up in the
audience. Every request is recorded. `fail_next(n, status, retry_after=...)`
makes the next n requests answer with that status first (429, 500, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import threading
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
META_LIMIT = 10_000
GOOGLE_LIMIT = 10_000
LINKEDIN_LIMIT = 5_000


def direct_opener() -> urllib.request.OpenerDirector:
    """An opener that ignores proxy settings, so 127.0.0.1 is always reached directly."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@contextlib.contextmanager
def revenue_team_platforms(token: str) -> Iterator[dict[str, Any]]:
    """The three fakes, holding the ids of the shipped nurture-revenue-teams audience."""
    with (
        FakeMeta("120210000000000001", token) as meta,
        FakeGoogle("1234567890", "9000000001", token) as google,
        FakeLinkedIn("10000001", token) as linkedin,
    ):
        yield {"meta": meta, "google": google, "linkedin": linkedin}


def adapters_to(fakes: dict[str, Any], token: str) -> Callable[[Any], Any]:
    """Builds the real platform adapter for a destination, pointed at its fake
    (credentials in memory, no back-off sleeps)."""
    from nurture.channels.ad_platforms import platform_for
    from tests.fakes import InMemoryCredentials

    credentials = InMemoryCredentials(
        {name: {"access_token": token} for name in ("meta-ads", "google-data-manager", "linkedin-ads")}
    )

    def adapter(destination: Any) -> Any:
        base_url = fakes[destination.platform].base_url
        return platform_for(destination, credentials, base_url=base_url, opener=direct_opener(), sleep=lambda s: None)

    return adapter


@dataclass
class RecordedCall:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    status: int  # what the fake answered


class _Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.fake._dispatch(self)  # type: ignore[attr-defined]

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class FakePlatform:
    """The server plumbing shared by the three fakes."""

    def __init__(self) -> None:
        self.calls: list[RecordedCall] = []
        self._faults: deque[tuple[int, str | None]] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, count: int, status: int, retry_after: str | None = None) -> None:
        """Answer the next `count` requests with `status` (and Retry-After, if given)."""
        with self._lock:
            self._faults.extend([(status, retry_after)] * count)

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.method == method]

    # Subclasses: check the request, apply it, return (status, body).
    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def fault_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    def _dispatch(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        headers = {name.lower(): value for name, value in request.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = request.rfile.read(length) if length else b""
        body: Any = None
        extra: dict[str, str] = {}
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            status, retry_after = fault
            answer = self.fault_body(status)
            if retry_after is not None:
                extra["Retry-After"] = retry_after
        else:
            try:
                if raw and not headers.get("content-type", "").startswith("application/json"):
                    raise _Reject(*self.bad_request("Content-Type must be application/json"))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    raise _Reject(*self.bad_request("the body is not valid JSON")) from None
                with self._lock:
                    status, answer = self.handle(request.command, parsed.path, headers, body)
            except _Reject as rejected:
                status, answer = rejected.status, rejected.body
        if body is None and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        self.calls.append(
            RecordedCall(request.command, parsed.path, urllib.parse.parse_qs(parsed.query), headers, body, status)
        )
        encoded = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(encoded)))
        for name, value in extra.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(encoded)

    def bad_request(self, message: str) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


def _hex(value: Any) -> bool:
    return isinstance(value, str) and SHA256_HEX.match(value) is not None


# --- Meta ---------------------------------------------------------------------------


class FakeMeta(FakePlatform):
    """graph.facebook.com/{version}/{audience_id}/users: POST adds, DELETE removes.

    Members are kept as (email hash or "", phone hash or "")."""

    MULTI_KEYS = ("EMAIL", "PHONE")

    def __init__(self, audience_id: str, access_token: str, app_secret: str | None = None) -> None:
        super().__init__()
        self.audience_id = audience_id
        self.access_token = access_token
        self.app_secret = app_secret
        self.members: set[tuple[str, str]] = set()

    def _error(self, status: int, message: str, code: int, kind: str = "OAuthException", **extra: Any):
        return status, {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf", **extra}}

    def bad_request(self, message: str) -> tuple[int, dict[str, Any]]:
        return self._error(400, f"(#100) {message}", 100)

    def fault_body(self, status: int) -> dict[str, Any]:
        if status == 400:  # how the Marketing API throttles a custom audience
            return self._error(400, "There have been too many calls to this ad-account.", 80003, is_transient=True)[1]
        return self._error(status, "An unexpected error has occurred. Please retry your request later.", 2)[1]

    def throttle_next(self, count: int) -> None:
        """The Marketing API's rate limit: HTTP 400 with error code 80003."""
        self.fail_next(count, 400)

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r"/v\d+\.\d+/(\d+)/users", path)
        if match is None:
            return self._error(400, "Unknown path components", 2500)
        if method not in ("POST", "DELETE"):
            return self._error(400, f"Unsupported {method.lower()} request.", 100, "GraphMethodException")
        if not isinstance(body, dict):
            return self.bad_request("payload is required")
        if body.get("access_token") != self.access_token:
            return self._error(401, "Invalid OAuth access token - Cannot parse access token", 190)
        if self.app_secret is not None:
            proof = hmac.new(self.app_secret.encode(), self.access_token.encode(), hashlib.sha256).hexdigest()
            if body.get("appsecret_proof") != proof:
                return self._error(
                    400, "Invalid appsecret_proof provided in the API argument", 100, "GraphMethodException"
                )
        if match.group(1) != self.audience_id:
            return self._error(
                400,
                f"Unsupported post request. Object with ID '{match.group(1)}' does not exist",
                100,
                error_subcode=33,
            )
        unknown = set(body) - {"payload", "session", "access_token", "appsecret_proof"}
        if unknown:
            return self.bad_request(f"unknown parameters: {sorted(unknown)}")
        session = body.get("session")
        if session is not None:
            problem = self._session_problem(session)
            if problem:
                return self.bad_request(problem)
        rows, problem = self._rows(body.get("payload"))
        if problem:
            return self.bad_request(problem)
        if method == "POST":
            self.members.update(rows)
        else:
            self.members.difference_update(rows)
        return 200, {
            "audience_id": self.audience_id,
            "session_id": (session or {}).get("session_id", 0),
            "num_received": len(rows),
            "num_invalid_entries": 0,
            "invalid_entry_samples": {},
        }

    def _session_problem(self, session: Any) -> str | None:
        if not isinstance(session, dict):
            return "session must be an object"
        if set(session) - {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"}:
            return "session has unknown fields"
        if not isinstance(session.get("session_id"), int) or session["session_id"] < 0:
            return "session.session_id must be a non-negative integer"
        if not isinstance(session.get("batch_seq"), int) or session["batch_seq"] < 1:
            return "session.batch_seq must start at 1"
        if not isinstance(session.get("last_batch_flag"), bool):
            return "session.last_batch_flag must be true or false"
        total = session.get("estimated_num_total")
        if total is not None and not isinstance(total, int):
            return "session.estimated_num_total must be an integer"
        return None

    def _rows(self, payload: Any) -> tuple[list[tuple[str, str]], str | None]:
        if not isinstance(payload, dict) or "schema" not in payload or "data" not in payload:
            return [], "payload needs schema and data"
        if set(payload) - {"schema", "data", "is_raw", "app_ids", "page_ids"}:
            return [], "payload has unknown fields"
        schema, data = payload["schema"], payload["data"]
        if not isinstance(data, list) or not data:
            return [], "payload.data must be a non-empty list"
        if len(data) > META_LIMIT:
            return [], f"Too many users in one request: {len(data)}; at most {META_LIMIT} at a time"
        if schema in ("EMAIL_SHA256", "PHONE_SHA256"):
            if not all(_hex(value) for value in data):
                return [], f"every {schema} entry must be a SHA-256 hex digest"
            return [(value, "") if schema == "EMAIL_SHA256" else ("", value) for value in data], None
        if isinstance(schema, list) and schema and all(key in self.MULTI_KEYS for key in schema):
            rows = []
            for row in data:
                if not isinstance(row, list) or len(row) != len(schema):
                    return [], "each row must have one value per schema key"
                if not all(value == "" or _hex(value) for value in row) or all(value == "" for value in row):
                    return [], "each row needs at least one SHA-256 hex value; unknown keys are blank"
                keyed = dict(zip(schema, row, strict=True))
                rows.append((keyed.get("EMAIL", ""), keyed.get("PHONE", "")))
            return rows, None
        return [], f"unsupported schema {schema!r}"


# --- Google ---------------------------------------------------------------------------


class FakeGoogle(FakePlatform):
    """datamanager.googleapis.com/v1/audienceMembers:ingest and :remove.

    Members are kept as (email hash or "", phone hash or "")."""

    ACCOUNT_TYPES = ("GOOGLE_ADS", "DISPLAY_VIDEO_ADVERTISER", "DISPLAY_VIDEO_PARTNER", "DATA_PARTNER")
    CONSENT = ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED")
    FIELDS = {
        "ingest": {
            "destinations",
            "audienceMembers",
            "consent",
            "validateOnly",
            "encoding",
            "encryptionInfo",
            "termsOfService",
        },
        "remove": {"destinations", "audienceMembers", "validateOnly", "encoding", "encryptionInfo"},
    }

    def __init__(self, account_id: str, audience_id: str, access_token: str) -> None:
        super().__init__()
        self.account_id = account_id
        self.audience_id = audience_id
        self.access_token = access_token
        self.members: set[tuple[str, str]] = set()
        self.request_bodies: list[dict[str, Any]] = []

    def _status(self, code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"error": {"code": code, "message": message, "status": status}}

    def bad_request(self, message: str) -> tuple[int, dict[str, Any]]:
        return self._status(400, "INVALID_ARGUMENT", message)

    def fault_body(self, status: int) -> dict[str, Any]:
        name = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(status, "UNKNOWN")
        return self._status(status, name, f"fault injected: {name}")[1]

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r"/v1/audienceMembers:(ingest|remove)", path)
        if match is None:
            return self._status(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")
        if method != "POST":
            return self._status(404, "NOT_FOUND", f"{method} is not supported for {path}")
        if headers.get("authorization") != f"Bearer {self.access_token}":
            return self._status(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token."
            )
        verb = match.group(1)
        if not isinstance(body, dict):
            return self.bad_request("the request body must be a JSON object")
        unknown = set(body) - self.FIELDS[verb]
        if unknown:
            name = sorted(unknown)[0]
            return self.bad_request(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        problem = self._destinations(body.get("destinations"))
        if problem is None:
            rows, problem = self._members(body.get("audienceMembers"))
        if problem is None and body.get("encoding") != "HEX":
            problem = "encoding is required for UserData uploads; these identifiers are HEX"
        if problem is None and verb == "ingest":
            problem = self._consent(body.get("consent"), "consent") or self._terms(body.get("termsOfService"))
        if problem is not None:
            return self.bad_request(problem)
        self.request_bodies.append(body)
        if verb == "ingest":
            self.members.update(rows)
        else:
            self.members.difference_update(rows)
        return 200, {"requestId": str(uuid.uuid4())}

    def _account(self, account: Any, at: str) -> str | None:
        if not isinstance(account, dict) or set(account) - {"accountType", "accountId"}:
            return f"{at} must be {{accountType, accountId}}"
        if account.get("accountType") not in self.ACCOUNT_TYPES:
            return f"{at}.accountType must be one of {', '.join(self.ACCOUNT_TYPES)}"
        if not re.fullmatch(r"\d+", str(account.get("accountId", ""))):
            return f"{at}.accountId must be the numeric account id, without dashes"
        return None

    def _destinations(self, destinations: Any) -> str | None:
        if not isinstance(destinations, list) or not 1 <= len(destinations) <= 10:
            return "destinations must list 1 to 10 destinations"
        for i, destination in enumerate(destinations):
            at = f"destinations[{i}]"
            if not isinstance(destination, dict):
                return f"{at} must be an object"
            allowed = {"reference", "loginAccount", "linkedAccount", "operatingAccount", "productDestinationId"}
            if set(destination) - allowed:
                return f"{at} has unknown fields"
            for key in ("operatingAccount", "loginAccount", "linkedAccount"):
                if key in destination or key == "operatingAccount":
                    problem = self._account(destination.get(key), f"{at}.{key}")
                    if problem:
                        return problem
            if destination["operatingAccount"]["accountId"] != self.account_id:
                return f"{at}.operatingAccount: the caller does not have permission on this account"
            if destination.get("productDestinationId") != self.audience_id:
                return f"{at}.productDestinationId: no such user list"
        return None

    def _members(self, members: Any) -> tuple[list[tuple[str, str]], str | None]:
        if not isinstance(members, list) or not members:
            return [], "audienceMembers must not be empty"
        if len(members) > GOOGLE_LIMIT:
            return [], f"Too many audienceMembers: {len(members)}; at most {GOOGLE_LIMIT} in a request"
        rows = []
        for i, member in enumerate(members):
            at = f"audienceMembers[{i}]"
            allowed = {"destinationReferences", "userData", "pairData", "mobileData", "consent"}
            if not isinstance(member, dict) or set(member) - allowed:
                return [], f"{at} has unknown fields"
            problem = self._consent(member.get("consent"), f"{at}.consent")
            if problem:
                return [], problem
            user_data = member.get("userData")
            identifiers = user_data.get("userIdentifiers") if isinstance(user_data, dict) else None
            if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 10:
                return [], f"{at}.userData.userIdentifiers must hold 1 to 10 identifiers"
            row = {"emailAddress": "", "phoneNumber": ""}
            for j, identifier in enumerate(identifiers):
                if not isinstance(identifier, dict) or len(identifier) != 1:
                    return [], f"{at}.userData.userIdentifiers[{j}] must set exactly one identifier"
                ((key, value),) = identifier.items()
                if key not in row or not _hex(value):
                    return [], f"{at}.userData.userIdentifiers[{j}].{key} must be a hex SHA-256 digest"
                row[key] = value
            rows.append((row["emailAddress"], row["phoneNumber"]))
        return rows, None

    def _consent(self, consent: Any, at: str) -> str | None:
        if consent is None:
            return None
        if not isinstance(consent, dict) or set(consent) - {"adUserData", "adPersonalization"}:
            return f"{at} must be {{adUserData, adPersonalization}}"
        if any(value not in self.CONSENT for value in consent.values()):
            return f"{at} values must be one of {', '.join(self.CONSENT)}"
        return None

    def _terms(self, terms: Any) -> str | None:
        if terms is None:
            return None
        if not isinstance(terms, dict) or terms.get("customerMatchTermsOfServiceStatus") not in (
            "ACCEPTED",
            "REJECTED",
        ):
            return "termsOfService.customerMatchTermsOfServiceStatus must be ACCEPTED or REJECTED"
        return None


# --- LinkedIn -------------------------------------------------------------------------


class FakeLinkedIn(FakePlatform):
    """api.linkedin.com/rest/dmpSegments/{id}/users with X-RestLi-Method: BATCH_CREATE.

    Members are kept as email hashes."""

    ID_TYPES = ("SHA256_EMAIL", "SHA512_EMAIL", "GOOGLE_AID")

    def __init__(self, segment_id: str, access_token: str) -> None:
        super().__init__()
        self.segment_id = segment_id
        self.access_token = access_token
        self.members: set[str] = set()

    def _error(self, status: int, message: str, code: str | None = None) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"status": status, "message": message}
        if code:
            body["code"] = code
        return status, body

    def bad_request(self, message: str) -> tuple[int, dict[str, Any]]:
        return self._error(400, message)

    def fault_body(self, status: int) -> dict[str, Any]:
        return self._error(status, "Too Many Requests" if status == 429 else "Internal Server Error")[1]

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r"/rest/dmpSegments/(\d+)/users", path)
        if match is None:
            return self._error(404, f"No virtual resource found for {path}", "RESOURCE_NOT_FOUND")
        if method != "POST":
            return self._error(405, f"{method} is not supported", "METHOD_NOT_ALLOWED")
        if headers.get("authorization") != f"Bearer {self.access_token}":
            return self._error(401, "Invalid access token", "INVALID_ACCESS_TOKEN")
        if not re.fullmatch(r"\d{6}(\.\d{2})?", headers.get("linkedin-version", "")):
            return self._error(
                400, "A version must be present in the LinkedIn-Version header (YYYYMM)", "VERSION_MISSING"
            )
        if headers.get("x-restli-protocol-version") != "2.0.0":
            return self.bad_request("X-Restli-Protocol-Version must be 2.0.0")
        if headers.get("x-restli-method", "").upper() != "BATCH_CREATE":
            return self.bad_request("a list of elements needs X-RestLi-Method: BATCH_CREATE")
        if match.group(1) != self.segment_id:
            return self._error(404, f"DMP segment {match.group(1)} not found", "NOT_FOUND")
        elements = body.get("elements") if isinstance(body, dict) and set(body) == {"elements"} else None
        if not isinstance(elements, list) or not elements:
            return self.bad_request('the body must be {"elements": [...]} with at least one element')
        if len(elements) > LINKEDIN_LIMIT:
            return self.bad_request(f"Batch size {len(elements)} exceeds the maximum of {LINKEDIN_LIMIT}")
        changes = []
        for i, element in enumerate(elements):
            at = f"elements[{i}]"
            if not isinstance(element, dict) or set(element) - {"action", "userIds", "firstName", "lastName"}:
                return self.bad_request(f"{at} has unknown fields")
            if element.get("action") not in ("ADD", "REMOVE"):
                return self.bad_request(f"{at}.action must be ADD or REMOVE")
            user_ids = element.get("userIds")
            if not isinstance(user_ids, list) or not user_ids:
                return self.bad_request(f"{at}.userIds must list at least one id")
            for j, user_id in enumerate(user_ids):
                if not isinstance(user_id, dict) or set(user_id) != {"idType", "idValue"}:
                    return self.bad_request(f"{at}.userIds[{j}] must be {{idType, idValue}}")
                if user_id["idType"] not in self.ID_TYPES:
                    return self.bad_request(f"{at}.userIds[{j}].idType must be one of {', '.join(self.ID_TYPES)}")
                if user_id["idType"] == "SHA256_EMAIL" and not _hex(user_id["idValue"]):
                    return self.bad_request(f"{at}.userIds[{j}].idValue must be a hex string of length 64")
                if user_id["idType"] == "SHA256_EMAIL":
                    changes.append((element["action"], user_id["idValue"]))
        for action, email in changes:
            if action == "ADD":
                self.members.add(email)
            else:
                self.members.discard(email)
        return 200, {"elements": [{"status": 201} for _ in elements]}
