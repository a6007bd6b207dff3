"""Delivering to sales: a signed CRM webhook (optional) and the sales SNS topic.

The webhook body is generic JSON, `{"type", "id", "occurred_at", "data"}`,
signed like the form webhooks Nurture accepts: `X-Nurture-Timestamp` (Unix
seconds) and `X-Nurture-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<raw body>">` with the signing secret. The URL and signing
secret live in one Secrets Manager secret (`{"url": ..., "signing_secret": ...}`);
while it is empty (`{}`) deliveries go to SNS only.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from nurture.core.deadline import current as current_deadline
from nurture.core.errors import NurtureError
from nurture.core.ports import AlertChannel, SecretDocument
from nurture.core.retries import RetryPolicy, retry_after_seconds

logger = logging.getLogger(__name__)

# (url, headers, body, timeout in seconds) -> (HTTP status, response headers)
Send = Callable[[str, Mapping[str, str], bytes, float], tuple[int, Mapping[str, str]]]


class CrmDeliveryError(NurtureError):
    """The CRM refused a delivery, or kept failing after every retry. The
    caller leaves the message to its queue (retry, then dead-letter queue)."""

    code = "CrmDeliveryFailed"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = status


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of '<timestamp>.<body>', as form webhooks are signed."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _urllib_send() -> Send:
    opener = urllib.request.build_opener()

    def send(url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, Mapping[str, str]]:
        request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
        try:
            with opener.open(request, timeout=timeout) as reply:
                return reply.status, {k.lower(): v for k, v in reply.headers.items()}
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()}

    return send


CRM_RETRY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0)


class CrmWebhook:
    """POSTs signed JSON to the CRM. Retries 429 and 5xx (and network errors)
    with full-jitter exponential back-off, honouring a short Retry-After;
    raises CrmDeliveryError when refused, out of attempts, or out of time:
    requests and waits stop short of the invocation's deadline
    (nurture.core.deadline), so the caller's retry has the delivery rather than
    Lambda killing it mid-way. At least once: every delivery carries a stable
    `id` (and Idempotency-Key) for the CRM to dedupe on."""

    def __init__(
        self,
        secret: SecretDocument,
        send: Send | None = None,
        *,
        retry: RetryPolicy = CRM_RETRY,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._send = send or _urllib_send()
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._jitter = jitter
        # The signature is checked against the receiver's real clock, so it is
        # stamped with wall-clock time, not the (possibly simulated) app clock.
        self._wall_clock = wall_clock

    def configured(self) -> bool:
        document = self._secret.document()
        return bool(document.get("url")) and bool(document.get("signing_secret"))

    def deliver(self, kind: str, delivery_id: str, data: Mapping[str, Any], occurred_at: float) -> int:
        """POST one delivery; returns the CRM's 2xx status."""
        document = self._secret.document()
        url, secret = str(document["url"]), str(document["signing_secret"])
        body = json.dumps(
            {
                "type": kind,
                "id": delivery_id,
                "occurred_at": datetime.fromtimestamp(occurred_at, UTC).isoformat(),
                "data": data,
            },
            separators=(",", ":"),
            default=str,
        ).encode()
        deadline = current_deadline()
        attempt, status = 0, None
        while True:
            timeout = deadline.request_timeout(self._timeout)
            if timeout is None:
                raise CrmDeliveryError(
                    f"no time left in this invocation for the {kind} ({attempt} attempts made)", status
                )
            attempt += 1
            timestamp = str(int(self._wall_clock()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "nurture-crm-webhook",
                "X-Nurture-Event": kind,
                "X-Nurture-Timestamp": timestamp,
                "X-Nurture-Signature": "sha256=" + sign(secret, timestamp, body),
                "Idempotency-Key": delivery_id,
            }
            retry_after: float | None = None
            try:
                status, reply_headers = self._send(url, headers, body, timeout)
            except (OSError, http.client.HTTPException) as exc:
                problem, status = f"request failed: {exc}", None
            else:
                if 200 <= status < 300:
                    return status
                if status != 429 and status < 500:
                    raise CrmDeliveryError(f"the CRM refused the {kind} with HTTP {status}", status)
                problem = f"the CRM answered HTTP {status}"
                retry_after = retry_after_seconds(reply_headers.get("retry-after"), self._wall_clock())
            delay = self._retry.delay(attempt, retry_after, self._jitter, deadline)
            if delay is None:
                raise CrmDeliveryError(f"{problem} ({attempt} attempts)", status)
            self._sleep(delay)


class SalesChannel:
    """What sales is told (hand-offs, escalations, call tasks): the CRM webhook
    first when configured, then the SNS topic. The CRM goes first so a
    failure there stops before SNS and the whole delivery is retried (the CRM
    dedupes the repeat on its id)."""

    def __init__(self, sns: AlertChannel, crm: CrmWebhook | None, clock: Callable[[], float]) -> None:
        self._sns = sns
        self._crm = crm
        self._clock = clock

    def alert(self, subject: str, payload: Mapping[str, Any]) -> str:
        if self._crm is not None and self._crm.configured():
            kind = str(payload.get("type") or "sales_alert")
            delivery_id = str(payload.get("delivery_id") or payload.get("task_id") or payload.get("lead_id"))
            self._crm.deliver(kind, delivery_id, payload, self._clock())
        return self._sns.alert(subject, payload)
