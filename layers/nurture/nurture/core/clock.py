"""Injectable clocks. Logic never calls datetime.now(): the local stack and the
simulator run weeks in seconds through the same code."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        raise NotImplementedError


class SystemClock(Clock):
    def timestamp(self) -> float:
        return time.time()


class FixedClock(Clock):
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: datetime | float) -> None:
        self._t = start.timestamp() if isinstance(start, datetime) else float(start)
        self._lock = threading.Lock()

    def timestamp(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds

    def set(self, when: datetime) -> None:
        self._t = when.timestamp()


class ScaledClock(Clock):
    """Simulated time running `scale` times faster than the wall clock from `start`."""

    def __init__(self, scale: float, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._wall0 = time.time()
        self._sim0 = self._wall0 if start is None else start

    def timestamp(self) -> float:
        return self._sim0 + (time.time() - self._wall0) * self.scale


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> None:
    """Swap the process clock (local stack, simulator, tests)."""
    global _clock
    _clock = clock
