"""Least privilege: each function's role grants what its code calls, and no more.

Two sources say what a function "uses", and the policies must agree with both:

1. `DYNAMODB_USES` below, a table written by reading each handler, what
   `nurture.wiring` builds for it and the store methods those use cases call:
   the DynamoDB operations of each function on the table and its indexes. The
   policy a function's role gets (after the SAM transform, so policy templates
   count as deployed) must grant exactly those: an operation more is a test
   failure, not a tolerance.
2. The calls the code really makes. `tests/integration/aws_calls.py` records,
   for every boto3 call, the function whose handler is on the stack (and calls
   the Step Functions interpreter makes for the state machine), while a
   selection of the integration tests runs in a child pytest (`SCENARIOS`:
   at least one test per function and per code path that touches AWS). Each
   recorded call, turned into the IAM action and resource ARN it needs, must
   be allowed by that role's policy, evaluated like IAM does (wildcards in
   actions and resources, conditions, explicit denies). And the DynamoDB
   operations recorded per function must be exactly `DYNAMODB_USES`: so the
   table can neither miss an operation the code needs (AccessDenied in
   production) nor keep one the code stopped using (a grant nobody needs).

Besides: no DynamoDB or SES action on every resource (`*`) anywhere, and
email only from the configured sender through the configuration set.

When a change makes a function call something new, the recording check names
the function, the action and the resource; grant it in template.yaml (and add
it to `DYNAMODB_USES` for DynamoDB), and if no scenario reaches the new path,
add the integration test that does to `SCENARIOS`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from functools import cache
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nurture_tools.local.moto_runtime import MOTO_CONFIG
from nurture_tools.local.template import LocalStack
from tests.integration.aws_calls import ACCOUNT, OUTPUT_VARIABLE, REGION, REPO
from tests.integration.test_template import load_template, sam_template_for_translation, translate_offline

pytestmark = pytest.mark.slow

TABLE, GSI1, GSI2 = "table", "gsi1", "gsi2"

# What each function's code does to the table: DynamoDB operation -> where.
# Read from the code (see the module docstring); the recording check proves it.
# The store methods behind them: BatchGetItem - identities, leads, events,
# tombstones, audience members; BatchWriteItem - events and identities,
# tombstones, erasure's deletes, audience membership; PutItem - a lead's save,
# an event written once, enrollments, touch and content claims, the send log;
# UpdateItem - the outbox clear, consent, preferences, soft bounces, the sweep
# budget; DeleteItem - a released claim; GetItem - an enrollment, a touch (a
# claim refused: delivered, or still being delivered), the send log, the sweep
# budget; Query - a lead's events, enrollments, touches, items (erasure),
# audience members; gsi1 - an account's leads; gsi2 - due leads.
DYNAMODB_USES: dict[str, dict[str, set[str]]] = {
    # Ingest, lead view (gsi1: the account), outcomes, next-fields, consent, erasure
    "ApiFunction": {
        "BatchGetItem": {TABLE},
        "BatchWriteItem": {TABLE},
        "Query": {TABLE, GSI1},
        "UpdateItem": {TABLE},
    },
    # The track consumer: lookups, the lead's save, events and identities, the outbox clear
    "TrackFunction": {"BatchGetItem": {TABLE}, "BatchWriteItem": {TABLE}, "PutItem": {TABLE}, "UpdateItem": {TABLE}},
    # A lead's enrollments: listed, created, stopped
    "EnrollFunction": {"BatchGetItem": {TABLE}, "PutItem": {TABLE}, "Query": {TABLE}},
    # The enrollment, the lead, its touches and events; the enrollment saved, the touch claimed;
    # the email's send log, release on rejection, graymail sunset (lead save and outbox clear)
    "AdvanceFunction": {
        "BatchGetItem": {TABLE},
        "DeleteItem": {TABLE},
        "GetItem": {TABLE},
        "PutItem": {TABLE},
        "Query": {TABLE},
        "UpdateItem": {TABLE},
    },
    # The touch of an event, consent, soft bounces, engagement through the track consumer
    "SesEventsFunction": {
        "BatchGetItem": {TABLE},
        "BatchWriteItem": {TABLE},
        "GetItem": {TABLE},
        "PutItem": {TABLE},
        "Query": {TABLE},
        "UpdateItem": {TABLE},
    },
    # Leads, and the audience membership items
    "AudienceSyncFunction": {"BatchGetItem": {TABLE}, "BatchWriteItem": {TABLE}, "Query": {TABLE}},
    # The lead; each reply's and alert's claim, released when delivery fails
    "ResponsesFunction": {"BatchGetItem": {TABLE}, "DeleteItem": {TABLE}, "GetItem": {TABLE}, "PutItem": {TABLE}},
    # The lead; each call task's claim, released when delivery fails
    "SalesTaskFunction": {"BatchGetItem": {TABLE}, "DeleteItem": {TABLE}, "GetItem": {TABLE}, "PutItem": {TABLE}},
    # The hand-off's context (events, gsi1: the account), its claims, the lead's enrollments stopped
    "HandoffFunction": {
        "BatchGetItem": {TABLE},
        "DeleteItem": {TABLE},
        "GetItem": {TABLE},
        "PutItem": {TABLE},
        "Query": {TABLE, GSI1},
    },
    # The lead; the escalation's claim, released when delivery fails
    "SalesTimerFunction": {"BatchGetItem": {TABLE}, "DeleteItem": {TABLE}, "GetItem": {TABLE}, "PutItem": {TABLE}},
    # Due leads (gsi2), the daily budget, the lead's save, a demotion's move, the outbox clear
    "SweepFunction": {
        "BatchGetItem": {TABLE},
        "BatchWriteItem": {TABLE},
        "GetItem": {TABLE},
        "PutItem": {TABLE},
        "Query": {GSI2},
        "UpdateItem": {TABLE},
    },
}

# Integration tests the recording runs: each function and each of its paths
# that calls AWS is reached by at least one (see the module docstring).
_EMF = "tests/integration/test_metrics.py::test_handlers_print_valid_emf_with_the_catalogued_metrics"
SCENARIOS: list[str] = [
    # the timeline: enrollment, Advance (email sent, hand-offs queued) through the state machine
    "tests/integration/test_timeline.py::test_a_warm_lead_runs_the_whole_track",
    # the API: ingest, preferences, outcomes, erasure; hand-off, recycle timers, a CRM outage
    "tests/integration/test_api.py::test_a_batch_is_on_the_queue_before_the_response",
    "tests/integration/test_api.py::test_saving_the_preference_form_stores_the_leads_choices",
    "tests/integration/test_sales.py::test_erasure_leaves_only_the_tombstone_in_the_table",
    "tests/integration/test_sales.py::test_a_rejection_recycles_the_lead_and_its_cool_down_ends_in_lead_recycled",
    "tests/integration/test_sales.py::test_a_crm_outage_leaves_the_hand_off_to_eventbridges_retry",
    "tests/integration/test_sales.py::test_a_hot_lead_is_handed_to_the_crm_and_sns_once_with_an_sla_timer",
    # audience sync: hand-offs and the reconciliation
    "tests/integration/test_audience_sync.py::test_the_scheduled_reconciliation_removes_a_member_the_events_missed",
    # SES feedback, form responses and call tasks, enrollments and stops, the due sweep, the API's consent
    f"{_EMF}[ses feedback]",
    f"{_EMF}[responses and sales tasks]",
    f"{_EMF}[enrollment]",
    f"{_EMF}[due sweep]",
    f"{_EMF}[api]",
    # the lead view's account, released claims and sends, graymail, demotion
    "tests/integration/test_release_and_decay_paths.py",
]

PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
# Roles the translation gives each function and the state machine.
MANAGED_POLICIES_WITHOUT_DATA_ACCESS = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",  # its own logs
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",  # traces
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",  # its event source queue
}


# ------------------------------------------------------------ the policies --


@cache
def _translated() -> dict[str, Any]:
    return translate_offline(sam_template_for_translation())


def _functions() -> list[str]:
    return sorted(name for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function")


def _state_machines() -> list[str]:
    return sorted(
        name for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::StateMachine"
    )


def _role(owner: str) -> dict[str, Any]:
    return _translated()["Resources"][f"{owner}Role"]["Properties"]


def _statements(owner: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _role(owner).get("Policies", [])
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Resolver:
    """Evaluates the intrinsics of the translated template to the names and
    ARNs the integration tests' emulated resources have (LocalStack's, prefix
    "test"). A secret's ARN ends in six random characters, different in every
    emulator: it resolves to a pattern matching any."""

    def __init__(self, physical: dict[str, dict[str, str]], parameters: dict[str, Any]) -> None:
        self.physical, self.parameters = physical, parameters
        self.secrets = {name for name, r in load_template()["Resources"].items() if r["Type"].endswith("::Secret")}

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.secrets:
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:test/{name}-??????"
        if name in self.physical:
            return self.physical[name]["Ref"]
        if name in self.parameters:
            return str(self.parameters[name].get("Default", ""))
        raise KeyError(f"cannot resolve Ref {name}")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.physical[logical_id][attribute]
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            variables = {key: self(item) for key, item in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables:
                    return str(variables[name])
                if "." in name and name.split(".", 1)[0] in self.physical:
                    return str(self({"Fn::GetAtt": name.split(".", 1)}))
                return self.ref(name)

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self(items))
        if function == "Fn::Select":
            index, items = argument
            return self(items)[int(self(index))]
        if function == "Fn::Split":
            separator, text = argument
            return str(self(text)).split(separator)
        return {key: self(item) for key, item in value.items()}


@pytest.fixture(scope="module")
def resolve():
    """A resolver onto the resources the integration tests provision."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws(config=MOTO_CONFIG):
            stack = LocalStack(REPO, boto3.session.Session(region_name=REGION), prefix="test")
            stack.provision({}, overrides={"NurtureHttpApi": "https://api.nurture.test"})
            physical = dict(stack.physical)
    return Resolver(physical, load_template().get("Parameters", {}))


# ------------------------------------------------------------- evaluation --


def _matches(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """IAM's condition operators the template uses; a key the request does not
    carry fails the condition, as IAM does (no ...IfExists here)."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in context:
                return False
            value, allowed = context[key], [str(item) for item in _as_list(expected)]
            if operator in ("StringEquals", "ArnEquals"):
                ok = value in allowed
            elif operator in ("StringLike", "ArnLike"):
                ok = any(_matches(pattern, value) for pattern in allowed)
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated by this test yet")
            if not ok:
                return False
    return True


def _statement_applies(statement: dict[str, Any], request: dict[str, Any], resolve: Resolver) -> bool:
    actions = _as_list(statement.get("Action", []))
    if not any(_matches(action, request["action"], case_sensitive=False) for action in actions):
        return False
    resources = [str(resource) for resource in _as_list(resolve(statement.get("Resource", [])))]
    if not any(_matches(resource, request["resource"]) for resource in resources):
        return False
    return _condition_holds(resolve(statement.get("Condition", {})), request.get("context", {}))


def is_allowed(owner: str, request: dict[str, Any], resolve: Resolver) -> bool:
    """IAM's verdict for one request of `owner`'s role: an explicit deny wins,
    then any allow; nothing else allows (the role's managed policies grant
    logs, traces and the event source queue only)."""
    statements = _statements(owner)
    if any(s["Effect"] == "Deny" and _statement_applies(s, request, resolve) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _statement_applies(s, request, resolve) for s in statements)


def _place(resource: str, table_arn: str) -> str | None:
    """table / gsi1 / gsi2 for an ARN of the table or its indexes."""
    if resource == table_arn:
        return TABLE
    if resource.startswith(f"{table_arn}/index/"):
        return resource.rsplit("/", 1)[1]
    return None


def _dynamodb_grants(owner: str, resolve: Resolver) -> dict[str, set[str]]:
    """The DynamoDB operations the role allows, and where (every operation
    DynamoDB has is tried against the table and each index)."""
    from botocore.session import get_session

    operations = get_session().get_service_model("dynamodb").operation_names
    table_arn = resolve.physical["LeadsTable"]["Arn"]
    places = {TABLE: table_arn, GSI1: f"{table_arn}/index/{GSI1}", GSI2: f"{table_arn}/index/{GSI2}"}
    granted: dict[str, set[str]] = {}
    for operation in operations:
        for place, arn in places.items():
            if is_allowed(owner, {"action": f"dynamodb:{operation}", "resource": arn, "context": {}}, resolve):
                granted.setdefault(operation, set()).add(place)
    return granted


# ----------------------------------------------------------- static checks --


def test_every_function_has_its_row_in_the_table_of_dynamodb_uses():
    # Given the functions of the template, Then each has its row (empty if it never touches the table)
    assert sorted(DYNAMODB_USES) == _functions()


def test_no_function_may_use_dynamodb_or_ses_on_every_resource():
    # Given every statement of every function's and state machine's role
    for owner in _functions() + _state_machines():
        assert set(_role(owner).get("ManagedPolicyArns", [])) <= MANAGED_POLICIES_WITHOUT_DATA_ACCESS, owner
        for statement in _statements(owner):
            actions = [str(action).lower() for action in _as_list(statement.get("Action", []))]
            data_actions = [a for a in actions if a.startswith(("dynamodb:", "ses:")) or a == "*"]
            if not data_actions:
                continue
            # Then no DynamoDB or SES action is granted by wildcard, nor on "*"
            assert not any("*" in action for action in data_actions), (owner, data_actions)
            resources = _as_list(statement.get("Resource", []))
            assert "*" not in resources, f"{owner} may {data_actions} on every resource"
            assert "NotResource" not in statement and "NotAction" not in statement, owner


def test_each_function_is_granted_exactly_the_dynamodb_operations_its_code_uses(resolve):
    # Given what each function's role allows on the table and its indexes
    for function in _functions():
        granted = _dynamodb_grants(function, resolve)

        # Then it is exactly what its code uses, operation by operation
        assert granted == DYNAMODB_USES[function], (
            f"{function}: granted but not used {_difference(granted, DYNAMODB_USES[function])}, "
            f"used but not granted {_difference(DYNAMODB_USES[function], granted)}"
        )
    # ... and the state machine touches no table
    for machine in _state_machines():
        assert _dynamodb_grants(machine, resolve) == {}, machine


def _difference(left: dict[str, set[str]], right: dict[str, set[str]]) -> dict[str, set[str]]:
    return {op: places - right.get(op, set()) for op, places in left.items() if places - right.get(op, set())}


def test_email_goes_out_only_as_the_configured_sender_through_the_configuration_set(resolve):
    # Given the sender and the configuration set of the deployment
    parameters = load_template()["Parameters"]
    sender = parameters["SenderEmail"]["Default"]
    configuration_set = resolve.physical["EmailConfigurationSet"]["Ref"]
    allowed = {
        f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{sender}",
        f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{sender.split('@', 1)[1]}",
        f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{configuration_set}",
    }
    senders = []
    for function in _functions():
        for statement in _statements(function):
            actions = [str(a).lower() for a in _as_list(statement.get("Action", []))]
            if not any(a.startswith("ses:") for a in actions):
                continue
            senders.append(function)
            # Then SES may be used for sending only, on the sender's identity
            # (the address, or its domain when the domain is what SES verified)
            # and the configuration set, and only with the sender as From
            assert actions == ["ses:sendemail"], (function, actions)
            assert set(_as_list(resolve(statement["Resource"]))) == allowed, function
            other = {"ses:FromAddress": f"someone-else@{sender.split('@', 1)[1]}"}
            request = {"action": "ses:SendEmail", "resource": sorted(allowed)[0], "context": other}
            assert not _statement_applies(statement, request, resolve), f"{function} may send as anyone"
    assert sorted(senders) == ["AdvanceFunction", "ResponsesFunction"]


# ---------------------------------------------------------- recorded calls --


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Any]:
    """The AWS calls of every function while the scenarios run (a child pytest
    with the recording plugin)."""
    output = tmp_path_factory.mktemp("aws-calls") / "calls.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update({OUTPUT_VARIABLE: str(output), "PYTHONPATH": str(REPO)})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.integration.aws_calls"]
        + SCENARIOS,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"the scenarios failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return json.loads(output.read_text())


def test_the_recording_understands_every_call(recorded):
    assert recorded["unknown"] == []


def test_every_function_and_the_state_machine_ran_in_the_scenarios(recorded):
    silent = {function for function, uses in DYNAMODB_USES.items() if not uses}
    assert set(_functions()) - silent <= set(recorded["calls"]), sorted(set(_functions()) - set(recorded["calls"]))
    assert set(_state_machines()) <= set(recorded["calls"])


def test_every_recorded_call_is_allowed_by_its_roles_policy(recorded, resolve):
    # Given every AWS request each function (and the state machine) made in the scenarios
    # When IAM's rules judge it against that owner's role
    refused = [
        f"{owner}: {request['action']} on {request['resource']} {request['context'] or ''} (in {request['tests'][0]})"
        for owner, requests in recorded["calls"].items()
        for request in requests
        if not is_allowed(owner, request, resolve)
    ]

    # Then every one is allowed
    assert not refused, "calls the policies would refuse:\n" + "\n".join(refused)


def test_the_table_of_dynamodb_uses_is_what_the_code_does(recorded, resolve):
    # Given the DynamoDB operations each function made in the scenarios
    table_arn = resolve.physical["LeadsTable"]["Arn"]
    for function in _functions():
        used: dict[str, set[str]] = {}
        for request in recorded["calls"].get(function, []):
            if request["action"].startswith("dynamodb:"):
                place = _place(request["resource"], table_arn)
                assert place, f"{function} used another table: {request['resource']}"
                used.setdefault(request["action"].split(":", 1)[1], set()).add(place)

        # Then they are exactly the table's row: nothing granted goes unused
        assert used == DYNAMODB_USES[function], (
            f"{function}: in the table but not seen {_difference(DYNAMODB_USES[function], used)}, "
            f"seen but not in the table {_difference(used, DYNAMODB_USES[function])}"
        )
