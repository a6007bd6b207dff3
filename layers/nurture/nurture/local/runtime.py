"""The embedded local stack: moto in server mode, the template's resources,
the API on HTTP and the SQS -> function pollers, all in one process."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nurture.local.apigw import ApiGateway, lambda_context
from nurture.local.template import LocalFunction, LocalStack

logger = logging.getLogger("nurture.local")
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
    installed = Path(__file__).resolve().parents[4]
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
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


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
    ) -> None:
        self.time_scale = time_scale
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

        from nurture.clock import ScaledClock, set_clock
        from nurture.local import moto_runtime

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
        self.stack.provision(self._secret_values(), overrides={"NurtureApi": "local-api"})
        self.environment = self.stack.function_environment()
        self.environment["NURTURE_CONFIG_DIR"] = str(self.config_dir)
        # No network here: audience sync records what it would send to the ad platforms.
        self.environment["NURTURE_AD_PLATFORMS"] = "local"
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
        api_id = next(fid for fid in functions if self.stack.api_routes(fid))
        self._serve_api(ApiGateway(self.stack.api_routes(api_id), functions[api_id].load(), api_id))
        # Links in email point at this local API.
        self.environment["PUBLIC_API_URL"] = self.api_url
        os.environ["PUBLIC_API_URL"] = self.api_url
        wiring.reset()

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
        from nurture.config import load_config

        config = load_config(self.config_dir)
        values = {"admin": self.keys.admin_key}
        for source in config.segment_sources.values():
            values[source.secret] = self.keys.write_key
        for form in config.forms.values():
            values[form.secret] = self.keys.form_secret
        return values

    def _serve_api(self, gateway: ApiGateway) -> None:
        from werkzeug.serving import make_server

        self._http = make_server("127.0.0.1", self.api_port, gateway, threaded=True)
        self.api_port = self._http.server_port
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="api", daemon=True)
        self._http_thread.start()

    def stop(self) -> None:
        from nurture.clock import SystemClock, set_clock

        set_clock(SystemClock())
        for poller in self.pollers:
            poller.stopping.set()
        for poller in self.pollers:
            poller.join(timeout=5)
        if self._http is not None:
            self._http.shutdown()
        if self._moto is not None:
            self._moto.stop()
