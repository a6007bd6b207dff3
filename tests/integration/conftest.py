"""Handlers under moto, with the resources created from template.yaml."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nurture import wiring
from nurture_tools.local.moto_runtime import MOTO_CONFIG
from nurture_tools.local.template import LocalStack
from tests.conftest import CONFIG_DIR, PROJECT_DIR

WRITE_KEY = "test-write-key"
ADMIN_KEY = "test-admin-key"
FORM_SECRET = "test-form-secret"
TYPEFORM_SECRET = "test-typeform-secret"
TALLY_SECRET = "test-tally-secret"
WEBINAR_SECRET = "whsec_dGVzdC13ZWJpbmFyLXNpZ25pbmcta2V5"  # Standard Webhooks: whsec_ and the key in base64


def ingest_record(*calls: dict[str, Any], received_at: float | None = None, message_id: str | None = None) -> dict:
    """Segment calls as the API queues them: one SQS record for the track function."""
    from nurture.adapters.aws import _message_bodies
    from nurture.ingest.segment import parse_request

    when = time.time() if received_at is None else received_at
    (body,) = _message_bodies(parse_request(json.dumps({"batch": list(calls)}).encode(), None, "website", when).events)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "h",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def warm_revops_lead(user: str, email: str) -> str:
    """Through the real track function: a RevOps leader at a good-fit insurer who
    completed the ROI calculator and attended a webinar — a warm lead. Its id."""
    from track.app import handler

    from nurture import wiring

    traits = {"email": email, "title": "VP Revenue Operations", "industry": "Insurance", "employees": 900}
    calls = [
        {"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": {**traits, "country": "GB"}},
        {"type": "track", "userId": user, "event": "ROI Calculator Completed", "messageId": f"roi-{user}"},
        {
            "type": "track",
            "userId": user,
            "event": "Webinar Attended",
            "messageId": f"web-{user}",
            "properties": {"webinar_id": "pipeline-hygiene"},
        },
    ]
    handler({"Records": [ingest_record(*calls)]}, None)
    (lead_id,) = wiring.get_store().lookup_identities([f"email#{email}"]).values()
    return lead_id


def provision(session: Any, prefix: str, monkeypatch: Any, log_level: str = "WARNING") -> dict[str, str]:
    """The template's resources in moto (already mocking), with the test keys,
    and the functions' environment set as the template sets it."""
    stack = LocalStack(PROJECT_DIR, session, prefix=prefix)
    stack.provision(
        {
            "admin": ADMIN_KEY,
            "website": WRITE_KEY,
            "product_app": "product-key",
            "forms_signing": FORM_SECRET,
            "forms_key": FORM_SECRET,
            "typeform_signing": TYPEFORM_SECRET,
            "tally_signing": TALLY_SECRET,
            "webinar_signing": WEBINAR_SECRET,
        },
        overrides={"NurtureHttpApi": "https://api.nurture.test"},
    )
    env = stack.function_environment()
    env.update(NURTURE_CONFIG_DIR=str(CONFIG_DIR), POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL=log_level)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@dataclass
class Deployed:
    session: Any
    env: dict[str, str]
    bus_tap_url: str

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def bus_events(self) -> list[dict[str, Any]]:
        """Everything published on the Nurture bus so far (drains the tap queue)."""
        sqs, found = self.client("sqs"), []
        while True:
            messages = sqs.receive_message(QueueUrl=self.bus_tap_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.bus_tap_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def deployed(monkeypatch):
    """The template's table, queues, bus and secret in moto, and the functions'
    environment as the template sets it."""
    with mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(region_name="us-east-1")
        env = provision(session, "test", monkeypatch)
        sqs, events = session.client("sqs"), session.client("events")
        tap = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name="tap", EventBusName=env["EVENT_BUS_NAME"], EventPattern=json.dumps({"source": ["nurture"]})
        )
        events.put_targets(Rule="tap", EventBusName=env["EVENT_BUS_NAME"], Targets=[{"Id": "tap", "Arn": tap_arn}])
        wiring.reset()
        yield Deployed(session, env, tap)
        wiring.reset()
