"""The dashboard body (infra/dashboards/nurture.json) and the alarms in
template.yaml: generated from the stack and the configuration, and naming only
metrics the code emits."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from nurture.core.observability import CATALOGUE, NAMESPACE
from nurture_tools.dashboard import (
    DASHBOARD_FILE,
    SES_BOUNCE_RATE_REVIEW,
    SES_COMPLAINT_RATE_REVIEW,
    placeholders,
    render,
    stack_parts,
    tracks_of,
)
from nurture_tools.local.template import _CfnLoader
from tests.conftest import CONFIG_DIR, PROJECT_DIR

TEMPLATE = PROJECT_DIR / "template.yaml"
PSEUDO_PARAMETERS = {"AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::Partition", "AWS::URLSuffix"}


def _template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _body() -> dict[str, Any]:
    return json.loads((PROJECT_DIR / DASHBOARD_FILE).read_text())


def _metric_lines(body: dict[str, Any]) -> list[list[Any]]:
    return [line for widget in body["widgets"] for line in widget["properties"].get("metrics", [])]


def _expressions(body: dict[str, Any]) -> list[str]:
    return [line[0]["expression"] for line in _metric_lines(body) if isinstance(line[0], dict)]


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_the_dashboard_file_and_the_template_are_what_make_dashboard_generates():
    # Given the template and the configured tracks
    # When the dashboard and alarms are generated from them
    body, template_text = render(TEMPLATE.read_text(), tracks_of(CONFIG_DIR))

    # Then the checked-in files are exactly that
    message = "run `make dashboard` (a function, dead-letter queue or track changed)"
    assert (PROJECT_DIR / DASHBOARD_FILE).read_text() == body, message
    assert TEMPLATE.read_text() == template_text, message


def test_the_template_deploys_the_dashboard_file_as_its_body():
    # Given the dashboard resource in the template
    dashboard = _template()["Resources"]["Dashboard"]["Properties"]

    # Then its body is the file, with placeholders CloudFormation substitutes
    assert json.loads(dashboard["DashboardBody"]["Fn::Sub"]) == _body()


def test_the_dashboard_names_only_catalogued_metrics_with_their_dimensions():
    # Given every Nurture metric line of the dashboard
    lines = [line for line in _metric_lines(_body()) if isinstance(line[0], str) and line[0] == NAMESPACE]
    assert lines

    # Then each is a catalogued metric with service alone or with all its dimensions
    for line in lines:
        name, pairs = line[1], [item for item in line[2:] if isinstance(item, str)]
        assert name in CATALOGUE, f"{name} is not in the catalogue"
        keys = set(pairs[0::2])
        assert keys in ({"service"}, {"service", *CATALOGUE[name].dimensions}), (name, keys)


def test_the_dashboard_searches_only_catalogued_metrics_in_their_schema():
    # Given the SEARCH expressions of the dashboard
    searches = [e for e in _expressions(_body()) if e.startswith("SEARCH(")]
    assert searches

    # Then each looks for a catalogued metric under its exact dimension schema
    for expression in searches:
        schema, name = re.search(r"\{([^}]*)\} MetricName=\"(\w+)\"", expression).groups()
        namespace, *keys = schema.split(",")
        assert namespace == NAMESPACE and name in CATALOGUE, expression
        assert set(keys) == {"service", *CATALOGUE[name].dimensions}, expression


def test_the_dashboard_has_open_and_click_rates_for_every_configured_track():
    # Given the configured tracks
    tracks = tracks_of(CONFIG_DIR)

    # When the per-track rate widgets are read
    widgets = {w["properties"].get("title"): w["properties"].get("metrics", []) for w in _body()["widgets"]}
    for title, counted in (
        ("Human open rate by track (%)", "HumanOpens"),
        ("Human click rate by track (%)", "HumanClicks"),
    ):
        lines = widgets[title]
        labels = [line[0]["label"] for line in lines if isinstance(line[0], dict)]
        tracked = {line[5] for line in lines if isinstance(line[0], str) and line[1] == counted}

        # Then every track has its rate, computed from its own sends and engagement
        assert sorted(labels) == tracks
        assert tracked == set(tracks)


def test_every_placeholder_in_the_body_is_something_the_template_declares():
    template = _template()

    for placeholder in placeholders((PROJECT_DIR / DASHBOARD_FILE).read_text()):
        resource = placeholder.split(".", 1)[0]
        assert placeholder in PSEUDO_PARAMETERS or resource in template["Resources"], placeholder


def test_every_dead_letter_queue_function_and_state_machine_has_an_alarm_on_the_topic():
    # Given the template's functions, dead-letter queues and state machines
    template = _template()
    functions, queues, machines = stack_parts(template)
    alarms = _alarms(template)

    # Then each has its alarm, and every alarm notifies the alarm topic
    watched = json.dumps(list(alarms.values()))
    for name in [*functions, *queues, *machines]:
        assert f'"{name}"' in watched, f"no alarm watches {name}"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_a_message_in_any_dead_letter_queue_raises_its_alarm():
    alarms = _alarms(_template())

    for queue in stack_parts(_template())[1]:
        alarm = alarms[f"{queue}Alarm"]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_function_alarms_watch_the_error_rate():
    alarms = _alarms(_template())

    for function in stack_parts(_template())[0]:
        metrics = alarms[f"{function}ErrorRateAlarm"]["Metrics"]
        (expression,) = [m["Expression"] for m in metrics if m.get("ReturnData")]
        assert "errors / invocations" in expression
        stats = {m["Id"]: m["MetricStat"]["Metric"] for m in metrics if "MetricStat" in m}
        assert {stats["errors"]["MetricName"], stats["invocations"]["MetricName"]} == {"Errors", "Invocations"}
        assert stats["errors"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]


def test_ses_alarms_fire_at_the_rates_where_ses_reviews_the_account():
    alarms = _alarms(_template())

    for name, metric, level in (
        ("SesBounceRateAlarm", "Reputation.BounceRate", 0.05),
        ("SesComplaintRateAlarm", "Reputation.ComplaintRate", 0.001),
    ):
        alarm = alarms[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SES", metric)
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (level, "GreaterThanOrEqualToThreshold")
    assert (SES_BOUNCE_RATE_REVIEW, SES_COMPLAINT_RATE_REVIEW) == (0.05, 0.001)


def test_sweep_failures_alarm_watches_the_catalogued_metric_as_emitted():
    alarm = _alarms(_template())["SweepFailuresAlarm"]

    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, "SweepFailures")
    assert "SweepFailures" in CATALOGUE
    # the [service] dimension set every dimensioned metric is also emitted under
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "nurture"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_alarm_email_is_optional():
    template = _template()

    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_a_function_added_to_the_template_gets_its_alarm_and_widgets_at_the_next_generation():
    # Given the template with one more function after the generated block
    text = TEMPLATE.read_text()
    anchor = text.index("\nOutputs:")
    added = (
        "\n  SweepsFunction:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      CodeUri: functions/sweeps\n      Handler: app.handler\n"
    )
    text = text[:anchor] + added + text[anchor:]

    # When the dashboard and alarms are generated again
    body, generated = render(text, tracks_of(CONFIG_DIR))

    # Then the function has its error-rate alarm and its lines on the dashboard,
    # and the resource added stays where it was written
    resources = yaml.load(generated, Loader=_CfnLoader)["Resources"]  # noqa: S506
    assert "SweepsFunctionErrorRateAlarm" in resources
    assert "${SweepsFunction}" in body
    assert added in generated
    assert render(generated, tracks_of(CONFIG_DIR)) == (body, generated)
