"""The sales hand-off and its SLA timer under injected faults: every AWS call
and every CRM request of a hot lead's hand-off and of the escalation its timer
fires fails in turn (before it reaches the service, and after it succeeded),
Lambda retries the failed asynchronous invocation as it does (twice, a minute
and two minutes on), and EventBridge delivers lead.became_hot once more. The
end state must be the clean run's: the CRM gets each delivery (by its id, on
which it dedupes) and the sales topic each alert, the SLA schedule is created
once, lead.handed_off and lead.handoff_escalated are published, no claim is
left "sending".

One fault cannot be made exactly-once and is the documented window of
`nurture.core.delivery`: SNS accepted the alert and the caller saw an error
(SNS has no idempotency key); the retry tells sales once more. The test holds
the repeat to exactly that case, and to one alert more.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from nurture import wiring
from nurture.store.repository import from_item
from tests.fakes import WallClock
from tests.faults import MODES, FaultInjector, fixed_clocks, restore_table, table_items
from tests.integration.test_sales import CRM_SECRET, CrmEndpoint, hot_lead

NOW = 1_780_000_000.0
READS = ("Get", "BatchGet", "Query", "Scan", "List", "Describe")
FUNCTION_TIMEOUT = 120  # the hand-off and timer functions' (template.yaml)
# Lambda retries a failed asynchronous invocation twice (EventInvokeConfig), about a minute, then two, later.
ASYNC_RETRIES = (60.0, 120.0)
SNS_PUBLISH = "sns.Publish"


class _Context:
    def get_remaining_time_in_millis(self) -> int:
        return FUNCTION_TIMEOUT * 1000


def _invoke(handler, event: dict[str, Any], wall: WallClock) -> dict[str, Any] | None:
    """An asynchronous invocation with Lambda's retries; None when it went to the DLQ."""
    for wait in (*ASYNC_RETRIES, None):
        wall.advance(1.0)
        try:
            return handler(json.loads(json.dumps(event)), _Context())
        except Exception:
            if wait is None:
                return None
            wall.advance(wait)
    return None


class _Outbound:
    """The CRM webhook's HTTP sends, routed through the injector running now."""

    def __init__(self) -> None:
        self.injector: FaultInjector | None = None

    def wrap(self, send):
        def faulty(*args):
            if self.injector is None:
                return send(*args)
            return self.injector.outbound("http.crm", lambda: send(*args))

        return faulty


@pytest.fixture
def crm(deployed, monkeypatch):
    from nurture.sales import crm as crm_module

    endpoint = CrmEndpoint()
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    deployed.client("secretsmanager").put_secret_value(
        SecretId=deployed.env["CRM_WEBHOOK_SECRET_ARN"],
        SecretString=json.dumps(
            {"url": f"http://127.0.0.1:{endpoint.server_port}/hooks", "signing_secret": CRM_SECRET}
        ),
    )
    outbound = _Outbound()
    real_send = crm_module._urllib_send
    monkeypatch.setattr(crm_module, "_urllib_send", lambda: outbound.wrap(real_send()))
    wiring.reset()
    yield endpoint, outbound
    endpoint.shutdown()
    endpoint.server_close()


@pytest.fixture
def sales_inbox(deployed) -> str:
    sqs = deployed.client("sqs")
    url = sqs.create_queue(QueueName="sales-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployed.client("sns").subscribe(TopicArn=deployed.env["SALES_ALERTS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn)
    return url


@pytest.fixture
def clocks(monkeypatch):
    with fixed_clocks(monkeypatch, NOW, FUNCTION_TIMEOUT) as both:
        yield both


def _drain(deployed, url: str) -> list[dict[str, Any]]:
    sqs, found = deployed.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _schedules(deployed) -> dict[str, dict[str, Any]]:
    scheduler = deployed.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules()["Schedules"]]
    return {name: scheduler.get_schedule(Name=name) for name in names}


def _items(deployed) -> list[dict[str, Any]]:
    return table_items(deployed.client("dynamodb"), deployed.env["TABLE_NAME"])


def _restore(deployed, snapshot: list[dict[str, Any]]) -> None:
    restore_table(deployed.client("dynamodb"), deployed.env["TABLE_NAME"], snapshot)
    for name in _schedules(deployed):
        deployed.client("scheduler").delete_schedule(Name=name)


def test_every_fault_on_the_hand_off_and_its_sla_timer_ends_in_the_clean_state(deployed, crm, sales_inbox, clocks):
    from handoff.app import handler as handoff
    from sales_timers.app import handler as timer

    endpoint, outbound = crm
    clock, wall = clocks
    # Given a lead that just became hot
    lead_id, hot = hot_lead(deployed)
    snapshot = _items(deployed)

    def run(injector: FaultInjector) -> tuple[list[Any], dict[str, Any]]:
        """The hand-off (and EventBridge's duplicate), then the SLA timer four hours on."""
        clock.set(datetime.fromtimestamp(NOW, UTC))
        outcomes = []
        outbound.injector = injector
        with injector.active():
            outcomes.append(_invoke(handoff, hot, wall))
            outcomes.append(_invoke(handoff, hot, wall) is not None)
        schedules = _schedules(deployed)
        for schedule in schedules.values():
            clock.advance(4 * 3600)
            wall.advance(4 * 3600)
            with injector.active():
                outcomes.append(_invoke(timer, json.loads(schedule["Target"]["Input"]), wall))
        outbound.injector = None
        stored = _items(deployed)
        items = [from_item(item) for item in stored]
        state = {
            "crm": sorted({(d["type"], d["id"]) for d in endpoint.deliveries()}),
            "alerts": sorted((a["type"], a["handoff_id"]) for a in _drain(deployed, sales_inbox)),
            "schedules": sorted((s["Name"], s["ScheduleExpression"], s["Target"]["Input"]) for s in schedules.values()),
            "published": sorted({(e["detail-type"], e["detail"]["event_id"]) for e in deployed.bus_events()}),
            "touches": sorted(
                (t["sk"], t["status"], t.get("published_at") is not None) for t in items if t["sk"].startswith("TOUCH#")
            ),
        }
        requests = len(endpoint.received)
        endpoint.received.clear()
        _restore(deployed, snapshot)
        return outcomes, state, requests

    # and the clean run's end state and the calls it makes (once warm)
    run(FaultInjector())
    counting = FaultInjector()
    clean_outcomes, clean, _ = run(counting)
    assert [o if isinstance(o, bool) else o["outcome"] for o in clean_outcomes] == ["handed_off", True, "escalated"]
    assert [kind for kind, _ in clean["crm"]] == ["handoff", "handoff_escalation"]
    assert [kind for kind, _ in clean["alerts"]] == ["handoff", "handoff_escalation"]
    assert len(clean["schedules"]) == 1
    assert {kind for kind, _ in clean["published"]} >= {"lead.handed_off", "lead.handoff_escalated"}
    assert [status for _, status, published in clean["touches"]] == ["sent", "sent"]
    total = len(counting.calls)

    # When each call in turn fails, before reaching the service or after succeeding
    tried, differences, missed, repeats, crm_requests = 0, [], [], [], 0
    for mode in MODES:
        for position in range(1, total + 1):
            call = counting.calls[position - 1]
            if mode == "after" and call.split(".")[1].startswith(READS):
                continue
            injector = FaultInjector(fail_at=position, mode=mode)
            _, state, requests = run(injector)
            crm_requests = max(crm_requests, requests)
            if injector.struck is None:
                missed.append((mode, position, call))
                continue
            tried += 1
            alerts = state.pop("alerts")
            if alerts != clean["alerts"]:
                if (mode, injector.struck) == ("after", SNS_PUBLISH) and sorted(set(alerts)) == clean["alerts"]:
                    repeats.append((position, len(alerts) - len(clean["alerts"])))
                else:
                    differences.append((mode, position, injector.struck, "alerts", alerts))
            for part, value in state.items():
                if value != clean[part]:
                    differences.append((mode, position, injector.struck, part, value))

    # Then every run ends where the clean one did, but for SNS's own window: one alert more
    print(
        f"hand-off + SLA timer: {total} calls ({counting.calls.count('http.crm')} CRM requests), "
        f"{tried} faults injected, {len(repeats)} repeats in SNS's window, at most {crm_requests} CRM requests a run"
    )
    writes = sum(1 for call in counting.calls if not call.split(".")[1].startswith(READS))
    assert (tried, missed) == (total + writes, [])
    for difference in differences:
        print(difference)
    assert differences == []
    assert len(repeats) == counting.calls.count(SNS_PUBLISH) and all(extra == 1 for _, extra in repeats)
