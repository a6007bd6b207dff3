"""Runs the real nurture timeline ASL under moto: Lambda tasks routed to the
handlers, EventBridge rules delivered to their functions, waits compressed by
a scaled product clock."""

from __future__ import annotations

import json
import time
from typing import Any

from nurture import wiring
from nurture.core.clock import ScaledClock, SystemClock, set_clock
from nurture.store.repository import from_item
from nurture_tools.local import moto_runtime
from nurture_tools.local.template import LocalStack
from tests.conftest import PROJECT_DIR

DAY = 86400.0


class Timelines:
    def __init__(self, deployed: Any, seconds_per_day: float) -> None:
        self.deployed = deployed
        self.stack = LocalStack(PROJECT_DIR, deployed.session, prefix="test")
        self.stack.physical = {}
        self.functions = {}
        self.clock = ScaledClock(DAY / seconds_per_day)

    def start(self) -> Timelines:
        moto_runtime.route_lambda_invocations()
        moto_runtime.scale_waits(self.clock.scale)
        set_clock(self.clock)
        sfn = self.deployed.client("stepfunctions")
        self.state_machine_arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        lambdas = {f["FunctionName"]: f for f in self.deployed.client("lambda").list_functions()["Functions"]}
        for function in self.stack.functions().values():
            name = f"test-{function.logical_id}"
            assert name in lambdas
            handler = function.load()
            moto_runtime.register_function(name, handler)
            self.functions[function.logical_id] = handler
        wiring.reset()
        return self

    def stop(self) -> None:
        sfn = self.deployed.client("stepfunctions")
        for execution in sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")[
            "executions"
        ]:
            sfn.stop_execution(executionArn=execution["executionArn"])
        set_clock(SystemClock())
        moto_runtime.scale_waits(1.0)
        moto_runtime.clear_functions()

    # --- driving it -----------------------------------------------------------

    def track(self, *records: dict[str, Any]) -> None:
        """Events through the real track handler, then the bus rules delivered."""
        from tests.integration.conftest import ingest_record

        record = ingest_record(*records, received_at=self.clock.timestamp())
        self.functions["TrackFunction"]({"Records": [record]}, None)
        self.deliver_rules()

    def deliver_rules(self) -> list[dict[str, Any]]:
        """What EventBridge would do: each rule's matching events to its function."""
        sqs, delivered = self.deployed.client("sqs"), []
        for url in sqs.list_queues(QueueNamePrefix="test-EnrollFunction")["QueueUrls"]:
            while True:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    event = json.loads(message["Body"])
                    delivered.append(event)
                    self.functions["EnrollFunction"](event, None)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        sfn = self.deployed.client("stepfunctions")
        kwargs = {"statusFilter": status} if status else {}
        return sfn.list_executions(stateMachineArn=self.state_machine_arn, **kwargs)["executions"]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def finished(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        sfn = self.deployed.client("stepfunctions")
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

        def done():
            description = sfn.describe_execution(executionArn=arn)
            return description if description["status"] != "RUNNING" else None

        return self.wait_for(done, timeout, f"execution {name} to finish")

    def history(self, name: str) -> list[dict[str, Any]]:
        sfn = self.deployed.client("stepfunctions")
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]

    def items(self, prefix: str) -> list[dict[str, Any]]:
        table = self.deployed.env["TABLE_NAME"]
        found = [from_item(item) for item in self.deployed.client("dynamodb").scan(TableName=table)["Items"]]
        return [item for item in found if item["sk"].startswith(prefix)]

    def touches(self, lead_id: str | None = None) -> list[dict[str, Any]]:
        touches = [t for t in self.items("TOUCH#") if lead_id is None or t["lead_id"] == lead_id]
        return sorted(touches, key=lambda t: t["at"])

    def enrollments(self) -> list[dict[str, Any]]:
        return self.items("ENR#")

    def queued(self, queue_env: str) -> list[dict[str, Any]]:
        sqs = self.deployed.client("sqs")
        url = sqs.get_queue_url(QueueName=f"test-{queue_env}")["QueueUrl"]
        bodies = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def sent_emails(self) -> list[Any]:
        from moto.ses.models import ses_backends

        return list(ses_backends["123456789012"]["us-east-1"].sent_messages)


def deliver_touch(advance: Any, touch: dict[str, Any], attempt: int = 0) -> dict[str, Any]:
    """A touch through the Advance function's delivery, as the state machine's
    retry of a wake meets it: the enrollment already decided `touch` (its last
    decision), so Advance returns that decision and delivers it. Returns what
    Advance returned (`delivery` says what became of the touch)."""
    from nurture.core.domain import Enrollment

    store = wiring.get_timeline_store()
    lead_id, track_id = touch["lead_id"], touch["track_id"]
    enrollment = store.get_enrollment(lead_id, track_id, 1)
    if enrollment is None:
        enrollment = Enrollment(touch["enrollment_id"], lead_id, track_id, 1, started_at=touch["decided_at"])
        store.create_enrollment(enrollment)
        enrollment = store.get_enrollment(lead_id, track_id, 1)
    decision = {
        "id": f"{touch['enrollment_id']}:1",
        "action": touch.get("channel") or "email",
        "wake_at": "2100-01-01T00:00:00Z",
        "reason": f"step {touch['step_id']}",
        "touch": touch,
        "exhausted": [],
        "end": False,
    }
    if enrollment.last_decision != decision:
        expected = enrollment.version
        enrollment.last_decision, enrollment.decision_seq = decision, 1
        store.save_enrollment(enrollment, expected)
    state = {"enrollment_id": touch["enrollment_id"], "lead_id": lead_id, "track_id": track_id, "seq": 1}
    return advance({**state, "decision": {"id": None}, "attempt": attempt}, None)
