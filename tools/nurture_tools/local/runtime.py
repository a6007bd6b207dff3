"""The embedded local stack: moto in server mode, the template's resources,
the API on HTTP and the SQS -> function pollers, all in one process."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nurture_tools.local.apigw import ApiGateway, lambda_context
from nurture_tools.local.template import LocalFunction, LocalStack

logger = logging.getLogger("nurture_tools.local")
REGION = "us-east-1"
LOCAL_RETRY_SECONDS = 2


@dataclass
class LocalKeys:
    write_key: str
    admin_key: str
    form_secret: str

    @classmethod
    def from_environment(cls) -> tuple[LocalKeys, bool]:
        """Keys from NURTURE_WRITE_KEY / NURTURE_ADMIN_KEY / NURTURE_FORM_SECRET,
        else development defaults (reported so they can be printed)."""
        keys = cls(
            os.environ.get("NURTURE_WRITE_KEY", "dev-write-key"),
            os.environ.get("NURTURE_ADMIN_KEY", "dev-admin-key"),
            os.environ.get("NURTURE_FORM_SECRET", "dev-form-secret"),
        )
        defaults = not {"NURTURE_WRITE_KEY", "NURTURE_ADMIN_KEY"} <= os.environ.keys()
        return keys, defaults


def find_project_dir(start: Path | None = None) -> Path:
    """The folder holding template.yaml: the working directory or one above it,
    else the checkout this package was installed from (editable install)."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "template.yaml").is_file() and (folder / "functions").is_dir():
            return folder
    installed = Path(__file__).resolve().parents[3]  # tools/nurture_tools/local/runtime.py
    if (installed / "template.yaml").is_file():
        return installed
    raise FileNotFoundError("run this inside a Nurture checkout (no template.yaml found)")


class SqsPoller(threading.Thread):
    """Lambda's SQS event source mapping: batches to the handler, deletes what
    succeeded, leaves reported failures for redelivery (then the DLQ)."""

    def __init__(self, sqs: Any, queue_url: str, queue_arn: str, function: LocalFunction, handler: Any) -> None:
        super().__init__(name=f"poller-{function.logical_id}", daemon=True)
        self.sqs, self.queue_url, self.queue_arn = sqs, queue_url, queue_arn
        self.function, self.handler = function, handler
        self.stopping = threading.Event()
        self.batches = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:
                if not self.stopping.is_set():
                    logger.exception("polling %s failed", self.function.logical_id)
                    time.sleep(0.5)

    def poll_once(self, wait_seconds: int = 0) -> int:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.function.sqs_batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        try:
            result = self.handler({"Records": records}, lambda_context(self.function.logical_id)) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:
            logger.exception("%s raised; the whole batch will be redelivered", self.function.logical_id)
            failed = {r["messageId"] for r in records}
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
            )
        for record in records:
            if record["messageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=LOCAL_RETRY_SECONDS,
                )
        self.batches += 1
        return len(records)


class RulePoller(threading.Thread):
    """An EventBridge rule's delivery to its function: the rule feeds a local
    queue (rules with function targets never fire in moto); failures stay on
    the queue and are retried, as EventBridge retries asynchronous invocations."""

    def __init__(self, sqs: Any, queue_url: str, function: LocalFunction, handler: Any) -> None:
        super().__init__(name=f"rule-{function.logical_id}", daemon=True)
        self.sqs, self.queue_url, self.function, self.handler = sqs, queue_url, function, handler
        self.stopping = threading.Event()

    def run(self) -> None:
        import json

        while not self.stopping.is_set():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except Exception:
                if self.stopping.is_set():
                    return
                logger.exception("polling the %s rule failed", self.function.logical_id)
                time.sleep(0.5)
                continue
            for message in messages:
                try:
                    self.handler(json.loads(message["Body"]), lambda_context(self.function.logical_id))
                except Exception:
                    logger.exception("%s failed; the event will be retried", self.function.logical_id)
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=LOCAL_RETRY_SECONDS,
                    )
                    continue
                try:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                except Exception:
                    if self.stopping.is_set():
                        return  # the emulator stopped under us
                    logger.exception("deleting a delivered %s event failed", self.function.logical_id)


@dataclass
class _Timer:
    """One schedule the local stack fires: from the template or created at run time."""

    name: str
    expression: Any  # local.schedules.ScheduleExpression
    target_arn: str
    payload: str | None
    retries: int
    dead_letter_arn: str | None = None
    next_at: Any = None  # aware datetime of the next firing; None when done
    failures: int = 0
    delete_after: bool = False
    group: str | None = None  # set for schedules created through the Scheduler API
    modified: Any = None


class SchedulePoller(threading.Thread):
    """EventBridge Scheduler for the local stack (moto stores schedules but never
    fires them): fires every ScheduleV2 event of the template and every schedule
    created at run time through the Scheduler API on the emulator, on the
    application clock (so `--time-scale` accelerates them too). A target that
    fails is retried on the next ticks up to the schedule's retry policy, then
    its input goes to the schedule's dead-letter queue; a one-time schedule
    with ActionAfterCompletion DELETE is deleted once it fired."""

    TICK_SECONDS = 0.1

    def __init__(self, session: Any, handlers: dict[str, Any], template_timers: list[_Timer]) -> None:
        super().__init__(name="scheduler", daemon=True)
        self.scheduler, self.sqs = session.client("scheduler"), session.client("sqs")
        self.handlers = handlers  # Lambda function name -> handler
        self.stopping = threading.Event()
        self.timers: dict[tuple[str, str], _Timer] = {("template", t.name): t for t in template_timers}
        self.fired: list[tuple[str, float]] = []  # (schedule name, application time), for inspection
        now = self._now()
        for timer in template_timers:
            timer.next_at = timer.expression.next_after(now)

    @staticmethod
    def _now() -> Any:
        from datetime import UTC, datetime

        from nurture.core.clock import get_clock

        return datetime.fromtimestamp(get_clock().timestamp(), UTC)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:
                if not self.stopping.is_set():
                    logger.exception("the local scheduler failed a tick")
            self.stopping.wait(self.TICK_SECONDS)

    def tick(self) -> None:
        self._discover()
        now = self._now()
        for key, timer in list(self.timers.items()):
            if timer.next_at is None or timer.next_at > now:
                continue
            if self._fire(timer):
                timer.failures = 0
                self.fired.append((timer.name, now.timestamp()))
                timer.next_at = None if timer.expression.one_time else timer.expression.next_after(now)
            elif timer.failures > timer.retries:
                self._dead_letter(timer)
                timer.failures = 0
                timer.next_at = None if timer.expression.one_time else timer.expression.next_after(now)
            if timer.next_at is None and timer.group is not None and timer.delete_after:
                with contextlib.suppress(self.scheduler.exceptions.ResourceNotFoundException):
                    self.scheduler.delete_schedule(Name=timer.name, GroupName=timer.group)
                del self.timers[key]

    def _discover(self) -> None:
        """Schedules created, updated or deleted through the Scheduler API."""
        from nurture_tools.local.schedules import ScheduleExpressionError, parse

        seen = set()
        request: dict[str, Any] = {}
        while True:
            page = self.scheduler.list_schedules(**request)
            for summary in page.get("Schedules", []):
                key = (summary["GroupName"], summary["Name"])
                seen.add(key)
                known = self.timers.get(key)
                if known is not None and known.modified == summary.get("LastModificationDate"):
                    continue
                schedule = self.scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
                try:
                    expression = parse(schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone"))
                except ScheduleExpressionError:
                    logger.exception("schedule %s is not fired locally", summary["Name"])
                    expression = None
                target = schedule["Target"]
                self.timers[key] = _Timer(
                    name=summary["Name"],
                    expression=expression,
                    target_arn=target["Arn"],
                    payload=target.get("Input"),
                    retries=int((target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", 185)),
                    dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
                    next_at=self._first_firing(expression, schedule.get("State", "ENABLED")),
                    delete_after=schedule.get("ActionAfterCompletion") == "DELETE",
                    group=summary["GroupName"],
                    modified=summary.get("LastModificationDate"),
                )
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
        for key in [k for k in self.timers if k[0] != "template" and k not in seen]:
            del self.timers[key]  # deleted through the API (a cancelled timer)

    def _first_firing(self, expression: Any, state: str) -> Any:
        """A one-time schedule fires at its moment, or at once if that passed
        before this poller saw it (in accelerated time a few hours go by
        between two ticks); a recurring one at its next occurrence."""
        if expression is None or state != "ENABLED":
            return None
        return expression.at if expression.one_time else expression.next_after(self._now())

    def _fire(self, timer: _Timer) -> bool:
        import json

        from nurture_tools.local.apigw import lambda_context
        from nurture_tools.local.moto_runtime import _function_name

        try:
            if ":lambda:" in timer.target_arn:
                name = _function_name(timer.target_arn)
                self.handlers[name](json.loads(timer.payload or "{}"), lambda_context(name))
            elif ":sqs:" in timer.target_arn:
                url = self.sqs.get_queue_url(QueueName=timer.target_arn.rsplit(":", 1)[1])["QueueUrl"]
                self.sqs.send_message(QueueUrl=url, MessageBody=timer.payload or "{}")
            else:
                raise ValueError(f"targets like {timer.target_arn} are not fired locally")
        except Exception:
            timer.failures += 1
            logger.exception("schedule %s failed (attempt %d)", timer.name, timer.failures)
            return False
        return True

    def _dead_letter(self, timer: _Timer) -> None:
        if not timer.dead_letter_arn:
            logger.error("schedule %s gave up and has no dead-letter queue", timer.name)
            return
        url = self.sqs.get_queue_url(QueueName=timer.dead_letter_arn.rsplit(":", 1)[1])["QueueUrl"]
        self.sqs.send_message(QueueUrl=url, MessageBody=timer.payload or "{}")


class LocalRuntime:
    """Start with `start()`, stop with `stop()`; `environment` holds what a
    client needs (endpoint, names) once started."""

    def __init__(
        self,
        project_dir: Path | None = None,
        aws_port: int = 4566,
        api_port: int = 8000,
        config_dir: Path | None = None,
        keys: LocalKeys | None = None,
        quiet: bool = True,
        time_scale: float = 1.0,
        log_level: str | None = None,
    ) -> None:
        self.time_scale = time_scale
        self.log_level = log_level
        self.project_dir = project_dir or find_project_dir()
        self.config_dir = config_dir or self.project_dir / "config"
        self.aws_port = aws_port
        self.api_port = api_port
        self.keys = keys or LocalKeys.from_environment()[0]
        self.quiet = quiet
        self.environment: dict[str, str] = {}
        self.pollers: list[threading.Thread] = []
        self._moto = None
        self._http = None
        self._http_thread: threading.Thread | None = None
        self.stack: LocalStack | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        from nurture.core.clock import ScaledClock, set_clock
        from nurture_tools.local import moto_runtime

        for service, settings in moto_runtime.MOTO_CONFIG.items():
            default_user_config.setdefault(service, {}).update(settings)
        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_runtime.route_lambda_invocations()
        moto_runtime.scale_waits(self.time_scale)
        if self.time_scale != 1.0:
            set_clock(ScaledClock(self.time_scale))
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
        self._moto.start()
        if self.aws_port == 0:
            self.aws_port = self._moto._server.server_port
        # The emulator's state lives in this process: start from nothing, even
        # after an earlier stack in the same process (tests).
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "MOTO_PORT": str(self.aws_port),
            }
        )
        if self.quiet:
            os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        import boto3

        session = boto3.session.Session(region_name=REGION)
        self.stack = LocalStack(self.project_dir, session)
        self.stack.provision(self._secret_values(), overrides={"NurtureHttpApi": "local-api"})
        self.environment = self.stack.function_environment()
        self.environment["NURTURE_CONFIG_DIR"] = str(self.config_dir)
        # No network here: audience sync records what it would send to the ad platforms.
        self.environment["NURTURE_AD_PLATFORMS"] = "local"
        if self.log_level:  # the functions' level (the template's LogLevel otherwise)
            self.environment["POWERTOOLS_LOG_LEVEL"] = self.log_level
        self.bus_tap_url = self._tap_bus(session)
        os.environ.update(self.environment)
        from nurture import wiring

        wiring.reset()
        wiring.get_config()  # fail fast on invalid configuration
        functions = self.stack.functions()
        for function in functions.values():
            moto_runtime.register_function(function.physical_name, function.load())
            for queue_url in function.rule_queues:
                rule_poller = RulePoller(session.client("sqs"), queue_url, function, function.load())
                rule_poller.start()
                self.pollers.append(rule_poller)
            for queue_id in function.sqs_queues:
                queue = self.stack.physical[queue_id]
                poller = SqsPoller(session.client("sqs"), queue["QueueUrl"], queue["Arn"], function, function.load())
                poller.start()
                self.pollers.append(poller)
        self.scheduler = self._start_scheduler(session, functions)
        api_id = next(fid for fid in functions if self.stack.api_routes(fid))
        self._serve_api(ApiGateway(self.stack.api_routes(api_id), functions[api_id].load(), api_id))
        # Links in email point at this local API.
        self.environment["PUBLIC_API_URL"] = self.api_url
        os.environ["PUBLIC_API_URL"] = self.api_url
        wiring.reset()

    def _start_scheduler(self, session: Any, functions: dict[str, LocalFunction]) -> SchedulePoller:
        from nurture_tools.local.schedules import parse

        timers = [
            _Timer(
                name=spec["name"],
                expression=parse(spec["expression"], spec["timezone"]),
                target_arn=self.stack.physical[function.logical_id]["Arn"],
                payload=spec["input"],
                retries=spec["retries"],
                dead_letter_arn=spec["dead_letter_arn"],
            )
            for function in functions.values()
            for spec in function.schedules
        ]
        handlers = {function.physical_name: function.load() for function in functions.values()}
        poller = SchedulePoller(session, handlers, timers)
        poller.start()
        self.pollers.append(poller)
        return poller

    def _tap_bus(self, session: Any) -> str:
        """A local-only queue receiving every event on the Nurture bus, so what
        the pipeline publishes can be read with the AWS CLI or boto3."""
        import json

        sqs, events = session.client("sqs"), session.client("events")
        url = sqs.create_queue(QueueName="nurture-local-bus-tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.environment["EVENT_BUS_NAME"]
        events.put_rule(
            Name="nurture-local-bus-tap", EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": ""}]})
        )
        events.put_targets(Rule="nurture-local-bus-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
        return url

    def _secret_values(self) -> dict[str, str]:
        from nurture.config.loader import load_config
        from nurture.ingest.form_tools import whsec

        config = load_config(self.config_dir)
        values = {"admin": self.keys.admin_key}
        for source in config.segment_sources.values():
            values[source.secret] = self.keys.write_key
        for form in config.forms.values():
            # Standard Webhooks secrets are whsec_<base64 key>: the form secret's bytes.
            secret = self.keys.form_secret
            values[form.secret] = whsec(secret) if form.auth == "standard-webhooks" else secret
        return values

    def _serve_api(self, gateway: ApiGateway) -> None:
        from werkzeug.serving import make_server

        self._http = make_server("127.0.0.1", self.api_port, gateway, threaded=True)
        self.api_port = self._http.server_port
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="api", daemon=True)
        self._http_thread.start()

    def stop(self) -> None:
        from nurture.core.clock import SystemClock, set_clock

        set_clock(SystemClock())
        for poller in self.pollers:
            poller.stopping.set()
        for poller in self.pollers:
            poller.join(timeout=5)
        if self._http is not None:
            self._http.shutdown()
        if self._moto is not None:
            self._stop_timelines()
            self._moto.stop()

    def _stop_timelines(self) -> None:
        """End the timelines still running (ABORTED), so none fails mid-step
        against an emulator that is going away."""
        import boto3

        state_machine = self.environment.get("STATE_MACHINE_ARN")
        if not state_machine:
            return
        sfn = boto3.client("stepfunctions", endpoint_url=self.endpoint, region_name=REGION)
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine, statusFilter="RUNNING")
        for page in pages:
            for execution in page["executions"]:
                with contextlib.suppress(sfn.exceptions.ExecutionDoesNotExist):
                    sfn.stop_execution(executionArn=execution["executionArn"], cause="the local stack stopped")
