"""Checks of template.yaml that need no AWS account.

1. The SAM template translates offline to CloudFormation that cfn-lint accepts.
2. `sam build` (the CLI from NURTURE_SAM, set by `make test`) builds it.
3. The HTTP API's routes declared in the template are exactly the Chalice
   app's routes, each once, in payload format 2.0, with no $default route.
4. The functions get exactly the environment variables the code reads.
5. Hygiene: every route throttled in its group, the access log's fields,
   every log group expiring,
   every topic encrypted (IAM: tests/integration/test_iam_policies.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from samtranslator.yaml_helper import intrinsics_multi_constructor

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
SAM_BUILD_TIMEOUT_S = 600

# What the code reads from the environment (see Globals.Function in the template).
EXPECTED_ENV_VARS = {
    "TABLE_NAME",
    "INGEST_QUEUE_URL",
    "EVENT_BUS_NAME",
    "API_KEYS_SECRET_ARN",
    "NURTURE_CONFIG_DIR",
    "EVENT_RETENTION_DAYS",
    "SWEEP_SCHEDULE",  # every lead write keys the due index by the sweep's schedule
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags (!Ref, !Sub, !GetAtt ...).

    A subclass, so that yaml.SafeLoader itself stays strict for everyone else
    (samtranslator.yaml_helper.yaml_parse registers the tags on SafeLoader).
    """


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template() -> dict[str, Any]:
    """template.yaml as CloudFormation sees it: !Ref X becomes {"Ref": "X"} etc."""
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


class _NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which asks IAM.

    The template names no AWS managed policy in Policies (only policy
    templates), so the translator never needs the name -> ARN map.
    """

    def load(self) -> dict[str, str]:
        return {}


def _format_matches(matches: list[Any]) -> str:
    return "\n".join(f"{m.rule.id} {m.message} ({Path(m.filename).name}:{m.linenumber})" for m in matches)


# --------------------------------------------------------------------------- 1


def sam_template_for_translation() -> dict[str, Any]:
    """The SAM template, with local code folders replaced by S3 URIs the way
    `sam package` does it (the translator accepts nothing else) and the state
    machine's definition inlined (so cfn-lint also checks the ASL and its
    substitutions)."""
    template = load_template()
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://nurture-artifacts/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://nurture-artifacts/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            definition_file = REPO / resource["Properties"].pop("DefinitionUri")
            resource["Properties"]["Definition"] = json.loads(definition_file.read_text())
    return template


def translate_offline(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """The CloudFormation the SAM transform makes of `template`, offline: with a
    region for the translator's ARNs (it asks boto3 otherwise), the given
    parameter values (the defaults otherwise) and no call to IAM."""
    from samtranslator.translator.transform import transform

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(template, {"AWS::Region": "us-east-1", **parameters}, _NoManagedPolicies())


def test_template_translates_offline_and_passes_cfn_lint(tmp_path):
    from cfnlint.api import lint_file
    from cfnlint.config import ManualArgs

    # Given the SAM template as `sam package` leaves it
    template = sam_template_for_translation()

    # When the SAM transform runs offline and cfn-lint checks both the SAM
    # template (cfn-lint validates SAM resources against SAM's own schema) and
    # the CloudFormation it was translated to
    translated = translate_offline(template)
    translated_file = tmp_path / "template.json"
    translated_file.write_text(json.dumps(translated, indent=2))
    # Default rules: errors and warnings. Informational rules (I...) stay off:
    # on the translated output they flag SAM's own generated permissions
    # (I3042, "arn:aws:" partition hardcoded by the translator), which the
    # template cannot influence.
    config = ManualArgs(regions=["us-east-1"])
    sam_matches = lint_file(TEMPLATE, config=config)
    cfn_matches = lint_file(translated_file, config=config)

    # Then both are clean: not even warnings
    assert not sam_matches, "cfn-lint on template.yaml:\n" + _format_matches(sam_matches)
    assert not cfn_matches, "cfn-lint on the translated template:\n" + _format_matches(cfn_matches)
    # ... and the translation has what the application relies on
    types = {r["Type"] for r in translated["Resources"].values()}
    assert {
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::EventSourceMapping",
        "AWS::ApiGatewayV2::Api",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Events::EventBus",
        "AWS::SecretsManager::Secret",
    } <= types


# --------------------------------------------------------------------------- 2


def _sam_binary() -> Path:
    """The SAM CLI that `make test` installs into .venv-sam and passes as NURTURE_SAM."""
    tried = []
    if os.environ.get("NURTURE_SAM"):
        tried.append(Path(os.environ["NURTURE_SAM"]).absolute())
    tried.append(REPO / ".venv-sam" / "bin" / "sam")
    for candidate in tried:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "No SAM CLI found (tried: "
        + ", ".join(str(p) for p in tried)
        + "). Run the tests with `make test`, which installs it into .venv-sam "
        "and passes its path as NURTURE_SAM."
    )


def _copy_project(dest: Path) -> None:
    """Copy what `sam build` reads, without caches, virtualenvs or build output."""
    ignore = shutil.ignore_patterns("__pycache__", ".venv*", "*.egg-info", ".pytest_cache", ".aws-sam")
    dest.mkdir()
    shutil.copy2(TEMPLATE, dest / "template.yaml")
    for folder in ("functions", "layers", "config"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)


def test_sam_build_succeeds(tmp_path):
    # Given a copy of the project (so the build cannot touch the working tree)
    # and the SAM CLI; the builds run locally (no container) with python3.11
    # from PATH and pip install from PyPI
    sam = _sam_binary()
    project = tmp_path / "project"
    _copy_project(project)
    build_dir = tmp_path / "build"
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    on_path = shutil.which("python3.11", path=env.get("PATH"))
    if on_path is None and sys.version_info[:2] == (3, 11):
        # The builder needs a python3.11 executable; this interpreter is one.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    # When sam build runs
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(sam), "build", "--template-file", "template.yaml", "--build-dir", str(build_dir)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=SAM_BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"sam build took longer than {SAM_BUILD_TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}")
    print(f"sam build took {time.monotonic() - started:.1f} s")

    # Then it succeeds
    assert result.returncode == 0, (
        f"sam build failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    # ... the shared layer holds the nurture package where Lambda imports it from
    # (/opt/python/nurture) next to its dependencies
    layer = build_dir / "NurtureLayer" / "python"
    assert (layer / "nurture" / "__init__.py").is_file()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert (layer / "yaml").is_dir()
    assert (layer / "pynamodb").is_dir()
    # ... built for Lambda's arm64 Python 3.11 (PyYAML's and MarkupSafe's C extensions)
    extensions = sorted(p.name for p in layer.rglob("*.so"))
    assert extensions and all("aarch64" in name and "cpython-311" in name for name in extensions), extensions
    # ... and only production code: no local stack, demo, report or command line,
    # and not boto3/botocore, which the Lambda runtime provides
    assert not (layer / "nurture_tools").exists()
    assert not (layer / "botocore").exists() and not (layer / "boto3").exists()
    assert sorted(p.name for p in (layer / "nurture").glob("*.py")) == ["__init__.py", "wiring.py"]
    # ... the API function holds the Chalice app and Chalice's runtime, not its
    # command line and dependencies: a few hundred KB beside the layer
    api = build_dir / "ApiFunction"
    assert (api / "app.py").is_file()
    assert sorted(p.name for p in (api / "chalice").iterdir()) == ["__init__.py", "app.py"]
    assert not (api / "botocore").exists()
    api_bytes = sum(p.stat().st_size for p in api.rglob("*") if p.is_file())
    assert api_bytes < 5 * 1024 * 1024, f"the API function's artifact is {api_bytes} bytes"
    assert (build_dir / "TrackFunction" / "app.py").is_file()
    # ... and the config layer is config/ itself, so its YAML files end up
    # directly in /opt, which is what NURTURE_CONFIG_DIR says
    built = yaml.load((build_dir / "template.yaml").read_text(), Loader=_CfnLoader)
    config_layer = build_dir / built["Resources"]["ConfigLayer"]["Properties"]["ContentUri"]
    config_files = sorted(p.name for p in (project / "config").glob("*.yaml"))
    assert config_files, "config/ has no *.yaml files: the ConfigLayer would be empty"
    for name in config_files:
        assert (config_layer / name).is_file(), f"{name} is not at the root of the ConfigLayer"
    env_vars = built["Globals"]["Function"]["Environment"]["Variables"]
    assert env_vars["NURTURE_CONFIG_DIR"] == "/opt"


# --------------------------------------------------------------------------- 3


def _import_chalice_app() -> Any:
    """functions/api/app.py; `api.app` because pytest's pythonpath has functions/."""
    try:
        module = importlib.import_module("api.app")
    except ImportError:
        path = REPO / "functions" / "api" / "app.py"
        spec = importlib.util.spec_from_file_location("nurture_api_app", path)
        assert spec and spec.loader, f"cannot load {path}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.app


def _api_events(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    return {name: e["Properties"] for name, e in events.items() if e["Type"] == "HttpApi"}


def test_template_routes_match_the_chalice_app():
    # Given the HttpApi events of ApiFunction in the template
    template = load_template()
    api_events = _api_events(template)
    template_routes = [(p["Method"].upper(), p["Path"]) for p in api_events.values()]

    # When the Chalice app is imported
    app = _import_chalice_app()
    app_routes = [(method.upper(), path) for path, methods in app.routes.items() for method in methods]

    # Then API Gateway forwards exactly the routes the app serves, each method once
    assert sorted(template_routes) == sorted(set(template_routes)), "a route is declared twice"
    assert set(template_routes) == set(app_routes), (
        f"only in template.yaml: {sorted(set(template_routes) - set(app_routes))}; "
        f"only in the Chalice app: {sorted(set(app_routes) - set(template_routes))}"
    )
    # ... all on NurtureHttpApi, in payload format 2.0 (the handler's adapter reads
    # nothing else), within API Gateway's 30-second limit
    assert template["Resources"]["NurtureHttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert template["Resources"]["ApiFunction"]["Properties"]["Handler"] == "app.handler"
    for name, props in api_events.items():
        assert props.get("ApiId") == {"Ref": "NurtureHttpApi"}, f"{name} is not on NurtureHttpApi"
        assert props.get("PayloadFormatVersion") == "2.0", name
        assert props.get("TimeoutInMillis") == 30000, name
    # ... and the only REST API events are the email links' pages, on the kept REST API
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    rest = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events if e["Type"] == "Api"}
    assert rest == EMAIL_LINK_ROUTES
    assert {e["Properties"]["RestApiId"]["Ref"] for e in events if e["Type"] == "Api"} == {"NurtureApi"}


# The pages the links in every email open: unsubscribe (and its one-click
# POST, RFC 8058) and preferences.
EMAIL_LINK_ROUTES = {
    ("GET", "/v1/unsubscribe/{token}"),
    ("POST", "/v1/unsubscribe/{token}"),
    ("GET", "/v1/preferences/{token}"),
    ("POST", "/v1/preferences/{token}"),
}


def test_links_in_email_sent_before_the_http_api_still_answer():
    # Given the CloudFormation the SAM transform makes of the template
    resources = translate_offline(sam_template_for_translation())["Resources"]

    # Then the REST API keeps its logical id and type (so an upgraded stack
    # keeps its id, hence its URL) ...
    assert resources["NurtureApi"]["Type"] == "AWS::ApiGateway::RestApi"
    # ... and routes exactly the email links' pages to the API function
    paths = resources["NurtureApi"]["Properties"]["Body"]["paths"]
    routed = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert routed == EMAIL_LINK_ROUTES
    for methods in paths.values():
        for operation in methods.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert "ApiFunction" in json.dumps(integration["uri"])
    # ... while the links in new email name the HTTP API
    urls = {
        name: function["Properties"]["Environment"]["Variables"]["PUBLIC_API_URL"]
        for name, function in resources_of_type(load_template(), "AWS::Serverless::Function").items()
        if "PUBLIC_API_URL" in ((function["Properties"].get("Environment") or {}).get("Variables") or {})
    }
    assert urls
    for name, url in urls.items():
        assert "${NurtureHttpApi}" in json.dumps(url), name


def test_the_translated_api_declares_each_route_once_and_no_default_route():
    # Given the CloudFormation the SAM transform makes of the template
    resources = translate_offline(sam_template_for_translation())["Resources"]
    (api,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    paths = api["Properties"]["Body"]["paths"]

    # Then its OpenAPI body routes exactly the app's routes, each to the
    # function in payload format 2.0, and has no catch-all $default route
    # (a request on it would carry no route template)
    app = _import_chalice_app()
    app_routes = {(method.upper(), path) for path, methods in app.routes.items() for method in methods}
    routed = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert routed == app_routes
    assert not [path for path in paths if "$default" in path or "{proxy+}" in path]
    for methods in paths.values():
        for operation in methods.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert (integration["type"], integration["payloadFormatVersion"]) == ("aws_proxy", "2.0")
            assert integration["timeoutInMillis"] == 30000
    # ... and its one stage is the Stage parameter's
    (stage,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["StageName"] == {"Ref": "Stage"}


# The REST API's resources as the SAM transform named them: CloudFormation
# refuses to update a stack whose template gives one of these logical ids
# another type ("Update of resource type is not permitted"), so the HTTP API
# has its own ids; the REST API keeps its own, serving the email links.
REST_API_RESOURCES = {
    "NurtureApi": "AWS::ApiGateway::RestApi",
    "NurtureApiStage": "AWS::ApiGateway::Stage",
    "NurtureApiDeployment": "AWS::ApiGateway::Deployment",
}


def test_a_stack_deployed_with_the_rest_api_can_be_updated():
    # Given the CloudFormation the SAM transform makes of the template
    resources = translate_offline(sam_template_for_translation())["Resources"]

    # Then no resource reuses a logical id the REST API's resources had
    for name, resource in resources.items():
        for old_name, old_type in REST_API_RESOURCES.items():
            if name == old_name or (old_type.endswith("Deployment") and name.startswith(old_name)):
                assert resource["Type"] == old_type, f"{name} was a {old_type}, now a {resource['Type']}"


# --------------------------------------------------------------------------- 4


def test_functions_get_the_environment_the_code_reads():
    # Given the template
    template = load_template()

    # When the environment of each function is assembled (Globals + own)
    global_vars = template["Globals"]["Function"]["Environment"]["Variables"]
    functions = resources_of_type(template, "AWS::Serverless::Function")

    # Then every function gets the shared variables from Globals, and any of
    # its own is one the settings module reads
    from nurture.config.settings import OPTIONAL_VARIABLES

    assert {"ApiFunction", "TrackFunction", "EnrollFunction", "AdvanceFunction"} <= set(functions)
    for name, function in functions.items():
        own = function["Properties"].get("Environment", {}).get("Variables", {})
        assert set(global_vars) == EXPECTED_ENV_VARS, name
        assert set(own) <= set(OPTIONAL_VARIABLES), name
    # ... and the wiring points at the right resources
    assert global_vars["TABLE_NAME"] == {"Ref": "LeadsTable"}
    assert global_vars["INGEST_QUEUE_URL"] == {"Ref": "IngestQueue"}
    assert global_vars["EVENT_BUS_NAME"] == {"Ref": "NurtureBus"}
    assert global_vars["API_KEYS_SECRET_ARN"] == {"Ref": "ApiKeysSecret"}
    assert global_vars["SWEEP_SCHEDULE"] == {"Ref": "SweepSchedule"}


def test_every_rule_dead_letter_queue_lets_eventbridge_write_to_it():
    # Given every EventBridge rule event source that names a dead-letter queue
    template = load_template()
    dead_letter_queues = {
        event["Properties"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        for function in resources_of_type(template, "AWS::Serverless::Function").values()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "EventBridgeRule" and "DeadLetterConfig" in event["Properties"]
    }
    assert dead_letter_queues

    # When we collect the queues a queue policy lets events.amazonaws.com send to
    writable = set()
    for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if (
                statement["Principal"] == {"Service": "events.amazonaws.com"}
                and statement["Action"] == "sqs:SendMessage"
            ):
                writable |= {queue["Ref"] for queue in policy["Properties"]["Queues"]}

    # Then EventBridge may write to each of them (otherwise an undeliverable event is dropped)
    assert dead_letter_queues <= writable, sorted(dead_letter_queues - writable)


def test_every_asynchronously_invoked_function_keeps_failed_events():
    # Given the functions invoked asynchronously (EventBridge rules, schedules)
    template = load_template()
    asynchronous = {
        name: function
        for name, function in resources_of_type(template, "AWS::Serverless::Function").items()
        if any(
            e["Type"] in ("EventBridgeRule", "ScheduleV2") for e in function["Properties"].get("Events", {}).values()
        )
    }
    assert asynchronous

    # Then each sends what fails after Lambda's retries to a queue
    for name, function in asynchronous.items():
        on_failure = function["Properties"].get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        assert on_failure and on_failure["Type"] == "SQS", name


# --------------------------------------------------------------------------- 5

THROTTLE_GROUPS = {
    "/v1/unsubscribe/": "Consent",
    "/v1/preferences/": "Consent",
    "/v1/leads/{lead}/next-fields": "Ingest",  # public form pages call it
    "/v1/leads/": "Admin",
}


def _throttle_group(path: str) -> str:
    return next((group for prefix, group in THROTTLE_GROUPS.items() if path.startswith(prefix)), "Ingest")


def test_every_route_is_throttled_at_the_rate_of_its_group():
    # Given the API stage's route settings and the function's routes
    template = load_template()
    api = template["Resources"]["NurtureHttpApi"]["Properties"]
    settings = api["RouteSettings"]
    routes = {(p["Method"].upper(), p["Path"]) for p in _api_events(template).values()}

    # Then what no entry names (SDK settings, CORS preflights) gets the ingest rate ...
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "IngestThrottleRate"}
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "IngestThrottleBurst"}
    # ... and every write, consent and admin route has the rate and burst of its group
    for method, path in sorted(routes):
        if method == "OPTIONS" or (method == "GET" and _throttle_group(path) == "Ingest"):
            continue
        setting = settings.get(f"{method} {path}")
        assert setting, f"{method} {path} has no throttling of its own"
        group = _throttle_group(path)
        assert setting["ThrottlingRateLimit"] == {"Ref": f"{group}ThrottleRate"}, (method, path)
        assert setting["ThrottlingBurstLimit"] == {"Ref": f"{group}ThrottleBurst"}, (method, path)
    # ... and every entry is keyed by the route key of a route the API has
    # (a stage naming a route key the API lacks fails to deploy)
    assert set(settings) <= {f"{method} {path}" for method, path in routes}


def test_the_access_log_keeps_its_fields_and_logs_the_route_not_the_path():
    # Given the API's access log format (HTTP API $context variables)
    settings = load_template()["Resources"]["NurtureHttpApi"]["Properties"]["AccessLogSettings"]["Fn::If"]
    condition, enabled, disabled = settings
    line = json.loads(enabled["Format"])

    # Then it is one JSON line with the same fields as before, the route key
    # rather than the path (which holds lead ids and tokens), into the API's log group
    assert (condition, disabled) == ("HasApiAccessLogs", {"Ref": "AWS::NoValue"})
    assert line == {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "time": "$context.requestTimeEpoch",
        "method": "$context.httpMethod",
        "route": "$context.routeKey",
        "status": "$context.status",
        "length": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "error": "$context.error.responseType",
    }
    assert enabled["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


def test_every_log_group_expires_and_every_function_and_the_timeline_log_into_one():
    # Given the template's log groups
    template = load_template()
    groups = resources_of_type(template, "AWS::Logs::LogGroup")

    # Then each expires after LogRetentionDays
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    # ... every function logs into one of them
    for name, function in resources_of_type(template, "AWS::Serverless::Function").items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert target in groups, f"{name} logs into a group the template does not declare"
    # ... and the timeline logs its errors, without execution data (lead details), into one
    for name, machine in resources_of_type(template, "AWS::Serverless::StateMachine").items():
        logging = machine["Properties"]["Logging"]
        assert (logging["Level"], logging["IncludeExecutionData"]) == ("ERROR", False), name
        (destination,) = logging["Destinations"]
        assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0] in groups, name


def test_every_topic_is_encrypted_and_cloudwatch_may_use_the_alarm_topics_key():
    # Given the template's topics
    template = load_template()
    topics = resources_of_type(template, "AWS::SNS::Topic")
    assert {"AlarmTopic", "SalesAlertsTopic"} <= set(topics)

    # Then each is encrypted
    for name, topic in topics.items():
        assert topic["Properties"].get("KmsMasterKeyId"), f"{name} is not encrypted"
    # ... the alarm topic with a key of the stack (the AWS-managed SNS key admits no alarm)
    key_id = topics["AlarmTopic"]["Properties"]["KmsMasterKeyId"]["Ref"]
    key = template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def _resolve_if(value: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        return when_true if conditions[condition] else when_false
    return value


@pytest.mark.parametrize("tracing", ["Disabled", "Active"])
def test_the_tracing_parameter_traces_every_function_and_the_timeline_or_none(tracing):
    # Given the template deployed with Tracing set (Disabled is the default)
    assert load_template()["Parameters"]["Tracing"]["Default"] == "Disabled"
    translated = translate_offline(sam_template_for_translation(), Tracing=tracing)
    resources = translated["Resources"]
    conditions = {"IsTraced": tracing == "Active"}
    active = tracing == "Active"

    # Then every function is traced, and may write traces, exactly when it is Active
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert functions
    for name, function in functions.items():
        mode = function["Properties"].get("TracingConfig", {}).get("Mode")
        assert (mode == {"Ref": "Tracing"}) is active, (name, mode)
        role = resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        xray = [arn for arn in role.get("ManagedPolicyArns", []) if "AWSXrayWriteOnlyAccess" in json.dumps(arn)]
        assert bool(xray) is active, name
    # ... and so is the timeline state machine
    machines = [r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert machines
    for machine in machines:
        assert _resolve_if(machine["Properties"]["TracingConfiguration"]["Enabled"], conditions) is active
    # ... while the API, an HTTP API, has no X-Ray tracing to turn on (and the
    # parameter says so)
    stages = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stages and all("TracingEnabled" not in stage["Properties"] for stage in stages)
    assert "HTTP API" in load_template()["Parameters"]["Tracing"]["Description"]
