"""Outbound HTTP within the invocation's time: the CRM webhook and the ad
platforms cut each request's timeout and stop retrying before the Lambda
context's remaining time runs out (less a margin), raising an error the
caller's queue retries — never killed half-way by Lambda's timeout."""

from __future__ import annotations

import pytest

from nurture.channels.ad_platforms import AdPlatformError, MetaCustomAudiences
from nurture.config.audiences import MetaDestination
from nurture.core.deadline import SAFETY_MARGIN, Deadline, running
from nurture.core.domain import HashedIdentity
from nurture.sales.crm import CrmDeliveryError, CrmWebhook
from tests.fakes import InMemoryCredentials
from tests.unit.builders import T0

AUDIENCE_FUNCTION_TIMEOUT = 120.0  # template.yaml: AudienceSyncFunction, SalesTaskFunction, HandoffFunction
CRM = {"url": "https://crm.example.com/hooks/nurture", "signing_secret": "s"}


class InvocationTime:
    """An invocation's time, simulated: waits and requests that time out move it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.elapsed = 0.0
        self.timeouts: list[float] = []

    def deadline(self) -> Deadline:
        return Deadline(lambda: self.seconds - self.elapsed)

    def sleep(self, seconds: float) -> None:
        self.elapsed += seconds

    def hang(self, timeout: float) -> None:
        """A request that got no answer: it takes its whole timeout, then fails."""
        self.timeouts.append(timeout)
        self.elapsed += timeout
        raise TimeoutError("timed out")


class HangingOpener:
    def __init__(self, time: InvocationTime) -> None:
        self.time = time

    def open(self, request, timeout):
        self.time.hang(timeout)


class Secret:
    def document(self) -> dict:
        return dict(CRM)


def _meta(time: InvocationTime) -> MetaCustomAudiences:
    return MetaCustomAudiences(
        MetaDestination("120210000000000001", "meta-ads"),
        InMemoryCredentials({"meta-ads": {"access_token": "t"}}),
        sleep=time.sleep,
        jitter=lambda: 1.0,  # the longest back-off full jitter can draw
        opener=HangingOpener(time),  # type: ignore[arg-type]
    )


def _someone() -> HashedIdentity:
    return HashedIdentity(email="a" * 64)


def test_without_a_deadline_the_platform_retries_would_outlast_the_audience_function():
    # Given a platform that never answers, and all the time in the world
    time = InvocationTime(seconds=3600)

    # When a member is added
    with running(time.deadline()), pytest.raises(AdPlatformError):
        _meta(time).add([_someone()])

    # Then five 30 s requests and four back-offs took longer than the audience function may run
    assert len(time.timeouts) == 5
    assert time.elapsed > AUDIENCE_FUNCTION_TIMEOUT


def test_ad_platform_retries_stop_before_the_invocation_times_out():
    # Given a platform that never answers, in an invocation of the audience function
    time = InvocationTime(seconds=AUDIENCE_FUNCTION_TIMEOUT)

    # When a member is added
    with running(time.deadline()), pytest.raises(AdPlatformError) as raised:
        _meta(time).add([_someone()])

    # Then it gave up in time, with a margin left, as an error the queue retries
    assert time.elapsed <= AUDIENCE_FUNCTION_TIMEOUT - SAFETY_MARGIN
    assert raised.value.retryable is True


def test_a_request_timeout_is_cut_to_the_time_left():
    # Given 10 s left in the invocation
    time = InvocationTime(seconds=10)

    # When a member is added to a platform that never answers
    with running(time.deadline()), pytest.raises(AdPlatformError) as raised:
        _meta(time).add([_someone()])

    # Then the only request waited what was left less the margin, not its 30 s
    assert time.timeouts == [10 - SAFETY_MARGIN]
    assert raised.value.retryable is True


def test_a_crm_that_never_answers_is_given_up_before_the_invocation_times_out():
    # Given a CRM that never answers, and 25 s left in the invocation
    time = InvocationTime(seconds=25)

    def send(url, headers, body, timeout):
        time.hang(timeout)

    webhook = CrmWebhook(Secret(), send, sleep=time.sleep, jitter=lambda: 1.0)

    # When a hand-off is delivered
    with running(time.deadline()), pytest.raises(CrmDeliveryError):
        webhook.deliver("handoff", "h-1", {}, T0)

    # Then every request fitted in the time left, and the delivery stopped with the margin to spare
    assert time.timeouts[0] == 10.0
    assert time.elapsed <= 25 - SAFETY_MARGIN


def test_a_crm_asking_to_wait_past_the_deadline_is_left_to_the_retry():
    # Given a CRM answering 503 with Retry-After: 6, and 8 s left in the invocation
    time = InvocationTime(seconds=8)
    requests = []

    def send(url, headers, body, timeout):
        requests.append(timeout)
        return 503, {"retry-after": "6"}

    webhook = CrmWebhook(Secret(), send, sleep=time.sleep)

    # When a call task is delivered
    with running(time.deadline()), pytest.raises(CrmDeliveryError):
        webhook.deliver("call_task", "t-1", {}, T0)

    # Then it did not wait: waiting would have left no time for the request after it
    assert len(requests) == 1 and time.elapsed == 0
