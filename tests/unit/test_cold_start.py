"""What a cold start loads and builds before the first request needs it.

Every function's module is imported in a fresh process the way Lambda does
(its folder first on sys.path), and may load only the shared core, the
configuration's loader, the AWS adapters and the wiring: the use cases come
with the factory the first invocation calls, the AWS SDK with the first
client, PyYAML with the first configuration load. The wiring builds a client
only when a request first calls its service. (How long any of it takes is the
benchmark's business, bench/README.md "cold_start", not the tests'.)"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import CONFIG_DIR, PROJECT_DIR

FUNCTIONS = sorted(path.parent.name for path in (PROJECT_DIR / "functions").glob("*/app.py"))

# Loaded later, by what a request uses: the SDK (boto3 is not used at all:
# botocore's session builds the clients; the top-level `botocore` package is
# Powertools' user-agent hook and is light), the models, the YAML parser,
# X-Ray (only when tracing is enabled).
HEAVY = ("boto3", "s3transfer", "botocore.session", "botocore.client", "urllib3", "pynamodb", "yaml", "aws_xray_sdk")
# What a handler module may load of Nurture's own: nothing above the wiring's
# own imports (the use cases are imported by their factories).
ALLOWED_NURTURE = ("nurture.core", "nurture.config", "nurture.adapters", "nurture.wiring")

_IMPORT = """
import importlib.util, json, sys
sys.path.insert(0, {folder!r})
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_import(function: str) -> list[str]:
    folder = PROJECT_DIR / "functions" / function
    code = _IMPORT.format(folder=str(folder), path=str(folder / "app.py"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=folder)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_function_is_checked():
    # every function of the template is one of the handler folders checked here
    from nurture_tools.local.template import load_template

    resources = load_template(PROJECT_DIR / "template.yaml")["Resources"].values()
    code = {r["Properties"]["CodeUri"] for r in resources if r["Type"] == "AWS::Serverless::Function"}
    assert code == {f"functions/{name}" for name in FUNCTIONS}
    assert {"api", "track", "timeline", "sweeps"} <= set(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_importing_a_handler_loads_no_sdk_models_or_parser(function):
    # Given a fresh process, When the handler's module is imported as Lambda does
    modules = _modules_after_import(function)
    # Then none of what the first request brings in is loaded yet
    loaded = sorted(m for m in modules if any(m == heavy or m.startswith(heavy + ".") for heavy in HEAVY))
    assert loaded == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_importing_a_handler_loads_no_use_case(function):
    # Given a fresh process, When the handler's module is imported as Lambda does
    modules = _modules_after_import(function)
    # Then Nurture's use cases, store and scoring wait for the factory that needs them
    nurture = [m for m in modules if m.startswith("nurture.")]
    assert nurture, "the handler imports Nurture"
    beyond = sorted(m for m in nurture if not any(m == a or m.startswith(a + ".") for a in ALLOWED_NURTURE))
    assert beyond == []


class _Client:
    """A service client that answers what the publisher and the secrets ask."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.calls: list[str] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls.append("PutEvents")
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e1"} for _ in Entries]}


class _Session:
    def __init__(self) -> None:
        self.clients: dict[str, _Client] = {}

    def create_client(self, service: str) -> _Client:
        self.clients[service] = _Client(service)
        return self.clients[service]


@pytest.fixture
def session(monkeypatch):
    """The wiring on the project's configuration, with botocore's session replaced."""
    from nurture import wiring
    from nurture.adapters import aws

    for name, value in {
        "TABLE_NAME": "nurture-leads",
        "INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
        "EVENT_BUS_NAME": "nurture",
        "API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys",
        "NURTURE_CONFIG_DIR": str(CONFIG_DIR),
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    fake = _Session()
    monkeypatch.setattr(aws, "_session", lambda: fake)
    yield fake
    monkeypatch.undo()  # the real session back before the wiring forgets the fake's clients
    wiring.reset()


def test_the_track_consumer_is_built_with_the_table_client_only(session):
    from nurture import wiring

    # When the track function's use case is built (its first invocation)
    wiring.get_tracker()
    # Then only DynamoDB's client exists: the bus's is built when an event is published
    assert sorted(session.clients) == ["dynamodb"]


def test_a_lazy_client_is_built_at_its_first_call_and_shared(session):
    from nurture import wiring

    # Given the track consumer and the API's ingestor, both wired
    wiring.get_tracker()
    wiring.get_ingestor()
    assert "events" not in session.clients
    # When a lead event is published
    wiring.get_publisher().publish([{"type": "lead.became_warm", "detail": {"lead_id": "L1"}}])
    wiring.get_publisher().publish([{"type": "lead.became_hot", "detail": {"lead_id": "L1"}}])
    # Then the bus's client was built once, and it made both calls
    assert session.clients["events"].calls == ["PutEvents", "PutEvents"]
    assert sorted(session.clients) == ["dynamodb", "events"]


def test_the_timeline_store_is_built_when_a_use_case_first_calls_it(session, monkeypatch):
    from nurture import wiring

    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:nurture")
    # When the enroll function's use case is built
    enroller = wiring.get_enroller()
    # Then neither the timeline store (PynamoDB's models) nor Step Functions' client exists yet
    assert wiring.get_timeline_store.cache_info().currsize == 0
    assert sorted(session.clients) == ["dynamodb"]
    # When the use case first reaches for its timelines
    enrollments = enroller.timelines.enrollments
    # Then it gets the one store of the process
    assert enrollments.__self__ is wiring.get_timeline_store()
    assert wiring.get_timeline_store.cache_info().currsize == 1
