"""`nurture serve --time-scale` fires the schedules: the template's daily sweep
wakes a lost lead into the reactivation track after the configured delay, and
one-time schedules created through the Scheduler API fire once, then go."""

from __future__ import annotations

import base64
import calendar
import json
import shutil
import time

import pytest

from nurture.core.clock import get_clock
from nurture.ingest.consumer import lead_id_for
from nurture.store.repository import from_item
from tests.conftest import CONFIG_DIR
from tests.e2e.conftest import ADMIN_KEY, WRITE_KEY, running_stack

pytestmark = pytest.mark.slow
SECONDS_PER_DAY = 0.5
LOST_AFTER_DAYS = 4


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory):
    config_dir = tmp_path_factory.mktemp("sweeps") / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    sales = (config_dir / "sales.yaml").read_text()
    assert "reactivate_after_days: 180" in sales
    (config_dir / "sales.yaml").write_text(
        sales.replace("reactivate_after_days: 180", f"reactivate_after_days: {LOST_AFTER_DAYS}")
    )
    with running_stack(time_scale=86400 / SECONDS_PER_DAY, config_dir=config_dir) as running:
        yield running


def _identify(stack, user, email):
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    body = {"userId": user, "traits": {"email": email, "title": "VP Sales", "industry": "Software", "country": "US"}}
    status, _ = stack.http("POST", "/v1/identify", json.dumps(body).encode(), headers)
    assert status == 200
    stack.wait_until_ingested()


def _mark_lost(stack, email):
    """Sales reports the opportunity lost through the outcome API; returns when it was applied."""
    body = {"outcome_id": "sf-lost-1", "outcome": "lost", "reason": "price", "rep": "sam@example.com"}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
    status, answer = stack.http("POST", f"/v1/leads/{email}/outcome", json.dumps(body).encode(), headers)
    assert status == 202, answer
    stack.wait_until_ingested()


def _items(stack, lead_id, prefix):
    return [
        from_item(item)
        for item in stack.table_items()
        if item["pk"]["S"] == f"LEAD#{lead_id}" and item["sk"]["S"].startswith(prefix)
    ]


def test_a_lost_lead_is_re_engaged_by_the_reactivation_track_after_the_configured_delay(fast_stack):
    # Given a lead that sales marked lost through the outcome API
    _identify(fast_stack, "lou", "lou@initech.com")
    lead_id = lead_id_for("user#lou")
    _mark_lost(fast_stack, "lou@initech.com")
    (profile,) = _items(fast_stack, lead_id, "PROFILE")
    assert profile["lc"] == "lost"
    lost_at = profile["lost_at"]

    # When simulated days pass, with the template's daily sweep firing
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [
        t for t in _items(fast_stack, lead_id, "TOUCH#") if t["channel"] == "email"
    ]:
        time.sleep(0.2)

    # Then the daily sweep woke it on the first run after the configured delay (a
    # simulated day is half a second: allow a slow machine a day or two more), the
    # reactivation track enrolled it, and emailed it
    (profile,) = _items(fast_stack, lead_id, "PROFILE")
    assert LOST_AFTER_DAYS <= (profile["wkat"] - lost_at) / 86400 <= LOST_AFTER_DAYS + 3
    (enrollment,) = _items(fast_stack, lead_id, "ENR#")
    assert enrollment["track_id"] == "reactivation"
    assert enrollment["trigger"] == "lead.dormant"
    assert enrollment["started_at"] >= profile["wkat"]
    (touch,) = [t for t in _items(fast_stack, lead_id, "TOUCH#") if t["channel"] == "email"]
    assert touch["step_id"] == "whats-new"
    assert touch["recipient"] == "lou@initech.com"


def test_a_one_time_schedule_created_at_run_time_fires_once_and_is_deleted(fast_stack):
    # Given a queue and a one-time schedule two simulated days ahead that targets it
    sqs, scheduler = fast_stack.client("sqs"), fast_stack.client("scheduler")
    url = sqs.create_queue(QueueName="sla-timers")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    when = time.gmtime(get_clock().timestamp() + 2 * 86400)
    scheduler.create_schedule(
        Name="handoff-sla-lou",
        ScheduleExpression=time.strftime("at(%Y-%m-%dT%H:%M:%S)", when),
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": "arn:aws:iam::123456789012:role/scheduler", "Input": '{"lead_id": "lou"}'},
        ActionAfterCompletion="DELETE",
    )

    # When its moment passes, and three simulated days more
    messages, deadline = [], time.monotonic() + 20
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    fired_at = get_clock().timestamp()
    time.sleep(3 * SECONDS_PER_DAY)
    messages += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])

    # Then its input arrived once, not before its moment, and the schedule is gone
    assert [json.loads(m["Body"]) for m in messages] == [{"lead_id": "lou"}]
    assert fired_at >= calendar.timegm(when)
    assert scheduler.list_schedules()["Schedules"] == []


def test_a_hand_off_sales_leaves_unanswered_escalates_when_its_sla_timer_fires(fast_stack):
    # Given a lead made hot over HTTP (handed to sales, with an SLA timer on the Scheduler)
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    traits = {"email": "hal@initech-bank.com", "title": "VP Revenue Operations", "industry": "Fintech"}
    for path, body in (
        ("/v1/identify", {"userId": "hal", "traits": {**traits, "employees": 1200, "country": "US"}}),
        ("/v1/track", {"userId": "hal", "event": "ROI Calculator Completed"}),
        ("/v1/track", {"userId": "hal", "event": "Webinar Attended", "properties": {"webinar_id": "pipeline-hygiene"}}),
        ("/v1/track", {"userId": "hal", "event": "Trial Started"}),
    ):
        assert fast_stack.http("POST", path, json.dumps(body).encode(), headers)[0] == 200
    lead_id = lead_id_for("user#hal")

    # When sales does not answer for longer than the SLA (hours: a fraction of a second here)
    escalated, deadline = [], time.monotonic() + 20
    while not escalated and time.monotonic() < deadline:
        escalated = [
            e
            for e in fast_stack.bus_events()
            if e["detail-type"] == "lead.handoff_escalated" and e["detail"]["lead_id"] == lead_id
        ]
        time.sleep(0.2)

    # Then the one-time schedule fired: the hand-off was escalated, once, and the schedule is gone
    assert len(escalated) == 1
    assert not [s for s in fast_stack.client("scheduler").list_schedules()["Schedules"] if lead_id in s["Name"]]
