"""EventBridge Scheduler expressions, evaluated for the local stack (moto
stores schedules but never fires them): `rate(...)`, `cron(...)` and `at(...)`
as the Scheduler documents them, in the schedule's time zone.

Supported: rate(N minute|minutes|hour|hours|day|days); cron with the six
fields minutes hours day-of-month month day-of-week year, each `*`, `?`, a
value, a name (JAN-DEC, SUN-SAT), a range `a-b`, a step `*/n` or `a-b/n`, or
a list of those; at(yyyy-mm-ddThh:mm:ss). The cron specials `L`, `W` and `#`
are refused with a clear error rather than misread. A small evaluator of
exactly what the Scheduler accepts, rather than a cron library: the common
Python ones speak Unix cron (five fields, Sunday = 0, no `?` or year), a
different dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_MONTHS = {name: n for n, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN"), start=1)} | {
    name: n for n, name in enumerate(("JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=7)
}
_DAYS = {name: n for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_SEARCH_YEARS = 5


class ScheduleExpressionError(ValueError):
    """An expression the Scheduler would refuse, or that this evaluator does not support."""


@dataclass(frozen=True)
class ScheduleExpression:
    text: str
    zone: ZoneInfo
    kind: str  # rate | cron | at
    every: timedelta | None = None
    at: datetime | None = None
    fields: tuple[frozenset[int] | None, ...] = ()  # minute, hour, dom, month, dow, year (None = any)

    @property
    def one_time(self) -> bool:
        return self.kind == "at"

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing strictly after `moment` (aware), or None if there is none."""
        if self.kind == "at":
            return self.at if self.at > moment else None
        if self.kind == "rate":
            return moment + self.every
        return self._next_cron(moment)

    def _next_cron(self, moment: datetime) -> datetime | None:
        minutes, hours, days, months, weekdays, years = self.fields
        local = moment.astimezone(self.zone)
        day = local.date()
        for _ in range(366 * _SEARCH_YEARS):
            if (
                (years is None or day.year in years)
                and (months is None or day.month in months)
                and (days is None or day.day in days)
                and (weekdays is None or (day.isoweekday() % 7) + 1 in weekdays)
            ):
                for hour in sorted(hours) if hours is not None else range(24):
                    for minute in sorted(minutes) if minutes is not None else range(60):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
                        if candidate > moment:
                            return candidate.astimezone(UTC)
            day += timedelta(days=1)
        return None


def parse(text: str, timezone: str | None = None) -> ScheduleExpression:
    zone = ZoneInfo(timezone or "UTC")
    expression = text.strip()
    if match := _RATE.match(expression):
        value, unit = int(match.group(1)), match.group(2).rstrip("s")
        if value < 1:
            raise ScheduleExpressionError(f"{text}: the rate must be at least 1")
        return ScheduleExpression(expression, zone, "rate", every=timedelta(seconds=value * _UNIT_SECONDS[unit]))
    if match := _AT.match(expression):
        moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)
        return ScheduleExpression(expression, zone, "at", at=moment.astimezone(UTC))
    if match := _CRON.match(expression):
        parts = match.group(1).split()
        if len(parts) != 6:
            raise ScheduleExpressionError(f"{text}: cron needs six fields (minutes hours day month weekday year)")
        if (parts[2] == "?") == (parts[4] == "?"):
            raise ScheduleExpressionError(f"{text}: exactly one of day-of-month and day-of-week must be '?'")
        bounds = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (1, 7, _DAYS), (1970, 2199, {}))
        fields = tuple(
            _field(part, low, high, names, text) for part, (low, high, names) in zip(parts, bounds, strict=True)
        )
        return ScheduleExpression(expression, zone, "cron", fields=fields)
    raise ScheduleExpressionError(f"{text}: expected rate(...), cron(...) or at(...)")


def _field(part: str, low: int, high: int, names: dict[str, int], text: str) -> frozenset[int] | None:
    if part in ("*", "?"):
        return None
    values: set[int] = set()
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, last = body.split("-", 1)
            start, end = _value(first, names, text), _value(last, names, text)
        else:
            start = _value(body, names, text)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ScheduleExpressionError(f"{text}: '{item}' is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(token: str, names: dict[str, int], text: str) -> int:
    token = token.upper()
    if token in names:
        return names[token]
    if not token.isdigit():
        raise ScheduleExpressionError(f"{text}: '{token}' is not a number or a name (L, W and # are not supported)")
    return int(token)
