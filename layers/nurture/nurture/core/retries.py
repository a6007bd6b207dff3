"""Back-off for Nurture's outbound HTTP (the ad platforms, the CRM webhook):
exponential with full jitter, honouring the receiver's Retry-After, and never
waiting past what the invocation has left (nurture.core.deadline): a caller
that gives up raises, and its queue or schedule retries the work later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from nurture.core.deadline import Deadline


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0  # longest in-process wait; a longer Retry-After is handed to the caller

    def delay(
        self,
        attempt: int,
        retry_after: float | None,
        jitter: Callable[[], float],
        deadline: Deadline | None = None,
    ) -> float | None:
        """How long to wait after failed attempt `attempt` (from 1), or None to give
        up: out of attempts, asked to wait longer than we wait in-process, or
        the wait would leave `deadline` no time for another attempt (the
        caller's queue or schedule retries later)."""
        if attempt >= self.max_attempts or (retry_after is not None and retry_after > self.max_delay):
            return None
        if retry_after is not None:
            wait = retry_after
        else:
            wait = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * jitter()  # full jitter
        if deadline is not None and not deadline.allows_wait(wait):
            return None
        return wait


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None
