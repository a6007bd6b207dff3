"""Builders and fakes for the nurture timeline's unit tests: lead-local
timestamps, leads that fit the shipped tracks, steps and policies with
defaults, and in-memory fakes of the Step Functions and SES ports."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from nurture.channels.email import CompanyInfo
from nurture.config.loader import Config
from nurture.config.tracks import ContactPolicy, Step, Track, Variant
from nurture.core.domain import Enrollment, Lead, Touch
from nurture.timelines.decisions import enrollment_id

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
UTC_ZONE = ZoneInfo("UTC")
DAY = 86400.0

# A week in June 2025, clear of any DST change: New York is UTC-4, Tokyo UTC+9.
# Mon 2 June ... Fri 6 June, Sat 7, Sun 8, Mon 9 June.
MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY, NEXT_MONDAY = 2, 3, 4, 5, 6, 7, 8, 9

COMPANY = CompanyInfo(
    name="Acme Revenue Cloud",
    postal_address="Acme, Inc.\n548 Market St #12345\nSan Francisco, CA 94104, USA",
    sender="Acme Revenue Cloud <hello@example.com>",
    base_url="https://api.example.com",
)


def june(day: int, hour: int = 10, minute: int = 0, zone: ZoneInfo = NEW_YORK) -> float:
    """The timestamp of `day` June 2025 at hour:minute wall-clock time in `zone`."""
    return datetime(2025, 6, day, hour, minute, tzinfo=zone).timestamp()


def local(timestamp: float, zone: ZoneInfo = NEW_YORK) -> datetime:
    """`timestamp` as a wall-clock time in `zone` (for readable assertions)."""
    return datetime.fromtimestamp(timestamp, zone)


def a_lead(lead_id: str = "lead-ana", **overrides: Any) -> Lead:
    """A subscribed, warm RevOps lead with an A fit, exploring solutions:
    the audience of the shipped `mql-revenue-teams` track."""
    profile = {"first_name": "Ana", "persona": "revops", "industry": "Software", "country": "US"}
    profile.update(overrides.pop("profile", {}))
    fields: dict[str, Any] = {
        "email": f"{lead_id}@globex.com",
        "fit_grade": "A",
        "lifecycle": "warm",
        "buying_stage": "solution_exploration",
        "profile": profile,
    }
    fields.update(overrides)
    return Lead(lead_id=lead_id, **fields)


def a_step(step_id: str = "guide", **overrides: Any) -> Step:
    """An email step due immediately, with no time of day and no experiment."""
    fields: dict[str, Any] = {
        "id": step_id,
        "channel": "email",
        "after_days": 0.0,
        "at": None,
        "business_days": True,
        "content": (),
        "subject": None,
        "audience": None,
        "reason": None,
        "experiment_id": None,
        "variants": (),
    }
    fields.update(overrides)
    return Step(**fields)


def an_experiment(experiment_id: str = "subject-test", **weights: float) -> dict[str, Any]:
    """Step fields for an experiment whose variants (id -> weight) have no subject."""
    return {
        "experiment_id": experiment_id,
        "variants": tuple(Variant(variant_id, None, weight) for variant_id, weight in weights.items()),
    }


def a_policy(**overrides: Any) -> ContactPolicy:
    """The shipped contact policy: New York, 2 marketing emails per 7 days, quiet 19:00-08:00, weekdays."""
    fields: dict[str, Any] = {
        "timezone": "America/New_York",
        "max_marketing_emails": 2,
        "per_days": 7.0,
        "quiet_from": (19, 0),
        "quiet_to": (8, 0),
        "business_days_only": True,
    }
    fields.update(overrides)
    return ContactPolicy(**fields)


def a_track(track_id: str = "test-track", **overrides: Any) -> Track:
    """A warm-lead track with one email step, everyone in its audience."""
    fields: dict[str, Any] = {
        "id": track_id,
        "name": "Test track",
        "priority": 0,
        "triggers": ("lead.became_warm",),
        "audience": (),
        "holdout": 0.0,
        "reentry_after_days": None,
        "reentry_max_times": 1,
        "exit_lifecycle": frozenset({"hot", "customer"}),
        "exit_events": frozenset({"Demo Requested"}),
        "on_exhausted": "skip",
        "steps": (a_step(),),
    }
    fields.update(overrides)
    return Track(**fields)


def shipped_track(config: Config, track_id: str) -> Track:
    return next(track for track in config.tracks if track.id == track_id)


def with_tracks(config: Config, *tracks: Track) -> Config:
    """`config` whose tracks are exactly `tracks` (highest priority first, as load_config sorts them)."""
    return replace(config, tracks=tuple(sorted(tracks, key=lambda t: -t.priority)))


def an_enrollment(
    track: Track, lead: Lead, *, started_at: float, due_at: float | None = None, seq: int = 1, **overrides: Any
) -> Enrollment:
    """An active enrollment of `lead` in `track`, its first step due at `due_at` (default: when it started)."""
    return Enrollment(
        enrollment_id=enrollment_id(lead.lead_id, track.id, seq),
        lead_id=lead.lead_id,
        track_id=track.id,
        seq=seq,
        started_at=started_at,
        due_at=started_at if due_at is None else due_at,
        **overrides,
    )


def an_email_touch(
    at: float,
    content_id: str | None = None,
    *,
    lead_id: str = "lead-ana",
    enrollment: str = "other-track-lead-ana-1",
    step_id: str | None = None,
    **overrides: Any,
) -> Touch:
    """A marketing email already sent to the lead at `at`."""
    return Touch(
        lead_id, enrollment, "other-track", step_id or f"step-{at:.0f}", "email", at, content_id=content_id, **overrides
    )


def lead_id_where(predicate: Callable[[str], bool], prefix: str = "lead-") -> str:
    """The first of lead-0, lead-1, ... for which `predicate` holds (bucketing is a stable hash)."""
    return next(lead_id for lead_id in (f"{prefix}{n}" for n in itertools.count()) if predicate(lead_id))


# --- fakes of the ports -------------------------------------------------------------


class FakeExecutions:
    """Step Functions executions of the timeline: one per name, as the service guarantees."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.stopped: dict[str, str] = {}
        self.attempts = 0

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        self.attempts += 1
        if name in self.started:
            return False
        self.started[name] = payload
        return True

    def stop(self, name: str, cause: str) -> None:
        self.stopped[name] = cause


class RecordingSender:
    """SES: records every message it accepts; `fail_with` makes the next call raise it instead."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_with = fail_with

    def send(self, raw: bytes, recipient: str, tags: dict[str, str]) -> str:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        self.sent.append({"raw": raw, "recipient": recipient, "tags": dict(tags)})
        return f"ses-message-{len(self.sent)}"


class UnsubscribeKey:
    """The unsubscribe-signing secret."""

    def keys(self) -> dict[str, str]:
        return {"value": "k"}
