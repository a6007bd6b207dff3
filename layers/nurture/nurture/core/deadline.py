"""How long the running invocation has left, and the two things it bounds:
the lease of a claim (a delivery in progress) and outbound HTTP.

Lambda stops an invocation at its timeout whatever it is doing. So:

- A claim taken to deliver something once (`nurture.core.delivery`) holds a
  lease that lapses when the invocation that took it can no longer be running
  — its deadline, plus the moment Lambda takes to stop it — as the in-progress
  expiry of Powertools' idempotency does. A claim still "sending" after its
  lease was left by an invocation that died mid-way (timeout, crash, out of
  memory), and the retry of the same work may take it over.
- Outbound HTTP (the CRM webhook, the ad platforms) waits and retries only as
  long as the invocation has time left, less a margin to record the outcome,
  then raises a retryable error: the caller's queue, rule or schedule retries
  the work later rather than Lambda killing it half-way.

Every handler registers its invocation (`nurture.core.observability.metered`
does it from the Lambda context); code with no Lambda context (tests, the
tools) gets `DEFAULT_BOUND` seconds for each operation that asks.

Leases are wall-clock times (epoch seconds, `time.time()`), not the
application's clock: they bound a process's physical lifetime, and the
simulator's clock runs faster than processes do."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# The template's default function timeout (Globals.Function.Timeout): the bound
# of work that runs without a Lambda context.
DEFAULT_BOUND = 30.0
# Lambda stops a timed-out invocation a little after its deadline (well under
# a second is reported); the lease covers that too.
STOP_ALLOWANCE = 2.0
# Time kept back from outbound work for what follows it: marking a touch sent,
# releasing a claim, answering the queue.
SAFETY_MARGIN = 3.0
# A request is not started with less time than this left for it.
MINIMUM_REQUEST = 1.0


@dataclass(frozen=True)
class Lease:
    """A claim's hold on some work: taken at `at`, lapsing at `until`
    (wall-clock epoch seconds). `until` also identifies the holder: a claim is
    released only by the invocation whose lease it still carries."""

    at: float
    until: float


class Deadline:
    """The time left to the running invocation, counted down from
    `seconds_left()` (the Lambda context's remaining time)."""

    def __init__(
        self,
        seconds_left: Callable[[], float],
        *,
        wall_clock: Callable[[], float] = time.time,
        margin: float = SAFETY_MARGIN,
    ) -> None:
        self._seconds_left = seconds_left
        self._wall_clock = wall_clock
        self.margin = margin

    @classmethod
    def of(cls, context: Any, bound: float = DEFAULT_BOUND) -> Deadline:
        """The deadline of a Lambda invocation, from its context's remaining
        time; without one, `bound` seconds from now."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            return cls(lambda: remaining() / 1000)
        return cls.within(bound)

    @classmethod
    def within(cls, seconds: float, wall_clock: Callable[[], float] = time.time) -> Deadline:
        """`seconds` from now, counted on a monotonic clock."""
        ends = time.monotonic() + seconds
        return cls(lambda: ends - time.monotonic(), wall_clock=wall_clock)

    def remaining(self) -> float:
        """Seconds left before the invocation is stopped (0 when past it)."""
        return max(0.0, float(self._seconds_left()))

    def now(self) -> float:
        """The wall clock leases are written and compared in."""
        return self._wall_clock()

    def lease(self) -> Lease:
        """A lease from now to when this invocation can no longer be running.
        Never shorter than the stop allowance, even at the very deadline
        (where Lambda's remaining time reads 0 for a moment)."""
        now = self.now()
        # to the hundredth of a second: as the table stores it, so the holder's
        # own copy and the stored one compare equal
        return Lease(round(now, 2), round(now + self.remaining() + STOP_ALLOWANCE, 2))

    def request_timeout(self, preferred: float) -> float | None:
        """The timeout for one outbound request: `preferred`, cut to the time
        left less the margin; None when too little is left to start one."""
        left = self.remaining() - self.margin
        if left < MINIMUM_REQUEST:
            return None
        return min(preferred, left)

    def allows_wait(self, seconds: float) -> bool:
        """Whether waiting `seconds` still leaves time for another request."""
        return self.remaining() - self.margin - seconds >= MINIMUM_REQUEST


_current: ContextVar[Deadline | None] = ContextVar("nurture_deadline", default=None)


def current() -> Deadline:
    """The running invocation's deadline; outside an invocation (no deadline
    registered), `DEFAULT_BOUND` seconds from this call: each operation that
    asks is bounded on its own."""
    return _current.get() or Deadline.within(DEFAULT_BOUND)


@contextlib.contextmanager
def running(deadline: Deadline) -> Iterator[Deadline]:
    """Make `deadline` the current one for the work inside (one invocation)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
