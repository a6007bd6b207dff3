"""Form tools' own webhook signatures and payload shapes.

A form source's `auth` names how its deliveries are signed. Besides Nurture's
own scheme (`hmac`) and the plain source key (`key`), a source may take a form
tool's deliveries exactly as the tool sends them:

- `standard-webhooks`: the Standard Webhooks specification. `webhook-id`,
  `webhook-timestamp` and `webhook-signature` (space-separated `v1,<base64>`
  entries, any one matching) over `{id}.{timestamp}.{body}`, keyed with the
  bytes of a `whsec_<base64>` secret; the timestamp within 5 minutes either way.
- `typeform`: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`.
  There is no timestamp header, so the response's own `submitted_at` must fall
  within the source's replay window.
- `tally`: `Tally-Signature: <base64 HMAC-SHA256 of the body>`, and the
  event's own `createdAt` within the source's replay window.

Every signature is checked over the raw body, in constant time, before the body
is read. A delivery that passes becomes one flat submission, the same shape a
source's `fields:` maps for Nurture's own schemes. Each tool also names the
submission field holding its id for the submission, which stays the same when
the tool delivers it again: the form's message id, so a retry is applied once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from nurture.config.loader import FORM_TOOLS
from nurture.core.errors import AuthenticationError, ValidationError
from nurture.core.payloads import header, parse_json_object, storable_text

CLOCK_SKEW_SECONDS = 300  # how far ahead of our clock a signed time may be
STANDARD_WEBHOOKS_TOLERANCE_SECONDS = 300
WHSEC_PREFIX = "whsec_"


class Submission(Mapping[str, Any]):
    """A delivery's answers by name, each also found by its other name (a
    Typeform field's id besides its ref, a Tally field's key besides its label).
    Iterating lists every answer once, under its name, except personal ones the
    tool marks as such (email addresses, phone numbers, signatures): those are
    found when a source maps them, and never kept as event properties."""

    def __init__(
        self,
        values: Mapping[str, Any],
        aliases: Mapping[str, str] | None = None,
        personal: frozenset[str] = frozenset(),
    ) -> None:
        self._values = dict(values)
        self._aliases = {alias: name for alias, name in (aliases or {}).items() if alias not in self._values}
        self._listed = [name for name in self._values if name not in personal]

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return self._values[self._aliases[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed)

    def __len__(self) -> int:
        return len(self._listed)


class FormTool(Protocol):
    """How one form tool signs its deliveries and shapes its payload."""

    id_field: str  # the submission field with the tool's own id for it
    replay_window_seconds: float | None  # default window on the body's own time; None: the signature is timed

    def receive(
        self, secret: str | None, raw_body: bytes, headers: Mapping[str, str], now: float, window: float | None
    ) -> Submission:
        """The verified delivery's flat submission; AuthenticationError naming
        the header or body field when it cannot be trusted."""
        ...


def _base64_hmac(key: bytes, content: bytes) -> str:
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def _same(expected: str, received: str) -> bool:
    """Constant-time, as bytes: text that is not valid Unicode matches nothing."""
    return storable_text(received) and hmac.compare_digest(expected.encode(), received.encode())


def _required_header(headers: Mapping[str, str], name: str, what: str) -> str:
    value = header(headers, name)
    if not value or not value.strip():
        raise AuthenticationError(f"{what} deliveries need the {name} header", field=name)
    return value.strip()


def _secret_bytes(secret: str | None, signature_header: str) -> bytes:
    if not secret:
        raise AuthenticationError("the source has no signing secret configured", field=signature_header)
    return secret.encode()


def _iso_seconds(value: Any, field: str) -> float:
    if not isinstance(value, str) or not value.strip():
        raise AuthenticationError(f"the signed body has no {field}, so its age cannot be checked", field=field)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError) as exc:
        raise AuthenticationError(f"{field} {value!r:.64} is not an ISO 8601 time", field=field) from exc


def check_age(sent_at: float, now: float, window: float, field: str) -> None:
    """A delivery's own time must be at most `window` seconds old, and not
    ahead of our clock by more than the allowed skew."""
    if now - sent_at > window:
        raise AuthenticationError(
            f"{field} is {now - sent_at:.0f} s old, outside this source's replay window of {window:.0f} s",
            field=field,
        )
    if sent_at - now > CLOCK_SKEW_SECONDS:
        raise AuthenticationError(f"{field} is {sent_at - now:.0f} s in the future", field=field)


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _records(value: Any, field: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError("expected a list", field=field)
    return [item for item in value if isinstance(item, Mapping)]


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError("expected a JSON object", field=field)
    return value


# --- Standard Webhooks -----------------------------------------------------------------


def whsec(secret: str) -> str:
    """A Standard Webhooks signing secret (`whsec_` and the key in base64) made
    from any secret text; one that already is such a secret is kept."""
    if secret.startswith(WHSEC_PREFIX):
        return secret
    return WHSEC_PREFIX + base64.b64encode(secret.encode()).decode()


def _whsec_key(secret: str | None) -> bytes:
    if not secret:
        raise AuthenticationError("the source has no signing secret configured", field="webhook-signature")
    try:
        return base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthenticationError(
            "the source's signing secret is not a whsec_<base64> key", field="webhook-signature"
        ) from exc


@dataclass(frozen=True)
class StandardWebhooks:
    """The Standard Webhooks specification (standardwebhooks.com)."""

    id_field: str = FORM_TOOLS["standard-webhooks"].id_field
    replay_window_seconds: float | None = None

    def receive(
        self, secret: str | None, raw_body: bytes, headers: Mapping[str, str], now: float, window: float | None
    ) -> Submission:
        message_id = _required_header(headers, "webhook-id", "Standard Webhooks")
        timestamp = _required_header(headers, "webhook-timestamp", "Standard Webhooks")
        signatures = _required_header(headers, "webhook-signature", "Standard Webhooks")
        # ASCII digits only: int() also reads "1_700_000_000" and other scripts' digits
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise AuthenticationError("webhook-timestamp must be Unix seconds", field="webhook-timestamp")
        if abs(now - int(timestamp)) > STANDARD_WEBHOOKS_TOLERANCE_SECONDS:
            raise AuthenticationError(
                "webhook-timestamp is more than 5 minutes from now (a replay, or a clock far off)",
                field="webhook-timestamp",
            )
        signed = f"{message_id}.{timestamp}.".encode("utf-8", "surrogatepass") + raw_body
        expected = _base64_hmac(_whsec_key(secret), signed)
        candidates = [entry.partition(",") for entry in signatures.split()]
        if not any(version == "v1" and _same(expected, value) for version, _, value in candidates):
            raise AuthenticationError("no v1 signature matches the body", field="webhook-signature")
        return Submission({**parse_json_object(raw_body), self.id_field: message_id})


# --- Typeform --------------------------------------------------------------------------


_TYPEFORM_PERSONAL = frozenset({"email", "phone_number"})


def _typeform_value(answer: Mapping[str, Any]) -> Any:
    kind = answer.get("type")
    value = answer.get(kind) if isinstance(kind, str) else None
    if kind == "choice" and isinstance(value, Mapping):
        return value.get("label") or value.get("other")
    if kind == "choices" and isinstance(value, Mapping):
        labels = [str(label) for label in value.get("labels") or []]
        return ", ".join([*labels, str(value["other"])] if value.get("other") else labels)
    if kind == "payment" and isinstance(value, Mapping):
        return value.get("amount")
    return value


def typeform_submission(document: Mapping[str, Any]) -> Submission:
    """A Typeform `form_response` delivery as one flat submission: each answer
    under its field's ref (also found by the field's id), the hidden fields and
    variables by name, and the delivery's `event_id`, `event_type`, `form_id`,
    `token`, `submitted_at` and `landed_at`."""
    response = _object(document.get("form_response"), "form_response")
    definition = response.get("definition") if isinstance(response.get("definition"), Mapping) else {}
    refs = {
        field["id"]: field["ref"]
        for field in _records(definition.get("fields"), "form_response.definition.fields")
        if field.get("id") and field.get("ref")
    }
    values: dict[str, Any] = {}
    for variable in _records(response.get("variables"), "form_response.variables"):
        if variable.get("key"):
            values[str(variable["key"])] = variable.get(str(variable.get("type")))
    hidden = response.get("hidden")
    values.update(hidden if isinstance(hidden, Mapping) else {})
    aliases: dict[str, str] = {}
    personal: set[str] = set()
    for answer in _records(response.get("answers"), "form_response.answers"):
        field = answer.get("field") if isinstance(answer.get("field"), Mapping) else {}
        field_id = field.get("id")
        name = field.get("ref") or refs.get(field_id) or field_id
        if not name:
            continue
        values[str(name)] = _typeform_value(answer)
        if field_id and field_id != name:
            aliases[str(field_id)] = str(name)
        if answer.get("type") in _TYPEFORM_PERSONAL:
            personal.add(str(name))
    envelope = {
        "event_id": document.get("event_id"),
        "event_type": document.get("event_type"),
        **{key: response.get(key) for key in ("form_id", "token", "submitted_at", "landed_at")},
    }
    return Submission({**values, **_present(envelope)}, aliases, frozenset(personal))


@dataclass(frozen=True)
class Typeform:
    """Typeform's webhook signature (Typeform-Signature) and form_response payload."""

    id_field: str = FORM_TOOLS["typeform"].id_field
    replay_window_seconds: float | None = FORM_TOOLS["typeform"].replay_window_seconds

    def receive(
        self, secret: str | None, raw_body: bytes, headers: Mapping[str, str], now: float, window: float | None
    ) -> Submission:
        signature = _required_header(headers, "Typeform-Signature", "Typeform")
        expected = "sha256=" + _base64_hmac(_secret_bytes(secret, "Typeform-Signature"), raw_body)
        if not _same(expected, signature):
            raise AuthenticationError("the signature does not match the body", field="Typeform-Signature")
        document = parse_json_object(raw_body)
        response = _object(document.get("form_response"), "form_response")
        field = "form_response.submitted_at"
        check_age(_iso_seconds(response.get("submitted_at"), field), now, window or self.replay_window_seconds, field)
        return typeform_submission(document)


# --- Tally -----------------------------------------------------------------------------


_TALLY_PERSONAL = frozenset({"INPUT_EMAIL", "INPUT_PHONE_NUMBER", "SIGNATURE"})


def _tally_personal(field: Mapping[str, Any]) -> bool:
    """Email, phone and signature answers, and the payer's name and email."""
    key = str(field.get("key") or "")
    payer = field.get("type") == "PAYMENT" and key.endswith(("_name", "_email"))
    return field.get("type") in _TALLY_PERSONAL or payer


def _tally_value(field: Mapping[str, Any]) -> Any:
    value = field.get("value")
    if isinstance(value, list) and isinstance(field.get("options"), list):
        texts = {option.get("id"): option.get("text") for option in _records(field["options"], "options")}
        chosen = [str(texts.get(item, item)) for item in value]
        return chosen[0] if len(chosen) == 1 else ", ".join(chosen)
    if isinstance(value, list) and value and all(isinstance(item, Mapping) and "url" in item for item in value):
        return ", ".join(str(item["url"]) for item in value)  # file uploads, signatures
    return value


def tally_submission(document: Mapping[str, Any]) -> Submission:
    """A Tally FORM_RESPONSE delivery as one flat submission: each field under
    its label (also found by its key), choices as their options' text, and the
    delivery's `eventId`, `eventType`, `createdAt`, `responseId`,
    `submissionId`, `respondentId`, `formId` and `formName`."""
    data = _object(document.get("data"), "data")
    values: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    personal: set[str] = set()
    for field in _records(data.get("fields"), "data.fields"):
        key, label = field.get("key"), field.get("label")
        name = label if label and label not in values else key
        if not name:
            continue
        values[str(name)] = _tally_value(field)
        if key and key != name:
            aliases[str(key)] = str(name)
        if _tally_personal(field):
            personal.add(str(name))
    envelope = {
        **{key: document.get(key) for key in ("eventId", "eventType", "createdAt")},
        **{key: data.get(key) for key in ("responseId", "submissionId", "respondentId", "formId", "formName")},
    }
    return Submission({**values, **_present(envelope)}, aliases, frozenset(personal))


@dataclass(frozen=True)
class Tally:
    """Tally's webhook signature (Tally-Signature) and FORM_RESPONSE payload."""

    id_field: str = FORM_TOOLS["tally"].id_field
    replay_window_seconds: float | None = FORM_TOOLS["tally"].replay_window_seconds

    def receive(
        self, secret: str | None, raw_body: bytes, headers: Mapping[str, str], now: float, window: float | None
    ) -> Submission:
        signature = _required_header(headers, "Tally-Signature", "Tally")
        expected = _base64_hmac(_secret_bytes(secret, "Tally-Signature"), raw_body)
        if not _same(expected, signature):
            raise AuthenticationError("the signature does not match the body", field="Tally-Signature")
        document = parse_json_object(raw_body)
        created_at, field = document.get("createdAt"), "createdAt"
        if created_at is None and isinstance(document.get("data"), Mapping):
            created_at, field = document["data"].get("createdAt"), "data.createdAt"
        check_age(_iso_seconds(created_at, field), now, window or self.replay_window_seconds, field)
        return tally_submission(document)


TOOLS: dict[str, FormTool] = {
    "standard-webhooks": StandardWebhooks(),
    "typeform": Typeform(),
    "tally": Tally(),
}
