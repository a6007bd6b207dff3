"""Builders for the sales tests: a hot lead made through the real track use
case, sales outcomes as the API queues them, and fakes of the sales ports."""

from __future__ import annotations

import json
from typing import Any

from nurture.sales.outcomes import outcome_event
from tests.fakes import Stopped
from tests.unit.builders import ICP_TRAITS, T0, identify, page, track, tracking_events

HOUR = 3600.0
HOT_AT = T0 + HOUR


def make_hot(tracker, email: str = "ana@globex.com", user_id: str = "u-ana", at: float = T0) -> str:
    """An ideal-customer lead who reads a case study and pricing, then completes
    the ROI calculator and a webinar: hot within the hour. Returns its id."""
    tracker.process(
        [
            (
                f"rec-{user_id}-1",
                tracking_events(
                    identify(email, user_id=user_id, message_id=f"{user_id}-identify", at=at, **ICP_TRAITS),
                    page("/pricing", user_id=user_id, message_id=f"{user_id}-pricing", at=at),
                    page("/customers/fintech", user_id=user_id, message_id=f"{user_id}-case-study", at=at),
                    received_at=at,
                ),
            ),
            (
                f"rec-{user_id}-2",
                tracking_events(
                    track("ROI Calculator Completed", user_id=user_id, message_id=f"{user_id}-roi", at=at + HOUR),
                    track("Webinar Attended", user_id=user_id, message_id=f"{user_id}-webinar", at=at + HOUR),
                    track("Webinar Registered", user_id=user_id, message_id=f"{user_id}-reg", at=at + HOUR),
                    received_at=at + HOUR,
                ),
            ),
        ],
        now=at + HOUR,
    )
    key = f"email#{email}"
    return tracker.store.lookup_identities([key])[key]


def outcome(lead_id: str, config, at: float, **body: Any):
    """A sales outcome as POST /v1/leads/{lead}/outcome queues it."""
    body.setdefault("outcome_id", f"crm-{body['outcome']}-{int(at)}")
    return outcome_event(lead_id, body, config, at)


def apply(tracker, *events, at: float) -> None:
    tracker.process([(f"rec-outcome-{int(at)}", list(events))], now=at)


class RecordingChannel:
    """The sales channel: what sales was told; `fail_next` makes deliveries
    raise; `stop_next` stops the invocation during that many deliveries,
    before they reach sales (Lambda's timeout: no clean-up runs)."""

    def __init__(self, fail_next: int = 0, stop_next: int = 0) -> None:
        self.alerts: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = fail_next
        self.stop_next = stop_next

    def alert(self, subject: str, payload: Any) -> str:
        if self.stop_next:
            self.stop_next -= 1
            raise Stopped("the invocation timed out waiting for the CRM")
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("CRM unavailable")
        self.alerts.append((subject, json.loads(json.dumps(payload, default=str))))
        return f"msg-{len(self.alerts)}"


class FakeTimers:
    """One-time timers by name: setting an existing name is refused, as Scheduler does."""

    def __init__(self) -> None:
        self.timers: dict[str, tuple[float, dict[str, Any]]] = {}

    def set(self, name: str, at: float, payload: Any) -> bool:
        if name in self.timers:
            return False
        self.timers[name] = (at, json.loads(json.dumps(payload)))
        return True

    def named(self, prefix: str) -> list[tuple[float, dict[str, Any]]]:
        return [timer for name, timer in self.timers.items() if name.startswith(prefix)]
