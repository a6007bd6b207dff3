"""The timeline's task under injected faults: every AWS call the Advance
function makes over two enrolled warm leads' tracks — deciding, sending the
email, queueing the hand-off — fails in turn (before it reaches the service,
and after it succeeded), and Step Functions retries the failed task with the
same input and the next `$$.State.RetryCount`, as the ASL's `Retry` does — on
the wall clock the claims' leases are taken on. The end state must be the
clean run's: each touch delivered once (SES's outbox), nothing mailed to the
lead who unsubscribed mid-track, every enrollment where the clean run left it,
no claim left "sending", each send logged once for the cap, each hand-off on
its queue.

One fault cannot be made exactly-once and is the documented window of
`TouchSender`: SES accepted the email and the caller saw an error (SES has no
idempotency key). That send goes out once more after the lease lapses; the
test holds the repeat to exactly that case, and to one extra email.

Two faults are windows of the channels, not of Advance: SES accepted the email
and the caller saw an error (SES has no idempotency key), and SQS took a
hand-off and the caller saw an error — the retry queues it again, and the
consumers deliver each touch once (a claim per touch), so the test holds the
queue's repeats to that case and to one extra copy of that message.

The task is driven directly, not through the state machine: moto's Wait
states sleep in real time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from nurture import wiring
from nurture.core.clock import FixedClock
from nurture.store.repository import from_item
from nurture.timelines.decisions import bucket
from tests.fakes import WallClock
from tests.faults import MODES, FaultInjector, fixed_clocks, restore_table, table_items
from tests.integration.conftest import ingest_record

NOW = 1_780_000_000.0  # a Thursday; the run's product clock starts here
TRACK = "mql-revenue-teams"
READS = ("Get", "BatchGet", "Query", "Scan")
TASK_TIMEOUT = 30  # the functions' timeout (template.yaml Globals)
# The ASL's retry of a task that failed (States.TaskFailed): first interval, back-off, attempts.
ADVANCE_RETRY = (30.0, 3.0, 5)
SES_SEND = "sesv2.SendEmail"
SQS_SEND = "sqs.SendMessage"
HAND_OFF_QUEUES = ("AudienceQueue", "SalesTaskQueue")
# The run ends here: the track's first three steps (guide, retargeting, proof)
# of five, the other two being the same tasks again.
HORIZON = NOW + 8 * 86400


class _Context:
    def get_remaining_time_in_millis(self) -> int:
        return TASK_TIMEOUT * 1000


def _user_outside_holdout(prefix: str) -> str:
    from nurture.ingest.consumer import lead_id_for

    return next(f"{prefix}{n}" for n in range(100) if bucket("holdout", TRACK, lead_id_for(f"user#{prefix}{n}")) >= 0.1)


def _warm_lead(user: str) -> str:
    """An A-fit RevOps director in New York who completed the ROI calculator and attended a webinar."""
    from track.app import handler as track

    traits = {
        "email": f"{user}@fintech-{user}.com",
        "timezone": "America/New_York",
        "title": "Director of Revenue Operations",
        "industry": "Fintech",
        "employees": 1500,
        "country": "US",
    }
    calls = [
        {"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits},
        {"type": "track", "userId": user, "event": "ROI Calculator Completed", "messageId": f"r-{user}"},
        {
            "type": "track",
            "userId": user,
            "event": "Webinar Attended",
            "messageId": f"w-{user}",
            "properties": {"webinar_id": "pipeline-hygiene"},
        },
    ]
    assert track({"Records": [ingest_record(*calls, received_at=NOW)]}, _Context()) == {"batchItemFailures": []}
    (lead_id,) = wiring.get_store().lookup_identities([f"email#{traits['email']}"]).values()
    return lead_id


class _NoExecutions:
    """The enrollment's execution is what this test drives by hand."""

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        return True

    def stop(self, name: str, cause: str) -> None:
        pass


def _enroll(lead_ids: list[str]) -> list[dict[str, Any]]:
    from nurture.timelines.use_cases import Enroller, start_payload

    enroller = Enroller(wiring.get_store(), wiring.get_timeline_store(), _NoExecutions(), wiring.get_config())
    states = []
    for lead_id in lead_ids:
        result = enroller.enroll(lead_id, "lead.became_warm", NOW)
        assert result.outcome == "enrolled", result
        (enrollment,) = wiring.get_timeline_store().enrollments(lead_id)
        states.append(start_payload(enrollment))
    return states


def _task(handler, payload: dict[str, Any], retry: tuple[float, float, int], wall: WallClock) -> dict[str, Any] | None:
    """A Lambda task with the ASL's retry: the same input again after the
    interval, its retry count in `attempt` ($$.State.RetryCount); None when
    every attempt failed (the state's Catch)."""
    interval, backoff, attempts = retry
    for attempt in range(attempts + 1):
        wall.advance(1.0)
        try:
            return handler({**json.loads(json.dumps(payload)), "attempt": attempt}, _Context())
        except Exception:
            if attempt == attempts:
                return None
            wall.advance(interval * backoff**attempt)
    return None


def _unsubscribe(lead_id: str, now: float) -> None:
    """One click on the unsubscribe link, clicked again while the page fails."""
    from nurture.channels.consent import unsubscribe

    for _ in range(3):
        try:
            unsubscribe(wiring.get_store(), wiring.get_publisher(), lead_id, now)
            return
        except Exception:
            continue
    pytest.fail("unsubscribing kept failing")


def _run(states: list[dict[str, Any]], unsubscriber: str, wall: WallClock, clock: FixedClock) -> list[tuple]:
    """Both timelines, their wakes in time order, until each exits or its next
    wake lies past the horizon; the unsubscriber opts out right after its first
    email. Advance delivers each touch; what became of it is noted."""
    from timeline.app import advance

    pending = {state["lead_id"]: (NOW, json.loads(json.dumps(state))) for state in states}
    routed = []
    while pending:
        lead_id, (wake, state) = min(pending.items(), key=lambda item: item[1][0])
        clock.set(datetime.fromtimestamp(max(clock.timestamp(), wake), UTC))
        wall.advance(600.0)
        decision = _task(advance, state, ADVANCE_RETRY, wall)
        if decision is None:
            routed.append((lead_id, "failed"))
            del pending[lead_id]
            continue
        state["decision"] = decision
        action = decision["action"]
        if action == "email":
            routed.append((lead_id, "email", decision["touch"]["step_id"], decision["delivery"]))
            if lead_id == unsubscriber and decision["touch"]["step_id"] == "guide":
                _unsubscribe(lead_id, clock.timestamp())
        elif action in ("retargeting", "sales_call"):
            routed.append((lead_id, action, decision["touch"]["step_id"], decision["delivery"]))
        if decision["end"]:
            routed.append((lead_id, "end", decision["reason"]))
            del pending[lead_id]
            continue
        wake_at = datetime.strptime(decision["wake_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        if wake_at > HORIZON:
            routed.append((lead_id, "waiting", decision["wake_at"]))
            del pending[lead_id]
            continue
        pending[lead_id] = (max(wake_at, clock.timestamp()), state)
    return routed


def _items(deployed) -> list[dict[str, Any]]:
    return table_items(deployed.client("dynamodb"), deployed.env["TABLE_NAME"])


def _restore(deployed, snapshot: list[dict[str, Any]]) -> None:
    """The table as it was after enrolling; the outbox and the bus tap emptied."""
    from moto.ses.models import ses_backends

    restore_table(deployed.client("dynamodb"), deployed.env["TABLE_NAME"], snapshot)
    ses_backends["123456789012"]["us-east-1"].sent_messages.clear()
    deployed.bus_events()
    _queued(deployed)


def _queued(deployed) -> list[tuple[str, str, str]]:
    """(queue, lead, step) of every hand-off on the hand-off queues, drained."""
    sqs, found = deployed.client("sqs"), []
    for queue in HAND_OFF_QUEUES:
        url = sqs.get_queue_url(QueueName=f"test-{queue}")["QueueUrl"]
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                body = json.loads(message["Body"])
                found.append((queue, body["lead_id"], body["step_id"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def _outbox() -> list[tuple[str, str]]:
    """(recipient, touch id) of every email SES accepted."""
    from email import message_from_string

    from moto.ses.models import ses_backends

    sent = []
    for message in ses_backends["123456789012"]["us-east-1"].sent_messages:
        mime = message_from_string(message.raw_data)
        sent.append((mime["To"], mime["X-Nurture-Touch"]))
    return sorted(sent)


def _state(stored: list[dict[str, Any]], deployed) -> dict[str, Any]:
    items = [from_item(item) for item in stored]
    enrollments, touches, send_logs, content_claims, leads = {}, {}, {}, {}, {}
    for item in items:
        key, sk = (item["pk"], item["sk"]), item["sk"]
        if sk.startswith("ENR#"):
            enrollments[key] = {k: v for k, v in item.items() if k not in ("version",)}
        elif sk.startswith("TOUCH#"):
            touches[key] = {k: v for k, v in item.items() if k not in ("message_id", "lease_until")}
        elif sk == "SENDLOG":
            send_logs[key] = item["sends"]
        elif sk.startswith("CONTENT#"):
            content_claims[key] = item
        elif sk == "PROFILE":
            leads[key] = (item.get("cs"), item.get("lc"))
    published = {(event["detail-type"], event["detail"]["event_id"]) for event in deployed.bus_events()}
    return {
        "enrollments": enrollments,
        "touches": touches,
        "send_logs": send_logs,
        "content_claims": content_claims,
        "leads": leads,
        "published": published,
        "outbox": _outbox(),
        "queued": _queued(deployed),
        "sending": sorted(t["sk"] for t in items if t["sk"].startswith("TOUCH#") and t.get("status") == "sending"),
    }


@pytest.fixture
def clocks(monkeypatch):
    with fixed_clocks(monkeypatch, NOW, TASK_TIMEOUT) as both:
        yield both


def test_every_fault_on_the_advance_task_ends_in_the_clean_state(deployed, clocks):
    clock, wall = clocks
    # Given two warm leads enrolled in the RevOps track, one of whom unsubscribes after its first email
    keeper, leaver = _warm_lead(_user_outside_holdout("kim")), _warm_lead(_user_outside_holdout("lou"))
    states = _enroll([keeper, leaver])
    snapshot = _items(deployed)
    leaver_email = wiring.get_store().get_leads([leaver])[leaver].email

    def run(injector: FaultInjector) -> tuple[list[tuple], dict[str, Any]]:
        clock.set(datetime.fromtimestamp(NOW, UTC))
        with injector.active():
            route = _run(states, leaver, wall, clock)
        stored = _items(deployed)
        state = _state(stored, deployed)
        _restore(deployed, snapshot)
        return route, state

    # and the clean run's end state and the AWS calls it makes (once warm: clients and keys cached)
    run(FaultInjector())
    counting = FaultInjector()
    clean_route, clean = run(counting)
    emails = [step for step in clean_route if step[1] == "email"]
    assert len(clean["outbox"]) == len(emails) == 3, clean_route
    assert [to for to, _ in clean["outbox"]].count(leaver_email) == 1
    assert (leaver, "end", "lead unsubscribed") in clean_route
    assert (keeper, "retargeting", "retarget-platform", "queued") in clean_route
    assert clean["queued"] == [("AudienceQueue", keeper, "retarget-platform")]
    assert clean["sending"] == []
    total = len(counting.calls)

    # When each call in turn fails, before reaching the service or after succeeding
    tried, differences, missed, repeats, queue_repeats = 0, [], [], [], []
    for mode in MODES:
        for position in range(1, total + 1):
            call = counting.calls[position - 1]
            if mode == "after" and call.split(".")[1].startswith(READS):
                continue  # a read failing after it was served changes nothing a read failing before does not
            injector = FaultInjector(fail_at=position, mode=mode)
            route, state = run(injector)
            if injector.struck is None:
                missed.append((mode, position, call))
                continue
            tried += 1
            outbox = state.pop("outbox")
            if outbox != clean["outbox"]:
                if (mode, injector.struck) == ("after", SES_SEND) and sorted(set(outbox)) == clean["outbox"]:
                    repeats.append((position, len(outbox) - len(clean["outbox"])))  # SES's own window
                else:
                    differences.append((mode, position, injector.struck, "outbox", outbox))
            queued = state.pop("queued")
            if queued != clean["queued"]:
                if (mode, injector.struck) == ("after", SQS_SEND) and sorted(set(queued)) == clean["queued"]:
                    queue_repeats.append((position, len(queued) - len(clean["queued"])))  # SQS's own window
                else:
                    differences.append((mode, position, injector.struck, "queued", queued))
            if route != clean_route:
                differences.append((mode, position, injector.struck, "route", route))
            for part, value in state.items():
                if value != clean[part]:
                    differences.append((mode, position, injector.struck, part, value))

    # Then every run ends where the clean one did, but for SES's and SQS's own
    # windows: one email or one hand-off message more, no other difference
    ses_sends = counting.calls.count(SES_SEND)
    print(
        f"advance (decide, send, queue): {total} AWS calls, {tried} faults injected, "
        f"{len(repeats)} repeats in SES's window, {len(queue_repeats)} in SQS's"
    )
    writes = sum(1 for call in counting.calls if not call.split(".")[1].startswith(READS))
    assert (tried, missed) == (total + writes, [])
    assert differences == []
    assert len(repeats) == ses_sends and all(extra == 1 for _, extra in repeats)
    assert len(queue_repeats) == counting.calls.count(SQS_SEND) and all(extra == 1 for _, extra in queue_repeats)
