"""Reads template.yaml and provisions what it declares on the local emulator,
so tables, queues, the bus and the secret have one source of truth."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation short tags (!Ref, !GetAtt, !Sub ...) as {"Ref": x} etc."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class LocalFunction:
    logical_id: str
    code_dir: Path
    handler: str
    sqs_queues: list[str] = field(default_factory=list)  # logical ids of queues it consumes
    sqs_batch_size: int = 10
    physical_name: str = ""
    rule_queues: list[str] = field(default_factory=list)  # local queues fed by its EventBridge rules
    schedules: list[dict[str, Any]] = field(default_factory=list)  # its ScheduleV2 events, resolved

    def load(self) -> Any:
        """Import the handler from its CodeUri exactly as Lambda would."""
        module_name, _, attribute = self.handler.rpartition(".")
        unique = f"nurture_local_{self.logical_id}_{module_name}"
        if unique not in sys.modules:
            spec = importlib.util.spec_from_file_location(unique, self.code_dir / f"{module_name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
        return getattr(sys.modules[unique], attribute)


class LocalStack:
    """Provisions the template's stateful resources through boto3 clients."""

    def __init__(self, project_dir: Path, session: Any, prefix: str = "nurture-local") -> None:
        self.project_dir = project_dir
        self.template = load_template(project_dir / "template.yaml")
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.session = session
        self.prefix = prefix
        self.physical: dict[str, dict[str, str]] = {}  # logical id -> {"Ref": ..., "Arn": ...}

    def _of_type(self, kind: str) -> list[str]:
        return [lid for lid, res in self.resources.items() if res["Type"] == kind]

    def provision(self, secret_values: dict[str, str], overrides: dict[str, str] | None = None) -> None:
        """Create the template's resources. `overrides` gives physical values for
        resources served locally in another way (e.g. the API's URL)."""
        for logical_id, value in (overrides or {}).items():
            self.physical[logical_id] = {"Ref": value, "Arn": value, "Name": value}
        for logical_id in self._of_type("AWS::DynamoDB::Table"):
            self._table(logical_id, self.resources[logical_id]["Properties"])
        queues = self._of_type("AWS::SQS::Queue")
        for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in self.resources[q].get("Properties", {})):
            self._queue(logical_id, self.resources[logical_id].get("Properties", {}))
        for logical_id in self._of_type("AWS::Events::EventBus"):
            name = f"{self.prefix}-{logical_id}"
            arn = self.session.client("events").create_event_bus(Name=name)["EventBusArn"]
            self.physical[logical_id] = {"Ref": name, "Name": name, "Arn": arn}
        for logical_id in self._of_type("AWS::SecretsManager::Secret"):
            name = f"{self.prefix}/{logical_id}"
            properties = self.resources[logical_id]["Properties"]
            generate = properties.get("GenerateSecretString", {})
            if "SecretString" in properties:
                value = properties["SecretString"]
            elif "SecretStringTemplate" in generate or not generate:
                value = json.dumps(secret_values)
            else:  # a generated signing key, never typed in
                import secrets

                value = secrets.token_urlsafe(36)
            arn = self.session.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
            self.physical[logical_id] = {"Ref": arn, "Arn": arn, "Name": name}
        for logical_id in self._of_type("AWS::SNS::Topic"):
            name = f"{self.prefix}-{logical_id}"
            arn = self.session.client("sns").create_topic(Name=name)["TopicArn"]
            self.physical[logical_id] = {"Ref": arn, "Arn": arn, "TopicName": name, "Name": name}
        for logical_id in self._of_type("AWS::SES::ConfigurationSet"):
            name = f"{self.prefix}-{logical_id}"
            self.session.client("sesv2").create_configuration_set(ConfigurationSetName=name)
            self.physical[logical_id] = {"Ref": name, "Name": name}
        self._functions()
        for logical_id in self._of_type("AWS::IAM::Role"):
            self._iam_role(logical_id, self.resources[logical_id]["Properties"])
        for logical_id in self._of_type("AWS::Serverless::StateMachine"):
            self._state_machine(logical_id, self.resources[logical_id]["Properties"])
        self._rules()
        sender = self.template.get("Parameters", {}).get("SenderEmail", {}).get("Default")
        if sender:
            self.session.client("sesv2").create_email_identity(EmailIdentity=sender)

    def _role(self) -> str:
        iam = self.session.client("iam")
        name = f"{self.prefix}-execution-role"
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    }
                ],
            }
            return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]

    def _iam_role(self, logical_id: str, properties: dict[str, Any]) -> None:
        """The role itself (so its ARN resolves); the emulator does not enforce policies."""
        name = f"{self.prefix}-{logical_id}"
        trust = json.dumps(self._resolve_deep(properties["AssumeRolePolicyDocument"]))
        arn = self.session.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        self.physical[logical_id] = {"Ref": name, "Arn": arn, "Name": name}

    def _resolve_deep(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::Sub"):
            return self.resolve(value)
        if isinstance(value, dict):
            return {k: self._resolve_deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve_deep(v) for v in value]
        return value

    def _functions(self) -> None:
        """Register every function with the emulator's Lambda, so ARNs resolve
        and Step Functions can invoke them (routed to the Python handlers)."""
        import io
        import zipfile

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("app.py", "# served in-process by the local stack\n")
        role = self._role()
        client = self.session.client("lambda")
        for logical_id in self._of_type("AWS::Serverless::Function"):
            name = f"{self.prefix}-{logical_id}"
            arn = client.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": archive.getvalue()},
            )["FunctionArn"]
            self.physical[logical_id] = {"Ref": name, "Arn": arn, "Name": name}

    def _state_machine(self, logical_id: str, properties: dict[str, Any]) -> None:
        definition = (self.project_dir / properties["DefinitionUri"]).read_text()
        for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(self.resolve(value)))
        name = f"{self.prefix}-{logical_id}"
        arn = self.session.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=self._role(),
            type=properties.get("Type", "STANDARD"),
        )["stateMachineArn"]
        self.physical[logical_id] = {"Ref": arn, "Arn": arn, "Name": name}

    def _rules(self) -> None:
        """EventBridge rules that target functions never fire in moto: each feeds
        a local queue instead, which the runtime polls into the function."""
        sqs, events = self.session.client("sqs"), self.session.client("events")
        self.rule_queues: dict[str, list[str]] = {}
        for logical_id in self._of_type("AWS::Serverless::Function"):
            for event_id, event in (self.resources[logical_id]["Properties"].get("Events") or {}).items():
                if event["Type"] != "EventBridgeRule":
                    continue
                name = f"{self.prefix}-{logical_id}-{event_id}"
                url = sqs.create_queue(QueueName=name)["QueueUrl"]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                bus = self.resolve(event["Properties"].get("EventBusName", "default"))
                events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(event["Properties"]["Pattern"]))
                events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "local", "Arn": arn}])
                self.rule_queues.setdefault(logical_id, []).append(url)

    def _table(self, logical_id: str, properties: dict[str, Any]) -> None:
        """The table as the store's models define it (tests/unit/test_schema.py
        holds template.yaml's definition to the same models)."""
        from nurture.store.schema import table_definition, time_to_live_attribute

        name = f"{self.prefix}-{logical_id}"
        client = self.session.client("dynamodb")
        arn = client.create_table(**table_definition(name))["TableDescription"]["TableArn"]
        ttl = {"AttributeName": time_to_live_attribute(), "Enabled": True}
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        self.physical[logical_id] = {"Ref": name, "Arn": arn, "Name": name}

    def _queue(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = f"{self.prefix}-{logical_id}"
        attributes = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if key in properties:
                attributes[key] = str(properties[key])
        redrive = properties.get("RedrivePolicy")
        if redrive:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": self.resolve(redrive["deadLetterTargetArn"]),
                    "maxReceiveCount": int(redrive["maxReceiveCount"]),
                }
            )
        client = self.session.client("sqs")
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.physical[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def resolve(self, value: Any) -> Any:
        """Evaluate the intrinsics the template uses for names and ARNs."""
        if isinstance(value, dict) and "Ref" in value:
            target = value["Ref"]
            if target in self.physical:
                return self.physical[target]["Ref"]
            pseudo = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
            if target in pseudo:
                return pseudo[target]
            parameter = self.template.get("Parameters", {}).get(target)
            if parameter is not None:
                return str(parameter.get("Default", ""))
            raise KeyError(f"cannot resolve Ref {target}")
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return self.physical[logical_id][attribute]
        if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            import re

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                pseudo = {
                    "AWS::Region": "us-east-1",
                    "AWS::AccountId": "123456789012",
                    "AWS::Partition": "aws",
                    "AWS::StackName": self.prefix,
                }
                if name in pseudo:
                    return pseudo[name]
                if "." in name:
                    return str(self.resolve({"Fn::GetAtt": name.split(".", 1)}))
                return str(self.resolve({"Ref": name}))

            return re.sub(r"\$\{([^}]+)\}", substitute, value["Fn::Sub"])
        return value

    def function_environment(self) -> dict[str, str]:
        """Globals plus every function's own variables: the functions share one
        process locally, and the template never gives one name two values."""
        variables = dict(
            self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        for logical_id in self._of_type("AWS::Serverless::Function"):
            own = (self.resources[logical_id]["Properties"].get("Environment") or {}).get("Variables") or {}
            variables.update(own)
        return {name: str(self.resolve(value)) for name, value in variables.items()}

    def functions(self) -> dict[str, LocalFunction]:
        found = {}
        for logical_id in self._of_type("AWS::Serverless::Function"):
            properties = self.resources[logical_id]["Properties"]
            function = LocalFunction(
                logical_id,
                self.project_dir / properties["CodeUri"],
                properties["Handler"],
                physical_name=self.physical.get(logical_id, {}).get("Name", logical_id),
                rule_queues=getattr(self, "rule_queues", {}).get(logical_id, []),
            )
            for event_id, event in (properties.get("Events") or {}).items():
                if event["Type"] == "ScheduleV2":
                    spec = event["Properties"]
                    function.schedules.append(
                        {
                            "name": f"{logical_id}-{event_id}",
                            "expression": str(self.resolve(spec["ScheduleExpression"])),
                            "timezone": spec.get("ScheduleExpressionTimezone"),
                            "input": spec.get("Input"),
                            "retries": int((spec.get("RetryPolicy") or {}).get("MaximumRetryAttempts", 185)),
                            "dead_letter_arn": self._resolved_or_none((spec.get("DeadLetterConfig") or {}).get("Arn")),
                        }
                    )
                if event["Type"] == "SQS":
                    function.sqs_queues.append(event["Properties"]["Queue"]["Fn::GetAtt"][0])
                    function.sqs_batch_size = int(event["Properties"].get("BatchSize", 10))
            found[logical_id] = function
        return found

    def _resolved_or_none(self, value: Any) -> Any:
        """A value naming a resource this stack has not provisioned (it was read
        only for its functions) resolves to None."""
        try:
            return self.resolve(value)
        except KeyError:
            return None

    def api_routes(self, function_id: str) -> list[tuple[str, str]]:
        events = self.resources[function_id]["Properties"].get("Events") or {}
        return [
            (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
            for e in events.values()
            if e["Type"] == "HttpApi"
        ]
