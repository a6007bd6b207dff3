"""The CloudWatch dashboard and alarms, generated from what the stack holds.

`nurture dashboard` (`make dashboard`) writes:
- `infra/dashboards/nurture.json`: the dashboard body, with `${Placeholders}`
  (`${AWS::Region}`, `${TrackFunction}`, `${IngestDeadLetterQueue.QueueName}`
  ...) that CloudFormation's Fn::Sub fills at deploy time;
- the observability block of `template.yaml` (between its BEGIN/END marker
  comments): the dashboard with that body under `!Sub`, an alarm topic, and
  an alarm per dead-letter queue, per function error rate, SES reputation
  and sweep failures.

Why generated: CloudFormation cannot read a local file into DashboardBody
(`AWS::Include` needs S3 and does not translate offline), so the body must sit
in the template; and per-track engagement rates need one metric-math line per
configured track, which only the configuration knows. Functions, dead-letter
queues and state machines are read from the template itself, so a new one gets
its widgets and alarms at the next `make dashboard`; the template tests fail
until then.

Deploy-time tooling: nothing here runs in a Lambda function.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from nurture.core.observability import NAMESPACE, SERVICE

BEGIN = "  # BEGIN observability"
END = "  # END observability"
DASHBOARD_FILE = Path("infra/dashboards/nurture.json")
FUNNEL_STAGES = ("subscriber", "lead", "warm", "hot", "opportunity", "customer")
ACCELERATION_STAGES = ("lead", "warm", "hot", "opportunity")
SES_BOUNCE_RATE_REVIEW = 0.05  # SES reviews an account at a 5% bounce rate ...
SES_COMPLAINT_RATE_REVIEW = 0.001  # ... and at a 0.1% complaint rate
ERROR_RATE_PERCENT = 5
DAY = 86400
WIDTH = 24


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


def _funnel() -> list[dict]:
    entered = [_nurture("LeadStageChanges", "to_stage", stage, {"label": f"became {stage}"}) for stage in FUNNEL_STAGES]
    return [
        _text("## Funnel\nEvents in, leads entering each lifecycle stage, and what sales made of them."),
        _counts("Events accepted and ingested", ["EventsAccepted", "EventsIngested", "DuplicateEvents"]),
        _widget(
            "Calls dropped from batches, by the field at fault",
            [
                _expression(
                    f"SEARCH('{{{NAMESPACE},reason,service}} MetricName=\"EventsRejected\"', 'Sum', {DAY})",
                    "rejected",
                    "rejected",
                )
            ],
        ),
        _widget("Leads entering each stage", entered, width=8, view="bar", setPeriodToTimeRange=True),
        _counts(
            "Marketing to sales",
            ["LeadsBecameWarm", "LeadsBecameHot", "LeadsHandedOff", "LeadsSalesAccepted", "OpportunitiesCreated"],
            view="singleValue",
            setPeriodToTimeRange=True,
        ),
    ]


def _rate(numerator: str, denominator: str, label: str, id_: str) -> list[Any]:
    return _expression(f"IF(({denominator}) > 0, 100 * {numerator} / ({denominator}), 0)", label, id_)


def _engagement(tracks: list[str]) -> list[dict]:
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
    opens: list[list[Any]] = []
    clicks: list[list[Any]] = []
    for n, track in enumerate(tracks):
        hidden = {"visible": False}
        sent = _nurture("EmailsSent", "track", track, {"id": f"s{n}", **hidden})
        opens += [sent, _nurture("HumanOpens", "track", track, {"id": f"o{n}", **hidden})]
        opens += [_rate(f"o{n}", f"s{n}", track, f"or{n}")]
        clicks += [sent, _nurture("HumanClicks", "track", track, {"id": f"c{n}", **hidden})]
        clicks += [_rate(f"c{n}", f"s{n}", track, f"cr{n}")]
    return [
        _text(
            "## Engagement\nHuman opens and clicks only: mail scanners and privacy proxies are counted apart "
            "(machine share). Rates are per email sent in the same period."
        ),
        _counts(
            "Emails", ["EmailsSent", "EmailsSkipped", "HumanOpens", "HumanClicks", "MachineOpens", "MachineClicks"]
        ),
        _widget("Engagement rates (%)", overall),
        _widget("Human open rate by track (%)", opens),
        _widget("Human click rate by track (%)", clicks, width=12),
        _counts(
            "Timelines",
            ["TimelinesEnrolled", "TimelinesHoldout", "TimelinesStopped", "BehaviourTriggers", "ContentExhausted"],
            width=12,
        ),
    ]


def _acceleration() -> list[dict]:
    days = [
        _nurture("DaysInStage", "from_stage", stage, {"label": f"days as {stage}"}) for stage in ACCELERATION_STAGES
    ]
    return [
        _text("## Acceleration\nAverage days a lead spent in a stage before moving on (lower is faster)."),
        _widget("Days in stage before moving on", days, width=WIDTH, stat="Average", period=7 * DAY),
    ]


def _outcomes() -> list[dict]:
    revenue = _expression(
        f"SEARCH('{{{NAMESPACE},currency,service}} MetricName=\"Revenue\"', 'Sum', {DAY})", "revenue", "revenue"
    )
    return [
        _text("## Outcomes\nWon deals and revenue (per currency), and where the other leads went."),
        _counts("Deals", ["DealsWon", "LeadsBecameCustomer", "HandoffsEscalated"], view="singleValue"),
        _widget("Revenue by currency", [revenue]),
        _counts(
            "Recycle, loss and reactivation",
            [
                "LeadsRecycled",
                "LeadsLost",
                "LeadsDormant",
                "LeadsReactivated",
                "LeadsDemoted",
                "LeadsSunset",
                "LeadsErased",
            ],
        ),
        _counts(
            "Channels",
            ["AudienceMembersSynced", "AudienceMembersRemoved", "FormsSubmitted", "FormsAcknowledged", "SalesAlerts"]
            + ["SalesTasksCreated"],
            width=12,
        ),
        _widget(
            "Deliverability: bounces, complaints, suppressions",
            [
                _nurture("Bounces", "bounce_type", "Permanent"),
                _nurture("Bounces", "bounce_type", "Transient"),
                _nurture("Complaints"),
                _nurture("LeadsSuppressed", "consent", "bounced"),
                _nurture("LeadsSuppressed", "consent", "complained"),
                _nurture("LeadsSuppressed", "consent", "unsubscribed"),
            ],
            width=12,
        ),
    ]


def _health(functions: list[str], queues: list[str], state_machines: list[str]) -> list[dict]:
    def per_function(metric: str) -> list[list[Any]]:
        return [["AWS/Lambda", metric, "FunctionName", f"${{{name}}}", {"label": name}] for name in functions]

    dlq_depth = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"${{{queue}.QueueName}}", {"label": queue}]
        for queue in queues
    ]
    executions = [
        ["AWS/States", metric, "StateMachineArn", f"${{{machine}}}", {"label": f"{machine} {metric}"}]
        for machine in state_machines
        for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut")
    ]
    sweeps = [
        _expression(
            f"SEARCH('{{{NAMESPACE},service,sweep}} MetricName=\"{name}\"', 'Sum', 3600)", name.lower(), name.lower()
        )
        for name in ("SweepRuns", "SweepFailures", "SweepLeadsExamined", "SweepReadCapacity")
    ]
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
        _widget("Scheduled sweeps", sweeps, period=3600),
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


def dashboard_body(
    tracks: list[str], functions: list[str], queues: list[str], state_machines: list[str]
) -> dict[str, Any]:
    widgets = [
        *_funnel(),
        *_engagement(tracks),
        *_acceleration(),
        *_outcomes(),
        *_health(functions, queues, state_machines),
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


def alarm_resources(functions: list[str], queues: list[str], state_machines: list[str]) -> dict[str, Any]:
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
    for queue in queues:
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
    for function in functions:
        resources[f"{function}ErrorRateAlarm"] = _alarm(
            f"{function}: {ERROR_RATE_PERCENT}% or more of its invocations failed in 5 minutes.",
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
    for machine in state_machines:
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
    resources["SweepFailuresAlarm"] = _alarm(
        "A scheduled sweep (waking the dead, decay demotion, graymail sunset ...) failed; "
        "the next run retries, but leads wait until then.",
        Namespace=NAMESPACE,
        MetricName="SweepFailures",
        Dimensions=[{"Name": "service", "Value": SERVICE}],
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return resources


# ------------------------------------------------------------- the files --


def stack_parts(template: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Functions, dead-letter queues and state machines declared in the template."""
    resources = template["Resources"]
    of_type = lambda type_: sorted(name for name, r in resources.items() if r["Type"] == type_)  # noqa: E731
    queues = [name for name in of_type("AWS::SQS::Queue") if name.endswith("DeadLetterQueue")]
    return of_type("AWS::Serverless::Function"), queues, of_type("AWS::Serverless::StateMachine")


def dashboard_text(tracks: list[str], functions: list[str], queues: list[str], state_machines: list[str]) -> str:
    """The body as JSON laid out for reading: a widget per line, a metric per line."""
    body = dashboard_body(tracks, functions, queues, state_machines)
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


def render(template_text: str, tracks: list[str]) -> tuple[str, str]:
    """(the dashboard body file, template.yaml with its observability block) for
    the template's functions, queues and state machines and the given tracks."""
    from nurture_tools.local.template import _CfnLoader

    outside = _without_block(template_text)
    functions, queues, machines = stack_parts(yaml.load(outside, Loader=_CfnLoader))  # noqa: S506
    body = dashboard_text(tracks, functions, queues, machines)
    dashboard = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {"DashboardName": {"Fn::Sub": "nurture-${Stage}"}, "DashboardBody": {"Fn::Sub": _Literal(body)}},
    }
    resources = {"Dashboard": dashboard, **alarm_resources(functions, queues, machines)}
    block = yaml.dump(resources, Dumper=_Dumper, sort_keys=False, width=1000, indent=2)
    block = "".join(f"  {line}" if line.strip() else line for line in block.splitlines(keepends=True))
    header = (
        f"{BEGIN} (generated by `make dashboard` from the resources above and\n"
        "  # config/tracks.yaml; edit tools/nurture_tools/dashboard.py, not this block)\n"
    )
    generated = header + block + END + "\n"
    if BEGIN in template_text:  # regenerated where it stands, whatever was added after it
        start = template_text.index(BEGIN)
        end = template_text.index(END, start) + len(END) + 1
        return body, template_text[:start] + generated + template_text[end:]
    anchor = outside.index("\nOutputs:")
    return body, outside[:anchor].rstrip("\n") + "\n\n" + generated + outside[anchor:]


def tracks_of(config_dir: Path) -> list[str]:
    from nurture.config.loader import load_config
    from nurture.timelines.use_cases import metric_track_ids

    return sorted(metric_track_ids(load_config(config_dir)))


def write(project: Path) -> list[Path]:
    """Regenerate the dashboard file and the template's block; returns the files changed."""
    template = project / "template.yaml"
    body, text = render(template.read_text(), tracks_of(project / "config"))
    changed = []
    for path, content in ((project / DASHBOARD_FILE, body), (template, text)):
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            changed.append(path)
    return changed


def placeholders(body: str) -> set[str]:
    return set(re.findall(r"\$\{([^}!]+)\}", body))
