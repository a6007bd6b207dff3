"""The CloudWatch dashboard and alarms, generated from what the stack holds.

`nurture dashboard` (`make dashboard`) writes:
- `infra/dashboards/nurture.json`: the dashboard body, with `${Placeholders}`
  (`${AWS::Region}`, `${TrackFunction}`, `${TrackFunctionLogGroup}`,
  `${IngestDeadLetterQueue.QueueName}` ...) that CloudFormation's Fn::Sub
  fills at deploy time;
- the observability block of `template.yaml` (between its BEGIN/END marker
  comments): the dashboard with that body under `!Sub`, an alarm topic, and
  the alarms someone would act on (`alarm_resources`).

The headline numbers are metric widgets over the few metric series the
functions emit (`nurture.core.observability.metric_series`); every breakdown
(per track, stage, currency, bounce type, sweep) is a Logs Insights widget
over the business records the functions print to their logs, so it costs no
series. Logs Insights bills the bytes each widget scans (USD 0.005 per GB):
every query reads only the functions' log groups, over the dashboard's range.

Why generated: CloudFormation cannot read a local file into DashboardBody
(`AWS::Include` needs S3 and does not translate offline), so the body must sit
in the template. Functions, their log groups, dead-letter queues and state
machines are read from the template itself, so a new one gets its widgets and
alarms at the next `make dashboard`; the template tests fail until then.

Deploy-time tooling: nothing here runs in a Lambda function.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from nurture.core.observability import BUSINESS_EVENT, NAMESPACE, SERVICE

BEGIN = "  # BEGIN observability"
END = "  # END observability"
DASHBOARD_FILE = Path("infra/dashboards/nurture.json")
STATE_MACHINE_DIR = Path("infra/statemachines")
FUNNEL_STAGES = ("subscriber", "lead", "warm", "hot", "opportunity", "customer")
ACCELERATION_STAGES = ("lead", "warm", "hot", "opportunity")
SES_BOUNCE_RATE_REVIEW = 0.05  # SES reviews an account at a 5% bounce rate ...
SES_COMPLAINT_RATE_REVIEW = 0.001  # ... and at a 0.1% complaint rate
ERROR_RATE_PERCENT = 5
# Functions whose error rate alarms although their failures also reach a
# dead-letter queue or fail an execution: the ingest consumer retries a
# failing batch five times before it parks, and every lead's events wait
# meanwhile; Advance gives a touch it cannot deliver up after its retries
# and the timeline carries on, so a failing channel (SES) fails no execution.
ERROR_RATE_ALSO = ("TrackFunction", "AdvanceFunction")
DAY = 86400
WIDTH = 24


class Stack(NamedTuple):
    """What the dashboard and the alarms are generated from."""

    functions: list[str]
    queues: list[str]  # dead-letter queues
    state_machines: list[str]
    log_groups: list[str]  # the functions' log groups
    resources: dict[str, Any]
    definitions: dict[str, dict[str, Any]]  # state machine -> its ASL


class _Literal(str):
    """A string written as a YAML block scalar (`|`), so the body stays readable."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, "|"))


def _nurture(name: str, *dimensions: str, **options: Any) -> list[Any]:
    """A Nurture metric line: name, service=nurture, then dimension pairs."""
    line: list[Any] = [NAMESPACE, name, "service", SERVICE, *dimensions]
    return [*line, options] if options else line


def _expression(expression: str, label: str, id_: str, **options: Any) -> list[Any]:
    return [{"expression": expression, "label": label, "id": id_, **options}]


def _widget(title: str, metrics: list[list[Any]], width: int = 8, height: int = 6, **properties: Any) -> dict:
    return {
        "type": "metric",
        "width": width,
        "height": height,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "metrics": metrics,
            "view": "timeSeries",
            "stat": "Sum",
            "period": DAY,
            **properties,
        },
    }


def _text(markdown: str) -> dict:
    return {"type": "text", "width": WIDTH, "height": 2, "properties": {"markdown": markdown}}


def _counts(title: str, names: list[str], width: int = 8, **properties: Any) -> dict:
    return _widget(title, [_nurture(name) for name in names], width=width, **properties)


class Insights:
    """Logs Insights widgets over the business records in the functions' log groups."""

    def __init__(self, log_groups: list[str]) -> None:
        self.sources = " | ".join(f"SOURCE '${{{group}}}'" for group in log_groups)

    def widget(self, title: str, names: list[str], query: str, view: str, width: int = 8) -> dict:
        """`query` runs over the records of `names` (the filter is added)."""
        quoted = ", ".join(json.dumps(name) for name in names)
        chosen = f"{BUSINESS_EVENT} = {quoted}" if len(names) == 1 else f"{BUSINESS_EVENT} in [{quoted}]"
        return {
            "type": "log",
            "width": width,
            "height": 6,
            "properties": {
                "title": title,
                "region": "${AWS::Region}",
                "query": f"{self.sources} | filter {chosen} | {query}",
                "view": view,
            },
        }

    def daily(self, title: str, columns: dict[str, str], width: int = 8) -> dict:
        """Daily sums of counts, one line each: {name: column label}."""
        sums = ", ".join(f"sum({name}) as {label}" for name, label in columns.items())
        return self.widget(title, list(columns), f"stats {sums} by bin(1d)", "timeSeries", width)

    def rate_by_track(self, title: str, counted: str, label: str, width: int = 8) -> dict:
        """Per track: emails sent, the count, and the count per email sent (%)."""
        query = (
            f"stats sum(EmailsSent) as sent, sum({counted}) as {label}, 100 * {label} / sent as rate by track"
            " | sort rate desc"
        )
        return self.widget(title, ["EmailsSent", counted], query, "table", width)


def _in(field: str, values: tuple[str, ...]) -> str:
    return f"{field} in [{', '.join(json.dumps(v) for v in values)}]"


def _funnel(insights: Insights) -> list[dict]:
    return [
        _text("## Funnel\nEvents in, leads entering each lifecycle stage, and what sales made of them."),
        insights.daily(
            "Events accepted and ingested",
            {"EventsAccepted": "accepted", "EventsIngested": "ingested", "DuplicateEvents": "duplicates"},
        ),
        insights.widget(
            "Calls dropped from batches, by the field at fault",
            ["EventsRejected"],
            "stats sum(EventsRejected) as calls by reason | sort calls desc",
            "bar",
        ),
        insights.widget(
            "Leads entering each stage",
            ["LeadStageChanges"],
            f"filter {_in('to_stage', FUNNEL_STAGES)} | stats sum(LeadStageChanges) as leads by to_stage",
            "bar",
        ),
        _counts(
            "Marketing to sales",
            ["LeadsBecameWarm", "LeadsBecameHot", "LeadsHandedOff", "LeadsSalesAccepted", "OpportunitiesCreated"],
            view="singleValue",
            setPeriodToTimeRange=True,
        ),
    ]


def _rate(numerator: str, denominator: str, label: str, id_: str) -> list[Any]:
    return _expression(f"IF(({denominator}) > 0, 100 * {numerator} / ({denominator}), 0)", label, id_)


def _engagement(insights: Insights) -> list[dict]:
    overall = [
        _nurture("EmailsSent", {"id": "sent", "visible": False}),
        _nurture("HumanOpens", {"id": "opens", "visible": False}),
        _nurture("HumanClicks", {"id": "clicks", "visible": False}),
        _nurture("MachineOpens", {"id": "mopens", "visible": False}),
        _nurture("LeadsUnsubscribed", {"id": "unsubs", "visible": False}),
        _rate("opens", "sent", "human open rate (%)", "openrate"),
        _rate("clicks", "sent", "human click rate (%)", "clickrate"),
        _rate("clicks", "opens", "click-to-open (%)", "ctor"),
        _rate("mopens", "opens + mopens", "machine share of opens (%)", "machineshare"),
        _rate("unsubs", "sent", "unsubscribe rate (%)", "unsubrate"),
    ]
    emails = {
        "EmailsSent": "sent",
        "EmailsSkipped": "skipped",
        "HumanOpens": "human_opens",
        "HumanClicks": "human_clicks",
        "MachineOpens": "machine_opens",
        "MachineClicks": "machine_clicks",
    }
    timelines = {
        "TimelinesEnrolled": "enrolled",
        "TimelinesHoldout": "holdout",
        "TimelinesStopped": "stopped",
        "BehaviourTriggers": "behaviour_triggers",
        "ContentExhausted": "content_exhausted",
    }
    return [
        _text(
            "## Engagement\nHuman opens and clicks only: mail scanners and privacy proxies are counted apart "
            "(machine share). Rates are per email sent in the same period."
        ),
        insights.daily("Emails", emails),
        _widget("Engagement rates (%)", overall),
        insights.rate_by_track("Human open rate by track (%)", "HumanOpens", "opens"),
        insights.rate_by_track("Human click rate by track (%)", "HumanClicks", "clicks", width=12),
        insights.daily("Timelines", timelines, width=12),
    ]


def _acceleration(insights: Insights) -> list[dict]:
    return [
        _text("## Acceleration\nAverage days a lead spent in a stage before moving on (lower is faster)."),
        insights.widget(
            "Days in stage before moving on",
            ["DaysInStage"],
            f"filter {_in('from_stage', ACCELERATION_STAGES)} | stats avg(DaysInStage) as days by from_stage",
            "bar",
            width=WIDTH,
        ),
    ]


def _outcomes(insights: Insights) -> list[dict]:
    elsewhere = {
        "LeadsRecycled": "recycled",
        "LeadsLost": "lost",
        "LeadsDormant": "dormant",
        "LeadsReactivated": "reactivated",
        "LeadsDemoted": "demoted",
        "LeadsSunset": "sunset",
        "LeadsErased": "erased",
    }
    channels = {
        "AudienceMembersSynced": "audience_synced",
        "AudienceMembersRemoved": "audience_removed",
        "FormsSubmitted": "forms_submitted",
        "FormsAcknowledged": "forms_acknowledged",
        "SalesAlerts": "sales_alerts",
        "SalesTasksCreated": "sales_tasks",
    }
    return [
        _text("## Outcomes\nWon deals and revenue (per currency), and where the other leads went."),
        _counts("Deals", ["DealsWon", "LeadsBecameCustomer", "HandoffsEscalated"], view="singleValue"),
        insights.widget(
            "Revenue by currency", ["Revenue"], "stats sum(Revenue) as revenue by currency | sort revenue desc", "bar"
        ),
        insights.daily("Recycle, loss and reactivation", elsewhere),
        insights.daily("Channels", channels, width=12),
        insights.widget(
            "Deliverability: bounces, complaints, suppressions",
            ["Bounces", "Complaints", "LeadsSuppressed"],
            "stats sum(coalesce(Bounces, Complaints, LeadsSuppressed)) as leads"
            f" by {BUSINESS_EVENT}, bounce_type, consent",
            "table",
            width=12,
        ),
    ]


def _health(stack: Stack, insights: Insights) -> list[dict]:
    def per_function(metric: str) -> list[list[Any]]:
        return [["AWS/Lambda", metric, "FunctionName", f"${{{name}}}", {"label": name}] for name in stack.functions]

    dlq_depth = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"${{{queue}.QueueName}}", {"label": queue}]
        for queue in stack.queues
    ]
    executions = [
        ["AWS/States", metric, "StateMachineArn", f"${{{machine}}}", {"label": f"{machine} {metric}"}]
        for machine in stack.state_machines
        for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut")
    ]
    sweeps = ["SweepRuns", "SweepFailures", "SweepLeadsExamined", "SweepReadCapacity"]
    return [
        _text("## Pipeline health\nAnything in a dead-letter queue needs a look (each has an alarm)."),
        _widget("Dead-letter queue depth", dlq_depth, stat="Maximum", period=300),
        _widget("Function errors", per_function("Errors"), period=300),
        _widget("Function duration p99 (ms)", per_function("Duration"), stat="p99", period=300),
        _widget(
            "Ingest queue: oldest message (s)",
            [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "${IngestQueue.QueueName}"]],
            stat="Maximum",
            period=300,
        ),
        _widget("Timeline executions", executions, period=3600),
        insights.widget(
            "Scheduled sweeps",
            sweeps,
            "stats sum(SweepRuns) as runs, sum(SweepFailures) as failures, sum(SweepLeadsExamined) as leads_examined,"
            " sum(SweepReadCapacity) as read_capacity_units by sweep",
            "table",
        ),
        _widget(
            "SES reputation (SES reviews the account at 5% bounces, 0.1% complaints)",
            [["AWS/SES", "Reputation.BounceRate"], ["AWS/SES", "Reputation.ComplaintRate"]],
            width=WIDTH,
            stat="Maximum",
            period=3600,
            annotations={
                "horizontal": [
                    {"label": "bounce rate review", "value": SES_BOUNCE_RATE_REVIEW},
                    {"label": "complaint rate review", "value": SES_COMPLAINT_RATE_REVIEW},
                ]
            },
        ),
    ]


def _place(widgets: list[dict]) -> list[dict]:
    """Left to right, wrapping at the grid's 24 columns."""
    x = y = row_height = 0
    for widget in widgets:
        if x + widget["width"] > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        widget["x"], widget["y"] = x, y
        x += widget["width"]
        row_height = max(row_height, widget["height"])
    return widgets


def dashboard_body(stack: Stack) -> dict[str, Any]:
    insights = Insights(stack.log_groups)
    widgets = [
        *_funnel(insights),
        *_engagement(insights),
        *_acceleration(insights),
        *_outcomes(insights),
        *_health(stack, insights),
    ]
    return {"start": "-P30D", "periodOverride": "inherit", "widgets": _place(widgets)}


# ------------------------------------------------------------------ alarms --


def _alarm(description: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            **properties,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
        },
    }


def _lambda_stat(id_: str, metric: str, function: str) -> dict[str, Any]:
    return {
        "Id": id_,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": metric,
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
            },
            "Period": 300,
            "Stat": "Sum",
        },
    }


def _target(value: Any) -> str | None:
    """The logical id an `!GetAtt X.Arn` or `!Ref X` names."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
        if "Ref" in value:
            return str(value["Ref"])
    return None


_ASYNC_EVENTS = {"EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2", "SNS", "S3"}
_QUEUE_EVENTS = {"SQS"}


def failures_reach(stack: Stack, function: str) -> set[str] | None:
    """The alarmed places (dead-letter queues, state machines) where every
    failure of `function` ends up once retries are spent, or None when some
    failure reaches none: a synchronous caller (the API), a state machine
    that catches the failure and carries on. A function no event or state
    machine of the template invokes (the sales timers, which the code
    schedules) counts as invoked asynchronously: its failures go to its
    on-failure destination."""
    resources = stack.resources
    properties = resources[function].get("Properties") or {}
    config = properties.get("EventInvokeConfig") or {}
    on_failure = _target(((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
    reached: set[str] = set()
    for event in (properties.get("Events") or {}).values():
        kind = event.get("Type")
        if kind in _QUEUE_EVENTS:
            queue = (resources.get(_target(event["Properties"]["Queue"]) or "") or {}).get("Properties") or {}
            parked = _target((queue.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        elif kind in _ASYNC_EVENTS:
            parked = on_failure
        else:
            return None
        if parked not in stack.queues:
            return None
        reached.add(parked)
    for machine in stack.state_machines:
        substitutions = resources[machine]["Properties"].get("DefinitionSubstitutions") or {}
        names = {f"${{{key}}}" for key, value in substitutions.items() if _target(value) == function}
        states = _states(stack.definitions[machine]) if names else {}
        for state in states.values():
            if not names & set(re.findall(r"\$\{[^}]+\}", json.dumps(state))):
                continue
            caught = [c["Next"] for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
            if any(states.get(next_, {}).get("Type") != "Fail" for next_ in caught):
                return None  # a caught failure carries on: no execution fails
            reached.add(machine)
    if not reached:
        return {on_failure} if on_failure in stack.queues else None
    return reached


def _states(definition: dict[str, Any]) -> dict[str, Any]:
    """Every state of an ASL definition, those inside Parallel and Map included."""
    found: dict[str, Any] = {}
    for name, state in definition.get("States", {}).items():
        found[name] = state
        for branch in [*state.get("Branches", []), state.get("Iterator") or {}, state.get("ItemProcessor") or {}]:
            found.update(_states(branch))
    return found


def error_rate_watched(stack: Stack) -> list[str]:
    """The functions with an error-rate alarm: those whose failures no alarmed
    queue or execution catches, and `ERROR_RATE_ALSO`."""
    return [f for f in stack.functions if f in ERROR_RATE_ALSO or failures_reach(stack, f) is None]


def alarm_resources(stack: Stack) -> dict[str, Any]:
    resources: dict[str, Any] = {
        # CloudWatch alarms cannot publish to a topic under the AWS-managed SNS
        # key (its policy admits no service principal), so the alarm topic has a
        # customer-managed key of its own (about 1 USD a month) that CloudWatch
        # may use. Only this account's alarms can publish: the topic's default
        # policy admits its owner alone.
        "AlarmTopicKey": {
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "Description": {"Fn::Sub": "nurture-${Stage}: encrypts the alarm topic"},
                "EnableKeyRotation": True,
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AccountAdministersTheKey",
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                            "Action": "kms:*",
                            "Resource": "*",
                        },
                        {
                            "Sid": "CloudWatchAlarmsPublish",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                            "Resource": "*",
                        },
                    ],
                },
            },
        },
        "AlarmTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": {"Fn::Sub": "nurture-${Stage}-alarms"},
                "KmsMasterKeyId": {"Ref": "AlarmTopicKey"},
            },
        },
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
        },
    }
    for queue in stack.queues:
        resources[f"{queue}Alarm"] = _alarm(
            f"A message reached {queue}: it failed every retry and waits for a look (redrive it once fixed).",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
    for function in error_rate_watched(stack):
        resources[f"{function}ErrorRateAlarm"] = _alarm(
            f"{function}: {ERROR_RATE_PERCENT}% or more of its invocations failed in 5 minutes (its log says why).",
            Metrics=[
                _lambda_stat("errors", "Errors", function),
                _lambda_stat("invocations", "Invocations", function),
                {
                    "Id": "errorrate",
                    "Label": "error rate (%)",
                    "Expression": "IF(invocations > 0, 100 * errors / invocations, 0)",
                    "ReturnData": True,
                },
            ],
            EvaluationPeriods=1,
            Threshold=ERROR_RATE_PERCENT,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    for machine in stack.state_machines:
        resources[f"{machine}FailedAlarm"] = _alarm(
            f"A {machine} execution failed or timed out: that lead's timeline stopped early.",
            Metrics=[
                {
                    "Id": id_,
                    "ReturnData": False,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/States",
                            "MetricName": metric,
                            "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": machine}}],
                        },
                        "Period": 300,
                        "Stat": "Sum",
                    },
                }
                for id_, metric in (("failed", "ExecutionsFailed"), ("timedout", "ExecutionsTimedOut"))
            ]
            + [
                {"Id": "stopped", "Label": "failed or timed out", "Expression": "failed + timedout", "ReturnData": True}
            ],
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    for name, metric, threshold, level in (
        ("SesBounceRateAlarm", "Reputation.BounceRate", SES_BOUNCE_RATE_REVIEW, "5%"),
        ("SesComplaintRateAlarm", "Reputation.ComplaintRate", SES_COMPLAINT_RATE_REVIEW, "0.1%"),
    ):
        resources[name] = _alarm(
            f"The account's SES {metric} reached {level}, where SES puts the account under review: "
            "stop campaigns and look at list sources.",
            Namespace="AWS/SES",
            MetricName=metric,
            Statistic="Maximum",
            Period=3600,
            EvaluationPeriods=1,
            Threshold=threshold,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    return resources


# ------------------------------------------------------------- the files --


def stack_of(template: dict[str, Any], project: Path) -> Stack:
    """Functions, their log groups, dead-letter queues and state machines declared in the template."""
    resources = template["Resources"]
    of_type = lambda type_: sorted(name for name, r in resources.items() if r["Type"] == type_)  # noqa: E731
    functions = of_type("AWS::Serverless::Function")
    machines = of_type("AWS::Serverless::StateMachine")
    log_groups = sorted(
        {
            group
            for name in functions
            if (
                group := _target(((resources[name].get("Properties") or {}).get("LoggingConfig") or {}).get("LogGroup"))
            )
        }
    )
    definitions = {}
    for machine in machines:
        uri = resources[machine]["Properties"].get("DefinitionUri")
        definitions[machine] = json.loads((project / uri).read_text()) if isinstance(uri, str) else {}
    return Stack(
        functions=functions,
        queues=[name for name in of_type("AWS::SQS::Queue") if name.endswith("DeadLetterQueue")],
        state_machines=machines,
        log_groups=log_groups,
        resources=resources,
        definitions=definitions,
    )


def dashboard_text(stack: Stack) -> str:
    """The body as JSON laid out for reading: a widget per line, a metric per line."""
    body = dashboard_body(stack)
    widgets = []
    for widget in body["widgets"]:
        metrics = widget["properties"].get("metrics")
        if metrics is None:
            widgets.append(f"  {json.dumps(widget)}")
            continue
        shell = {**widget, "properties": {**widget["properties"], "metrics": "@metrics"}}
        lines = ",\n".join(f"    {json.dumps(metric)}" for metric in metrics)
        widgets.append(f"  {json.dumps(shell)}".replace('"@metrics"', f"[\n{lines}\n  ]"))
    head = json.dumps({k: v for k, v in body.items() if k != "widgets"})[:-1]
    return head + ', "widgets": [\n' + ",\n".join(widgets) + "\n]}\n"


def _without_block(template_text: str) -> str:
    if BEGIN not in template_text:
        return template_text
    start = template_text.index(BEGIN)
    end = template_text.index(END, start) + len(END) + 1
    return template_text[:start] + template_text[end:]


def render(template_text: str, project: Path) -> tuple[str, str]:
    """(the dashboard body file, template.yaml with its observability block) for
    the template's functions, log groups, queues and state machines (their
    definitions read under `project`)."""
    from nurture_tools.local.template import _CfnLoader

    outside = _without_block(template_text)
    stack = stack_of(yaml.load(outside, Loader=_CfnLoader), project)  # noqa: S506
    body = dashboard_text(stack)
    dashboard = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {"DashboardName": {"Fn::Sub": "nurture-${Stage}"}, "DashboardBody": {"Fn::Sub": _Literal(body)}},
    }
    resources = {"Dashboard": dashboard, **alarm_resources(stack)}
    block = yaml.dump(resources, Dumper=_Dumper, sort_keys=False, width=1000, indent=2)
    block = "".join(f"  {line}" if line.strip() else line for line in block.splitlines(keepends=True))
    header = (
        f"{BEGIN} (generated by `make dashboard` from the resources above;\n"
        "  # edit tools/nurture_tools/dashboard.py, not this block)\n"
    )
    generated = header + block + END + "\n"
    if BEGIN in template_text:  # regenerated where it stands, whatever was added after it
        start = template_text.index(BEGIN)
        end = template_text.index(END, start) + len(END) + 1
        return body, template_text[:start] + generated + template_text[end:]
    anchor = outside.index("\nOutputs:")
    return body, outside[:anchor].rstrip("\n") + "\n\n" + generated + outside[anchor:]


def write(project: Path) -> list[Path]:
    """Regenerate the dashboard file and the template's block; returns the files changed."""
    template = project / "template.yaml"
    body, text = render(template.read_text(), project)
    changed = []
    for path, content in ((project / DASHBOARD_FILE, body), (template, text)):
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            changed.append(path)
    return changed


def placeholders(body: str) -> set[str]:
    return set(re.findall(r"\$\{([^}!]+)\}", body))
