"""`nurture serve --time-scale`: a lead made warm over HTTP receives its track's
emails on schedule in accelerated time; becoming hot stops them."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nurture.store.repository import from_item
from tests.e2e.conftest import WRITE_KEY, running_stack

pytestmark = pytest.mark.slow
SECONDS_PER_DAY = 0.5


@pytest.fixture(scope="module")
def fast_stack():
    with running_stack(time_scale=86400 / SECONDS_PER_DAY) as running:
        yield running


def _post(stack, path, body):
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    status, _ = stack.http("POST", path, json.dumps(body).encode(), headers)
    assert status == 200


def _touches(stack, email=None):
    items = [from_item(item) for item in stack.table_items() if item["sk"]["S"].startswith("TOUCH#")]
    return sorted((t for t in items if email is None or t.get("recipient") in (None, email)), key=lambda t: t["at"])


def _make_warm(stack, user, email):
    _post(
        stack,
        "/v1/identify",
        {
            "userId": user,
            "traits": {
                "email": email,
                "title": "VP Revenue Operations",
                "industry": "Fintech",
                "employees": 1200,
                "country": "US",
                "timezone": "America/Chicago",
            },
        },
    )
    _post(stack, "/v1/track", {"userId": user, "event": "ROI Calculator Completed"})
    _post(
        stack,
        "/v1/track",
        {"userId": user, "event": "Webinar Attended", "properties": {"webinar_id": "pipeline-hygiene"}},
    )


def _enrollment(stack, user):
    from nurture.ingest.consumer import lead_id_for

    lead_id = lead_id_for(f"user#{user}")
    items = [from_item(item) for item in stack.table_items() if item["pk"]["S"] == f"LEAD#{lead_id}"]
    return next((item for item in items if item["sk"].startswith("ENR#")), None)


def _outside_holdout(prefix):
    from nurture.ingest.consumer import lead_id_for
    from nurture.timelines.decisions import bucket

    return next(
        f"{prefix}{n}"
        for n in range(200)
        if bucket("holdout", "mql-revenue-teams", lead_id_for(f"user#{prefix}{n}")) >= 0.1
    )


def test_a_warm_lead_gets_its_emails_on_schedule(fast_stack):
    # Given a lead made warm over HTTP
    user = _outside_holdout("sam")
    _make_warm(fast_stack, user, f"{user}@initech-bank.com")

    # When simulated days pass (half a second each)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len([t for t in _touches(fast_stack) if t["channel"] == "email"]) < 3:
        time.sleep(0.2)

    # Then the track's emails went out, a piece each, on the track's days, in Chicago business hours
    emails = [t for t in _touches(fast_stack) if t["channel"] == "email" and t["recipient"].startswith(user)]
    assert [t["step_id"] for t in emails] == ["guide", "proof", "next-step"]
    assert len({t["content_id"] for t in emails}) == 3
    started = _enrollment(fast_stack, user)["started_at"]
    days = [(t["at"] - started) / 86400 for t in emails]
    assert days[1] - days[0] >= 1 + 4 - 1  # retargeting after 1 day, then the proof email 4 days later
    for touch in emails:
        local = datetime.fromtimestamp(touch["at"], ZoneInfo("America/Chicago"))
        assert local.weekday() < 5 and 8 <= local.hour < 19


def test_becoming_hot_stops_the_emails(fast_stack):
    # Given a warm lead whose first email has gone out
    user = _outside_holdout("hank")
    email = f"{user}@umbrella-fin.com"
    _make_warm(fast_stack, user, email)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not [t for t in _touches(fast_stack) if t.get("recipient") == email]:
        time.sleep(0.1)

    # When the lead starts a trial and becomes hot
    _post(fast_stack, "/v1/track", {"userId": user, "event": "Trial Started"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_enrollment(fast_stack, user) or {}).get("status") == "active":
        time.sleep(0.1)

    # Then its timeline has exited, and simulated weeks later no more email went to
    # it (the sales hand-off's own records, such as its SLA escalation, are not email)
    assert _enrollment(fast_stack, user)["status"] == "exited"

    def emails():
        return [t for t in _touches(fast_stack) if t.get("recipient") == email and t["channel"] == "email"]

    sent = len(emails())
    time.sleep(14 * SECONDS_PER_DAY)
    assert len(emails()) == sent
