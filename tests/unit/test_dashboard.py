"""The dashboard body (infra/dashboards/nurture.json) and the alarms in
template.yaml: generated from the stack, naming only metric series the code
emits and business-record fields the code logs, and alarming only where
someone would act."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from nurture.core.observability import BUSINESS_EVENT, CATALOGUE, NAMESPACE, metric_series
from nurture_tools.dashboard import (
    DASHBOARD_FILE,
    SES_BOUNCE_RATE_REVIEW,
    SES_COMPLAINT_RATE_REVIEW,
    failures_reach,
    placeholders,
    render,
    stack_of,
)
from nurture_tools.local.template import _CfnLoader
from tests.conftest import PROJECT_DIR

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


def _queries(body: dict[str, Any]) -> dict[str, str]:
    """Each Logs Insights widget's query, by title."""
    return {w["properties"]["title"]: w["properties"]["query"] for w in body["widgets"] if w["type"] == "log"}


# What a Logs Insights query may name besides the records' fields and its own aliases.
_QUERY_WORDS = {"filter", "stats", "by", "as", "in", "sort", "desc", "asc", "and", "or", "not", "SOURCE"}
_QUERY_FUNCTIONS = {"sum", "avg", "count", "bin", "coalesce"}


def _stack():
    return stack_of(_template(), PROJECT_DIR)


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_the_dashboard_file_and_the_template_are_what_make_dashboard_generates():
    # Given the template and the configured tracks
    # When the dashboard and alarms are generated from them
    body, template_text = render(TEMPLATE.read_text(), PROJECT_DIR)

    # Then the checked-in files are exactly that
    message = "run `make dashboard` (a function, log group, dead-letter queue or state machine changed)"
    assert (PROJECT_DIR / DASHBOARD_FILE).read_text() == body, message
    assert TEMPLATE.read_text() == template_text, message


def test_the_template_deploys_the_dashboard_file_as_its_body():
    # Given the dashboard resource in the template
    dashboard = _template()["Resources"]["Dashboard"]["Properties"]

    # Then its body is the file, with placeholders CloudFormation substitutes
    assert json.loads(dashboard["DashboardBody"]["Fn::Sub"]) == _body()


def test_every_metric_the_dashboard_names_is_a_series_the_functions_emit():
    # Given every Nurture metric line of the dashboard, and the series the functions emit
    lines = [line for line in _metric_lines(_body()) if isinstance(line[0], str) and line[0] == NAMESPACE]
    emitted = set(metric_series())
    assert lines

    # Then each names an emitted series, under exactly its dimensions
    for line in lines:
        name, pairs = line[1], [item for item in line[2:] if isinstance(item, str)]
        assert (name, tuple(zip(pairs[0::2], pairs[1::2], strict=True))) in emitted, line


def test_the_dashboard_searches_no_metric():
    # SEARCH finds series by schema, which the budget of series cannot bound
    assert not [e for e in _expressions(_body()) if "SEARCH(" in e]


def test_every_logs_insights_query_names_only_fields_the_records_carry():
    # Given the Logs Insights widgets, over the functions' log groups
    queries = _queries(_body())
    assert queries
    groups = {f"SOURCE '${{{group}}}'" for group in _stack().log_groups}
    assert len(groups) == len(_stack().functions)

    for title, query in queries.items():
        # Then each reads every function's log group ...
        sources, _, pipeline = query.partition(f" | filter {BUSINESS_EVENT} ")
        assert set(sources.split(" | ")) == groups, title
        # ... selects catalogued business records ...
        selected = re.match(r"(?:= \"(\w+)\"|in \[([^\]]+)\])", pipeline)
        assert selected, title
        names = {selected.group(1)} if selected.group(1) else set(re.findall(r'"(\w+)"', selected.group(2)))
        assert names <= set(CATALOGUE), (title, names - set(CATALOGUE))
        # ... and names only their counts, their fields and its own aliases
        carried = names | {field for name in names for field in CATALOGUE[name].fields} | {BUSINESS_EVENT}
        words = pipeline[selected.end() :]
        aliases = set(re.findall(r"\bas (\w+)", words))
        named = set(re.findall(r"[A-Za-z_]\w*", re.sub(r'"[^"]*"|\bbin\(\w+\)', "", words)))
        unknown = named - carried - aliases - _QUERY_WORDS - _QUERY_FUNCTIONS
        assert not unknown, (title, unknown)


def test_per_track_rates_group_the_track_field_of_sends_and_engagement():
    # Given the per-track rate widgets
    queries = _queries(_body())

    for title, counted in (
        ("Human open rate by track (%)", "HumanOpens"),
        ("Human click rate by track (%)", "HumanClicks"),
    ):
        query = queries[title]

        # Then each divides the track's engagement by the track's sends, by track
        assert f'in ["EmailsSent", "{counted}"]' in query
        assert "sum(EmailsSent) as sent" in query and f"sum({counted})" in query
        assert query.split(" | ")[-2].endswith("by track")
        assert "track" in CATALOGUE["EmailsSent"].fields and "track" in CATALOGUE[counted].fields


def test_every_placeholder_in_the_body_is_something_the_template_declares():
    template = _template()

    for placeholder in placeholders((PROJECT_DIR / DASHBOARD_FILE).read_text()):
        resource = placeholder.split(".", 1)[0]
        assert placeholder in PSEUDO_PARAMETERS or resource in template["Resources"], placeholder


def test_every_dead_letter_queue_and_state_machine_has_an_alarm_on_the_topic():
    # Given the template's dead-letter queues and state machines
    template = _template()
    stack = _stack()
    alarms = _alarms(template)

    # Then each has its alarm, and every alarm notifies the alarm topic
    for name in [*stack.queues, *stack.state_machines]:
        assert f"{name}Alarm" in alarms or f"{name}FailedAlarm" in alarms, f"no alarm watches {name}"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_every_function_failure_reaches_an_alarm():
    # Given the template's functions and alarms
    stack = _stack()
    alarms = _alarms(_template())
    alarmed = {name.removesuffix("Alarm").removesuffix("Failed") for name in alarms}

    for function in stack.functions:
        # Then its failures raise its own error-rate alarm, or all end where an alarm watches
        reached = failures_reach(stack, function)
        own = f"{function}ErrorRateAlarm" in alarms
        assert own or (reached and reached <= alarmed), (function, reached)


def test_error_rates_alarm_where_no_queue_or_execution_catches_a_failure_and_on_the_ingest_consumer():
    # Given the alarms generated for the template
    alarms = _alarms(_template())
    stack = _stack()

    # Then the API (synchronous), the ingest consumer and Advance (it gives up
    # a touch it cannot deliver and the timeline carries on) have error-rate alarms
    watched = {name.removesuffix("ErrorRateAlarm") for name in alarms if name.endswith("ErrorRateAlarm")}
    assert watched == {"AdvanceFunction", "ApiFunction", "TrackFunction"}
    assert failures_reach(stack, "ApiFunction") is None
    # ... and the others park their failures in an alarmed queue or fail the timeline
    assert failures_reach(stack, "AdvanceFunction") == {"NurtureTimeline"}
    assert failures_reach(stack, "SweepFunction") == {"SweepDeadLetterQueue"}
    assert failures_reach(stack, "AudienceSyncFunction") == {"AudienceDeadLetterQueue", "AudienceSyncDeadLetterQueue"}
    assert failures_reach(stack, "SalesTimerFunction") == {"SalesTimerDeadLetterQueue"}
    assert failures_reach(stack, "TrackFunction") == {"IngestDeadLetterQueue"}


def test_a_message_in_any_dead_letter_queue_raises_its_alarm():
    alarms = _alarms(_template())

    for queue in _stack().queues:
        alarm = alarms[f"{queue}Alarm"]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_function_alarms_watch_the_error_rate():
    alarms = _alarms(_template())

    for function in [name for name in _stack().functions if f"{name}ErrorRateAlarm" in alarms]:
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


def test_no_alarm_watches_a_custom_metric():
    # the alarms read AWS's own metrics, which cost no series
    assert all(alarm.get("Namespace") != NAMESPACE for alarm in _alarms(_template()).values())
    assert f'"Namespace": "{NAMESPACE}"' not in json.dumps(list(_alarms(_template()).values()))


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
    body, generated = render(text, PROJECT_DIR)

    # Then the function has its error-rate alarm and its lines on the dashboard,
    # and the resource added stays where it was written
    resources = yaml.load(generated, Loader=_CfnLoader)["Resources"]  # noqa: S506
    assert "SweepsFunctionErrorRateAlarm" in resources
    assert "${SweepsFunction}" in body
    assert added in generated
    assert render(generated, PROJECT_DIR) == (body, generated)
