"""The CRM webhook: signed like form webhooks, retried on 429/5xx, never
silently dropped; the sales channel tries the CRM first, then SNS."""

from __future__ import annotations

import json

import pytest

from nurture.ingest.api import sign_form
from nurture.sales.crm import CrmDeliveryError, CrmWebhook, SalesChannel
from tests.unit.builders import T0

SECRET = {"url": "https://crm.example.com/hooks/nurture", "signing_secret": "crm-signing-secret"}


class Secret:
    def __init__(self, document: dict) -> None:
        self._document = document

    def document(self) -> dict:
        return dict(self._document)


class FakeCrm:
    """The CRM's endpoint: answers the statuses queued, records each request."""

    def __init__(self, *statuses: int, retry_after: str | None = None) -> None:
        self.statuses = list(statuses)
        self.retry_after = retry_after
        self.requests: list[tuple[str, dict, bytes]] = []
        self.timeouts: list[float] = []

    def __call__(self, url, headers, body, timeout):
        self.requests.append((url, dict(headers), body))
        self.timeouts.append(timeout)
        status = self.statuses.pop(0) if self.statuses else 200
        return status, ({"retry-after": self.retry_after} if self.retry_after else {})


class RecordingSns:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    def alert(self, subject, payload) -> str:
        self.messages.append((subject, dict(payload)))
        return "sns-1"


def webhook(crm: FakeCrm, sleeps: list[float] | None = None, document: dict = SECRET) -> CrmWebhook:
    return CrmWebhook(
        Secret(document), crm, sleep=(sleeps if sleeps is not None else []).append, wall_clock=lambda: 1_700_000_000
    )


def test_a_delivery_is_signed_as_form_webhooks_are(config):
    # Given the CRM's endpoint
    crm = FakeCrm(200)

    # When a hand-off is delivered
    webhook(crm).deliver("handoff", "handoff-1", {"lead_id": "p1", "fit_grade": "A"}, T0)

    # Then the receiver can verify the signature over "<timestamp>.<body>" with the shared secret
    ((url, headers, body),) = crm.requests
    assert url == SECRET["url"]
    expected = sign_form("crm-signing-secret", headers["X-Nurture-Timestamp"], body)
    assert headers["X-Nurture-Signature"] == f"sha256={expected}"
    assert headers["X-Nurture-Timestamp"] == "1700000000"
    document = json.loads(body)
    assert (document["type"], document["id"], document["data"]["fit_grade"]) == ("handoff", "handoff-1", "A")
    assert headers["Idempotency-Key"] == "handoff-1"


def test_throttling_and_server_errors_are_retried_with_back_off():
    # Given a CRM that throttles, then fails, then accepts
    crm, sleeps = FakeCrm(429, 503, 202), []

    # When a delivery is made
    status = webhook(crm, sleeps).deliver("call_task", "t-1", {}, T0)

    # Then it was tried three times, waiting between tries, and succeeded
    assert status == 202
    assert len(crm.requests) == 3
    assert len(sleeps) == 2 and all(0 <= wait <= 8 for wait in sleeps)


def test_a_short_retry_after_is_honoured():
    crm, sleeps = FakeCrm(429, 200, retry_after="2"), []

    webhook(crm, sleeps).deliver("handoff", "h-1", {}, T0)

    assert sleeps == [2.0]


def test_a_refusal_is_not_retried_and_raises():
    # Given a CRM that refuses the request
    crm = FakeCrm(400)

    # When a delivery is made, then it raises at once (the queue keeps the message)
    with pytest.raises(CrmDeliveryError) as raised:
        webhook(crm).deliver("handoff", "h-1", {}, T0)

    assert raised.value.http_status == 400
    assert len(crm.requests) == 1


def test_a_crm_that_keeps_failing_raises_after_the_last_attempt():
    crm = FakeCrm(500, 500, 500, 500, 500)

    with pytest.raises(CrmDeliveryError):
        webhook(crm).deliver("handoff", "h-1", {}, T0)

    assert len(crm.requests) == 4


def test_network_errors_are_retried():
    calls = []

    def flaky(url, headers, body, timeout):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("reset by peer")
        return 200, {}

    assert CrmWebhook(Secret(SECRET), flaky, sleep=lambda _: None).deliver("handoff", "h-1", {}, T0) == 200
    assert len(calls) == 2


def test_without_a_configured_crm_sales_hears_through_sns_only():
    # Given an empty CRM secret
    crm, sns = FakeCrm(), RecordingSns()
    channel = SalesChannel(sns, webhook(crm, document={}), lambda: T0)

    # When a call task is delivered
    channel.alert("Call ana", {"type": "call_task", "task_id": "t-1"})

    # Then SNS has it and no webhook was attempted
    assert [subject for subject, _ in sns.messages] == ["Call ana"]
    assert crm.requests == []


def test_with_a_crm_both_hear_it_crm_first():
    crm, sns = FakeCrm(), RecordingSns()
    channel = SalesChannel(sns, webhook(crm), lambda: T0)

    channel.alert("Call ana", {"type": "call_task", "task_id": "t-1"})

    assert json.loads(crm.requests[0][2])["id"] == "t-1"
    assert len(sns.messages) == 1


def test_a_crm_failure_stops_before_sns_so_the_retry_is_whole():
    crm, sns = FakeCrm(400), RecordingSns()
    channel = SalesChannel(sns, webhook(crm), lambda: T0)

    with pytest.raises(CrmDeliveryError):
        channel.alert("Call ana", {"type": "call_task", "task_id": "t-1"})

    assert sns.messages == []


def test_a_retry_after_in_other_digits_is_not_a_delay():
    from nurture.core.retries import retry_after_seconds

    # Given Retry-After headers of digits that are not ASCII ones, then none is read as seconds
    assert [retry_after_seconds(value, 0.0) for value in ("²", "٣٠")] == [None, None]
