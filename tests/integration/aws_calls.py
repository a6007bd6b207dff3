"""Which AWS calls each function of template.yaml makes, and what IAM checks for them.

A pytest plugin (`-p tests.integration.aws_calls`): while the tests it is
loaded into run, every boto3 call is recorded with the function whose handler
made it. The function is found on the call stack: the innermost frame running
a handler module of the template (`functions/<CodeUri>/<module>.py`) names it,
however the test loaded the handler (import, spec loader, the local stack's
threads, moto's Step Functions invoking a task). A call made by moto's Step
Functions interpreter itself (an `sqs:sendMessage` task) belongs to the state
machine. Calls made by the tests themselves (set-up, assertions) belong to
nobody and are not recorded.

At the end of the session the calls are written, as the IAM action and
resource ARNs each needs, to the JSON file named by NURTURE_AWS_CALLS_FILE.
`requests_of` is that translation from a boto3 call to IAM's terms; it fails
on a call it does not know, so a new kind of call cannot slip past the policy
check (tests/integration/test_iam_policies.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
OUTPUT_VARIABLE = "NURTURE_AWS_CALLS_FILE"


class UnknownCallError(Exception):
    """A boto3 call this module cannot express in IAM's terms yet."""


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def _queue_arn(url: str) -> str:
    return _arn("sqs", url.rstrip("/").rsplit("/", 1)[1])


def _bus_arn(name: str | None) -> str:
    name = name or "default"
    return name if name.startswith("arn:") else _arn("events", f"event-bus/{name}")


def _table_arn(name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else _arn("dynamodb", f"table/{name}")
    return f"{arn}/index/{index}" if index else arn


_DYNAMODB_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_ADDRESS = re.compile(r"<([^>]+)>\s*$")


def requests_of(service: str, operation: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The IAM requests one call makes: [{"action", "resource", "context"}]."""

    def one(action: str, resource: str, **context: str) -> dict[str, Any]:
        return {"action": action, "resource": resource, "context": context}

    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [one(f"dynamodb:{operation}", _table_arn(table)) for table in params["RequestItems"]]
        if operation == "TransactWriteItems":
            return [
                one(f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", _table_arn(request["TableName"]))
                for item in params["TransactItems"]
                for kind, request in item.items()
            ]
        if operation == "TransactGetItems":
            return [one("dynamodb:GetItem", _table_arn(item["Get"]["TableName"])) for item in params["TransactItems"]]
        if "TableName" in params:
            return [one(f"dynamodb:{operation}", _table_arn(params["TableName"], params.get("IndexName")))]
    if service == "sqs" and "QueueUrl" in params:
        action = operation.removesuffix("Batch")  # SendMessageBatch is authorised as sqs:SendMessage
        return [one(f"sqs:{action}", _queue_arn(params["QueueUrl"]))]
    if service == "sns" and operation == "Publish":
        return [one("sns:Publish", params["TopicArn"])]
    if service == "events" and operation == "PutEvents":
        buses = {entry.get("EventBusName") for entry in params["Entries"]}
        return [one("events:PutEvents", _bus_arn(bus)) for bus in sorted(buses, key=str)]
    if service == "secretsmanager" and operation in ("GetSecretValue", "DescribeSecret"):
        secret = params["SecretId"]
        if not secret.startswith("arn:"):
            raise UnknownCallError(f"secret {secret!r} named, not given by ARN: its policy cannot be checked")
        return [one(f"secretsmanager:{operation}", secret)]
    if service == "stepfunctions":
        if "stateMachineArn" in params:
            return [one(f"states:{operation}", params["stateMachineArn"])]
        if "executionArn" in params:
            return [one(f"states:{operation}", params["executionArn"])]
    if service == "scheduler" and operation in ("CreateSchedule", "UpdateSchedule", "GetSchedule", "DeleteSchedule"):
        schedule = _arn("scheduler", f"schedule/{params.get('GroupName') or 'default'}/{params['Name']}")
        found = [one(f"scheduler:{operation}", schedule)]
        role = (params.get("Target") or {}).get("RoleArn")
        if role:
            found.append(one("iam:PassRole", role, **{"iam:PassedToService": "scheduler.amazonaws.com"}))
        return found
    if service == "lambda" and operation == "Invoke":
        name = params["FunctionName"]
        return [one("lambda:InvokeFunction", name if name.startswith("arn:") else _arn("lambda", f"function:{name}"))]
    if service == "sesv2" and operation == "SendEmail":
        sender = params["FromEmailAddress"]
        match = _ADDRESS.search(sender)
        address = (match.group(1) if match else sender).strip()
        context = {"ses:FromAddress": address}
        found = [one("ses:SendEmail", _arn("ses", f"identity/{address}"), **context)]
        if params.get("ConfigurationSetName"):
            configuration_set = _arn("ses", f"configuration-set/{params['ConfigurationSetName']}")
            found.append(one("ses:SendEmail", configuration_set, **context))
        return found
    raise UnknownCallError(f"{service}.{operation}: say in tests/integration/aws_calls.py what IAM checks for it")


# ---------------------------------------------------------------- the plugin --


def handler_files() -> dict[str, str]:
    """Each handler module of the template (its real path) -> the function's logical id."""
    from nurture_tools.local.template import load_template

    files = {}
    for name, resource in load_template(REPO / "template.yaml")["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            module = properties["Handler"].rpartition(".")[0]
            files[os.path.realpath(REPO / properties["CodeUri"] / f"{module}.py")] = name
    return files


def state_machines() -> list[str]:
    from nurture_tools.local.template import load_template

    resources = load_template(REPO / "template.yaml")["Resources"]
    return [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::StateMachine"]


class Recorder:
    """Records, per function, the IAM requests of the AWS calls its handler makes."""

    def __init__(self) -> None:
        self.files = handler_files()
        machines = state_machines()
        self.state_machine = machines[0] if len(machines) == 1 else None
        self.calls: dict[str, dict[tuple[str, str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
        self.test = ""  # the node id of the test running, to say where a request was seen
        self.unknown: set[str] = set()
        self._lock = threading.Lock()
        self._original: Any = None

    def owner(self) -> str | None:
        frame = sys._getframe(2)
        in_step_functions = False
        while frame is not None:
            filename = frame.f_code.co_filename
            name = self.files.get(filename) or self.files.get(os.path.realpath(filename))
            if name:
                return name
            if f"{os.sep}moto{os.sep}stepfunctions{os.sep}" in filename:
                in_step_functions = True
            frame = frame.f_back
        return self.state_machine if in_step_functions else None

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        owner = self.owner()
        if owner is None:
            return
        try:
            requests = requests_of(service, operation, params)
        except UnknownCallError as error:
            with self._lock:
                self.unknown.add(f"{owner}: {error}")
            return
        with self._lock:
            for request in requests:
                key = (request["action"], request["resource"], json.dumps(request["context"], sort_keys=True))
                self.calls[owner][key].add(self.test)

    def install(self) -> None:
        from botocore.client import BaseClient

        recorder, original = self, BaseClient._make_api_call
        self._original = original

        def recording(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            recorder.record(client.meta.service_model.service_name, operation_name, api_params)
            return original(client, operation_name, api_params)

        BaseClient._make_api_call = recording

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        if self._original is not None:
            BaseClient._make_api_call = self._original

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": {
                owner: [
                    {"action": a, "resource": r, "context": json.loads(c), "tests": sorted(requests[(a, r, c)])}
                    for a, r, c in sorted(requests)
                ]
                for owner, requests in sorted(self.calls.items())
            },
            "unknown": sorted(self.unknown),
        }


_recorder: Recorder | None = None


def pytest_configure(config: Any) -> None:
    global _recorder
    _recorder = Recorder()
    _recorder.install()


def pytest_runtest_setup(item: Any) -> None:
    if _recorder is not None:
        _recorder.test = item.nodeid


def pytest_unconfigure(config: Any) -> None:
    if _recorder is None:
        return
    _recorder.uninstall()
    output = os.environ.get(OUTPUT_VARIABLE)
    if output:
        Path(output).write_text(json.dumps(_recorder.as_json(), indent=1))
