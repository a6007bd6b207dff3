"""The local stack end to end: `nurture serve`'s runtime on free ports, real clients."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest

from nurture import wiring
from nurture_tools.local.runtime import LocalKeys, LocalRuntime
from tests.conftest import PROJECT_DIR

WRITE_KEY = "e2e-write-key"
ADMIN_KEY = "e2e-admin-key"
FORM_SECRET = "e2e-form-secret"


@pytest.fixture(autouse=True)
def aws_credentials():
    """The runtime sets the endpoint and credentials for its own emulator."""


class Stack:
    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.api_url = runtime.api_url
        self.session = boto3.session.Session(region_name="us-east-1")

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.runtime.endpoint)

    def http(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict]:
        request = urllib.request.Request(self.api_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def lead(self, reference: str) -> tuple[int, dict]:
        return self.http("GET", f"/v1/leads/{reference}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    def wait_until_ingested(self, timeout: float = 10.0) -> None:
        """Until the ingest queue holds nothing, visible or in flight."""
        sqs, url = self.client("sqs"), self.runtime.environment["INGEST_QUEUE_URL"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            if (
                attributes["ApproximateNumberOfMessages"] == "0"
                and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
            ):
                return
            time.sleep(0.05)
        raise AssertionError("the ingest queue did not drain")

    def table_items(self) -> list[dict]:
        return self.client("dynamodb").scan(TableName=self.runtime.environment["TABLE_NAME"])["Items"]

    def bus_events(self) -> list[dict]:
        sqs, found = self.client("sqs"), []
        while True:
            messages = sqs.receive_message(QueueUrl=self.runtime.bus_tap_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.runtime.bus_tap_url, ReceiptHandle=message["ReceiptHandle"])


@contextlib.contextmanager
def running_stack(time_scale: float = 1.0, config_dir=None):
    """The local stack on free ports; the process environment is restored after."""
    saved = dict(os.environ)
    runtime = LocalRuntime(
        PROJECT_DIR,
        aws_port=0,
        api_port=0,
        config_dir=config_dir,
        keys=LocalKeys(WRITE_KEY, ADMIN_KEY, FORM_SECRET),
        time_scale=time_scale,
    )
    runtime.start()
    try:
        yield Stack(runtime)
    finally:
        runtime.stop()
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


@pytest.fixture(scope="module")
def stack():
    with running_stack() as running:
        yield running
