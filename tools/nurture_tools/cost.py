"""What a Nurture deployment costs a month, term by term, at AWS list prices.

The bill has three parts:

- **fixed**: what a deployment pays whatever its traffic — the custom metric
  series the functions emit (the catalogue, `observability.metric_series`),
  alarms (each metric an alarm reads), dashboards beyond the free ones,
  secrets, customer managed KMS keys, schedules, and the idle long polls of
  Lambda's SQS event source mappings; counted from `template.yaml` and the
  product's code, never typed in here;
- **per lead**: what grows with the leads, from quantities *measured* per
  lead-month by replaying a sample of leads' month of browser traffic through
  the real handlers (`nurture_tools.cost_replay`) and walking the timeline
  (`nurture_tools.cost_timeline`), scaled linearly to the leads asked for;
- **SES**: the per-email fee, apart (the acceptance excludes it).

Prices come from one data file, `prices.json` (each with its unit, source page
and the date they were taken). `nurture cost` prints the bill; `make bench`
adds it to its report.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")
DAYS_PER_MONTH = 30
SECONDS_PER_MONTH = DAYS_PER_MONTH * 86400
# A Lambda SQS event source mapping long-polls its queue whether or not
# messages come: AWS documents up to 5 concurrent pollers at rest, each
# ReceiveMessage waiting up to 20 s. That is 5 x 3 per minute, billed as SQS
# requests, per mapping, all month.
IDLE_POLLERS_PER_MAPPING = 5
IDLE_POLL_SECONDS = 20
INGEST_ROUTE = "/v1/{call}"  # where the browser SDKs send every call
# Goals of the cost issue: the fixed floor and the per-lead cost excluding SES.
FIXED_GOAL = 10.0
PER_10K_LEADS_GOAL = 3.0

FIXED, PER_LEAD, SES = "fixed", "per_lead", "ses"


# ------------------------------------------------------------------ prices --


@dataclass(frozen=True)
class Price:
    key: str
    price: float  # dollars per `per` units
    per: float
    unit: str
    source: str
    free: float = 0  # units a month the product counts as free (dashboards only)

    def of(self, quantity: float) -> float:
        return quantity * self.price / self.per


@dataclass(frozen=True)
class PriceBook:
    as_of: date
    region: str
    currency: str
    prices: dict[str, Price]

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]


class PriceFileError(ValueError):
    """The prices file is missing a field or holds one that is not a price."""


def load_prices(path: Path = PRICES_FILE) -> PriceBook:
    """The price book, checked: a date, a region, and every price a positive
    number with its unit and source page."""
    data = json.loads(path.read_text())
    for required in ("as_of", "region", "currency", "prices"):
        if required not in data:
            raise PriceFileError(f"{path.name}: `{required}` is missing")
    try:
        as_of = date.fromisoformat(data["as_of"])
    except (TypeError, ValueError) as error:
        raise PriceFileError(f"{path.name}: as_of must be a date (YYYY-MM-DD), got {data['as_of']!r}") from error
    prices = {}
    for key, spec in data["prices"].items():
        for required in ("price", "per", "unit", "source"):
            if required not in spec:
                raise PriceFileError(f"{path.name}: prices.{key}.{required} is missing")
        if not isinstance(spec["price"], int | float) or spec["price"] < 0:
            raise PriceFileError(f"{path.name}: prices.{key}.price must be a number >= 0")
        if not isinstance(spec["per"], int | float) or spec["per"] <= 0:
            raise PriceFileError(f"{path.name}: prices.{key}.per must be a number > 0")
        prices[key] = Price(
            key, float(spec["price"]), float(spec["per"]), spec["unit"], spec["source"], float(spec.get("free", 0))
        )
    return PriceBook(as_of, data["region"], data["currency"], prices)


# --------------------------------------------------------------- inventory --


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    memory_mb: int
    architecture: str  # arm64 or x86_64


@dataclass
class Inventory:
    """What template.yaml and the product's code declare: the fixed part of
    the bill and the settings the per-lead part depends on."""

    metric_series: int
    alarms: int
    alarm_metrics: int
    dashboards: int
    secrets: int
    kms_keys: int
    api_type: str  # REST or HTTP
    tracing_default: str
    log_retention_days: int
    event_retention_days: int
    point_in_time_recovery: bool
    state_machine_log_level: str
    sqs_event_sources: list[str]
    schedules: dict[str, float]  # logical id -> invocations a month
    functions: dict[str, FunctionSpec] = field(default_factory=dict)

    def function(self, code_uri: str) -> FunctionSpec:
        for spec in self.functions.values():
            if spec.code_uri == code_uri:
                return spec
        raise LookupError(f"template.yaml has no function with CodeUri {code_uri}")


def _alarm_metrics(properties: dict[str, Any]) -> int:
    """Metrics an alarm is billed for: one for a single-metric alarm, each
    metric a metric math alarm reads (expressions themselves are free)."""
    metrics = properties.get("Metrics")
    if not metrics:
        return 1
    return sum(1 for query in metrics if "MetricStat" in query)


def _invocations_per_month(expression: str) -> float:
    """A schedule expression's runs in a 30-day month: cron with fixed
    minute and hour (daily, or on listed weekdays), or rate()."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if rate:
        seconds = {"minute": 60, "hour": 3600, "day": 86400}[rate.group(2).rstrip("s")]
        return SECONDS_PER_MONTH / (int(rate.group(1)) * seconds)
    cron = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+)(?: (\S+))?\)", expression.strip())
    if not cron:
        raise ValueError(f"cannot count the runs of schedule {expression!r}")
    minute, hour, day_of_month, _, day_of_week = cron.groups()[:5]
    per_day = len(minute.split(",")) * len(hour.split(",")) if "*" not in minute + hour else None
    if per_day is None or "/" in minute + hour:
        raise ValueError(f"cannot count the runs of schedule {expression!r}")
    if day_of_month in ("*", "?") and day_of_week in ("*", "?"):
        return per_day * DAYS_PER_MONTH
    if day_of_month in ("*", "?"):
        days = sum(len(range(*map(int, part.split("-")))) + 1 if "-" in part else 1 for part in day_of_week.split(","))
        return per_day * DAYS_PER_MONTH * days / 7
    return per_day * len(day_of_month.split(","))


def read_inventory(project_dir: Path) -> Inventory:
    """Counts the fixed resources of template.yaml and the metric catalogue."""
    from nurture.core.observability import metric_series
    from nurture_tools.local.template import load_template

    template = load_template(project_dir / "template.yaml")
    parameters = template.get("Parameters") or {}
    resources = template["Resources"]
    globals_ = (template.get("Globals") or {}).get("Function") or {}

    def default(name: str) -> Any:
        return (parameters.get(name) or {}).get("Default")

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {k: r.get("Properties") or {} for k, r in resources.items() if r["Type"] == kind}

    functions = {}
    event_sources = []
    schedules = {}
    api_type = "REST"
    for logical_id, properties in of_type("AWS::Serverless::Function").items():
        architectures = properties.get("Architectures") or globals_.get("Architectures") or ["x86_64"]
        functions[logical_id] = FunctionSpec(
            logical_id,
            str(properties.get("CodeUri", "")),
            int(properties.get("MemorySize") or globals_.get("MemorySize") or 128),
            architectures[0],
        )
        for name, event in (properties.get("Events") or {}).items():
            if event["Type"] == "SQS":
                event_sources.append(f"{logical_id}.{name}")
            elif event["Type"] == "HttpApi" and (event.get("Properties") or {}).get("Path") == INGEST_ROUTE:
                # The API the replayed traffic reaches is the one the tracking calls go to
                # (a REST API kept for old email links only bills their rare clicks).
                api_type = "HTTP"
            elif event["Type"] in ("ScheduleV2", "Schedule"):
                expression = (event.get("Properties") or {}).get("ScheduleExpression")
                if isinstance(expression, dict) and "Ref" in expression:
                    expression = default(expression["Ref"])
                schedules[f"{logical_id}.{name}"] = _invocations_per_month(str(expression))
    alarms = of_type("AWS::CloudWatch::Alarm")
    table = next(iter(of_type("AWS::DynamoDB::Table").values()))
    machines = of_type("AWS::Serverless::StateMachine")
    log_level = next(iter(machines.values()), {}).get("Logging", {}).get("Level", "OFF") if machines else "OFF"
    return Inventory(
        metric_series=len(metric_series()),
        alarms=len(alarms),
        alarm_metrics=sum(_alarm_metrics(properties) for properties in alarms.values()),
        dashboards=len(of_type("AWS::CloudWatch::Dashboard")),
        secrets=len(of_type("AWS::SecretsManager::Secret")),
        kms_keys=len(of_type("AWS::KMS::Key")),
        api_type=api_type,
        tracing_default=str(default("Tracing") or "Disabled"),
        log_retention_days=int(default("LogRetentionDays") or 0),
        event_retention_days=int(default("EventRetentionDays") or 0),
        point_in_time_recovery=bool(
            (table.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
        ),
        state_machine_log_level=str(log_level),
        sqs_event_sources=sorted(event_sources),
        schedules=schedules,
        functions=functions,
    )


# -------------------------------------------------------------------- bill --


@dataclass(frozen=True)
class Line:
    service: str
    term: str
    kind: str  # fixed, per_lead or ses
    quantity: float  # units a month
    unit: str
    price_key: str
    dollars: float
    note: str = ""


@dataclass
class Bill:
    leads: int
    lines: list[Line]
    prices_as_of: str
    notes: list[str] = field(default_factory=list)

    def total(self, kind: str | None = None) -> float:
        return sum(line.dollars for line in self.lines if kind is None or line.kind == kind)

    @property
    def per_10k_leads(self) -> float:
        """Per-lead dollars (SES's per-email fee excluded) per 10,000 leads."""
        return self.total(PER_LEAD) * 10_000 / self.leads

    def goals(self) -> dict[str, Any]:
        return {
            "fixed_monthly": {
                "goal": f"<= {FIXED_GOAL}",
                "value": round(self.total(FIXED), 2),
                "met": self.total(FIXED) <= FIXED_GOAL,
            },
            "per_10k_leads_excluding_ses": {
                "goal": f"<= {PER_10K_LEADS_GOAL}",
                "value": round(self.per_10k_leads, 2),
                "met": self.per_10k_leads <= PER_10K_LEADS_GOAL,
            },
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "leads": self.leads,
            "fixed_monthly": round(self.total(FIXED), 2),
            "per_lead_monthly": round(self.total(PER_LEAD), 2),
            "per_10k_leads_excluding_ses": round(self.per_10k_leads, 3),
            "ses_monthly": round(self.total(SES), 2),
            "total_monthly": round(self.total(), 2),
            "goals": self.goals(),
            "lines": [{**asdict(line), "dollars": round(line.dollars, 4)} for line in self.lines],
            "notes": self.notes,
        }


@dataclass
class Usage:
    """Quantities per lead-month (measured by the replay) and per month
    (the timeline's, per enrolled lead), with what each came from."""

    per_lead: dict[str, float]
    lambda_per_lead: dict[str, dict[str, float]]  # code uri -> invocations, mean_ms, log_bytes per lead-month
    measured: dict[str, Any]
    assumptions: list[str]


def compute_bill(leads: int, prices: PriceBook, inventory: Inventory, usage: Usage) -> Bill:
    """The month's bill for `leads` active leads: the fixed lines from the
    inventory, the per-lead lines from the usage, each at its list price."""
    lines: list[Line] = []

    def add(service: str, term: str, kind: str, quantity: float, key: str, note: str = "") -> None:
        price = prices[key]
        billed = max(0.0, quantity - price.free)
        lines.append(Line(service, term, kind, quantity, price.unit, key, price.of(billed), note))

    u = usage.per_lead

    # Fixed.
    add(
        "CloudWatch",
        "custom metric series",
        FIXED,
        inventory.metric_series,
        "cloudwatch_custom_metric_month",
        "observability.metric_series(): dimension service only",
    )
    add(
        "CloudWatch",
        f"alarms ({inventory.alarms}, by metric read)",
        FIXED,
        inventory.alarm_metrics,
        "cloudwatch_alarm_metric_month",
        "template.yaml AWS::CloudWatch::Alarm",
    )
    add(
        "CloudWatch",
        "dashboards",
        FIXED,
        inventory.dashboards,
        "cloudwatch_dashboard_month",
        f"{prices['cloudwatch_dashboard_month'].free:g} free",
    )
    add("Secrets Manager", "secrets", FIXED, inventory.secrets, "secretsmanager_secret_month")
    add("KMS", "customer managed keys", FIXED, inventory.kms_keys, "kms_customer_key_month")
    polls = len(inventory.sqs_event_sources) * IDLE_POLLERS_PER_MAPPING * SECONDS_PER_MONTH / IDLE_POLL_SECONDS
    add(
        "SQS",
        f"idle long polls ({len(inventory.sqs_event_sources)} event source mappings)",
        FIXED,
        polls,
        "sqs_standard_request",
        f"{IDLE_POLLERS_PER_MAPPING} pollers x 1 per {IDLE_POLL_SECONDS} s each",
    )
    scheduled = sum(inventory.schedules.values())
    add(
        "EventBridge",
        "scheduler runs",
        FIXED,
        scheduled,
        "eventbridge_scheduler_invocation",
        ", ".join(sorted(inventory.schedules)),
    )
    add("Lambda", "scheduled invocations", FIXED, scheduled, "lambda_request")

    # Per lead.
    requests = u["api_requests"] * leads
    api_key = "apigateway_rest_request" if inventory.api_type == "REST" else "apigateway_http_request"
    add(
        "API Gateway",
        f"{inventory.api_type} API requests",
        PER_LEAD,
        requests,
        api_key,
        "one per browser call (analytics.js)",
    )
    invocations = gb_seconds = log_bytes = 0.0
    for code_uri, figures in usage.lambda_per_lead.items():
        spec = inventory.function(code_uri)
        invocations += figures["invocations"] * leads
        # Lambda bills duration in 1 ms steps, each invocation rounded up.
        gb_seconds += figures["invocations"] * leads * math.ceil(figures["mean_ms"]) / 1000 * spec.memory_mb / 1024
        log_bytes += figures["log_bytes"] * leads
    architectures = {spec.architecture for spec in inventory.functions.values()}
    duration_key = "lambda_arm_gb_second" if architectures == {"arm64"} else "lambda_x86_gb_second"
    add("Lambda", "invocations", PER_LEAD, invocations, "lambda_request")
    add(
        "Lambda",
        "duration (GB-s)",
        PER_LEAD,
        gb_seconds,
        duration_key,
        ", ".join(f"{uri.split('/')[-1]} {f['mean_ms']:.0f} ms" for uri, f in usage.lambda_per_lead.items()),
    )
    add("SQS", "requests (send, receive, delete)", PER_LEAD, u["sqs_requests"] * leads, "sqs_standard_request")
    add(
        "DynamoDB",
        "write request units",
        PER_LEAD,
        u["dynamodb_wru"] * leads,
        "dynamodb_write_request_unit",
        "table and both indexes",
    )
    add("DynamoDB", "read request units", PER_LEAD, u["dynamodb_rru"] * leads, "dynamodb_read_request_unit")
    storage_gb = u["table_bytes"] * leads / 1e9
    add(
        "DynamoDB",
        "storage (GB-month)",
        PER_LEAD,
        storage_gb,
        "dynamodb_storage_gb_month",
        f"steady state: {inventory.event_retention_days} days of events kept",
    )
    if inventory.point_in_time_recovery:
        add("DynamoDB", "point-in-time recovery (GB-month)", PER_LEAD, storage_gb, "dynamodb_pitr_gb_month")
    add("EventBridge", "custom events", PER_LEAD, u["bus_events"] * leads, "eventbridge_custom_event")
    add(
        "Step Functions",
        "standard state transitions",
        PER_LEAD,
        u["transitions"] * leads,
        "stepfunctions_standard_transition",
        f"{usage.measured['timeline']['transitions_per_enrolled_lead_month']:.1f} per enrolled lead-month",
    )
    log_gb = log_bytes / 1e9
    add(
        "CloudWatch Logs",
        "ingestion (GB)",
        PER_LEAD,
        log_gb,
        "cloudwatch_logs_ingest_gb",
        "the functions' lines, EMF documents and Lambda's START/END/REPORT",
    )
    add(
        "CloudWatch Logs",
        "storage (GB-month)",
        PER_LEAD,
        log_gb * inventory.log_retention_days / DAYS_PER_MONTH,
        "cloudwatch_logs_storage_gb_month",
        f"{inventory.log_retention_days} days kept, uncompressed bytes",
    )
    traces = invocations if inventory.tracing_default == "Active" else 0.0
    add(
        "X-Ray",
        "traces",
        PER_LEAD,
        traces,
        "xray_trace_recorded",
        f"Tracing parameter default {inventory.tracing_default}",
    )
    add(
        "Secrets Manager",
        "API calls",
        PER_LEAD,
        u["secret_calls"] * leads,
        "secretsmanager_api_call",
        "once per cold start (cached)",
    )

    # SES, apart.
    add("SES", "outbound email", SES, u["emails"] * leads, "ses_outbound_email")

    insights_gb = log_gb
    notes = [
        f"Logs Insights is billed per query: a dashboard view over 30 days scans about {insights_gb:.2f} GB "
        f"(${prices['cloudwatch_logs_insights_gb_scanned'].of(insights_gb):.4f}) per widget; not in the totals.",
        *usage.assumptions,
    ]
    return Bill(leads, lines, prices.as_of.isoformat(), notes)


# ------------------------------------------------------------------ render --


def _money(value: float) -> str:
    return f"{value:,.2f}" if value >= 0.01 or value == 0 else f"{value:.4f}"


def _quantity(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(bills: list[Bill], prices: PriceBook) -> str:
    """The bills side by side, one line per term, then the totals and goals."""
    head = f"{'service':<16} {'term':<48} {'kind':<8}" + "".join(
        f" {f'{b.leads:,} leads':>16} {'$/month':>10}" for b in bills
    )
    rows = [
        f"Nurture monthly bill at AWS list prices ({prices.region}, prices of {prices.as_of.isoformat()})",
        "",
        head,
        "-" * len(head),
    ]
    for i, line in enumerate(bills[0].lines):
        cells = "".join(f" {_quantity(b.lines[i].quantity):>16} {_money(b.lines[i].dollars):>10}" for b in bills)
        rows.append(f"{line.service:<16} {line.term[:48]:<48} {line.kind:<8}{cells}")
    rows.append("-" * len(head))
    for label, kind in (("fixed", FIXED), ("per lead (SES excluded)", PER_LEAD), ("SES", SES), ("total", None)):
        cells = "".join(f" {'':>16} {_money(b.total(kind)):>10}" for b in bills)
        rows.append(f"{label:<74}{cells}")
    cells = "".join(f" {'':>16} {_money(b.per_10k_leads):>10}" for b in bills)
    rows.append(f"{'per 10,000 leads (SES excluded)':<74}{cells}")
    rows.append("")
    for b in bills:
        goals = b.goals()
        rows.append(
            f"{b.leads:,} leads: fixed ${goals['fixed_monthly']['value']:.2f} (goal {goals['fixed_monthly']['goal']}, "
            f"{'met' if goals['fixed_monthly']['met'] else 'NOT met'}); per 10,000 leads "
            f"${goals['per_10k_leads_excluding_ses']['value']:.2f} (goal "
            f"{goals['per_10k_leads_excluding_ses']['goal']}, "
            f"{'met' if goals['per_10k_leads_excluding_ses']['met'] else 'NOT met'})"
        )
    rows += ["", "Notes:", *(f"- {note}" for note in bills[0].notes)]
    return "\n".join(rows)


# --------------------------------------------------------------------- run --

DEFAULT_LEADS = (10_000, 1_000_000)
DEFAULT_SAMPLE_LEADS = 200


def run(
    project_dir: Path,
    leads: list[int] | tuple[int, ...] = DEFAULT_LEADS,
    sample_leads: int = DEFAULT_SAMPLE_LEADS,
    seed: int = 7,
    prices_file: Path = PRICES_FILE,
) -> tuple[list[Bill], dict[str, Any], PriceBook]:
    """The bills for each number of leads (one replay each: the arrival rate
    shapes the batches) and the report `--json` and `make bench` print."""
    from nurture_tools.cost_replay import at_rate, measure_usage

    prices = load_prices(prices_file)
    inventory = read_inventory(project_dir)
    bills = []
    report: dict[str, Any] = {
        "prices": {"file": prices_file.name, "as_of": prices.as_of.isoformat(), "region": prices.region},
        "inventory": {k: v for k, v in asdict(inventory).items() if k != "functions"},
        "memory_mb": {spec.code_uri: spec.memory_mb for spec in inventory.functions.values()},
        "bills": {},
    }
    # One replay, at the smallest site's rate (as near as the sample's
    # sessions allow); each bill takes its own site's batches (`at_rate`).
    measured = measure_usage(project_dir, inventory, min(leads), sample_leads, seed)
    for count in leads:
        usage = at_rate(measured, count)
        bill = compute_bill(count, prices, inventory, usage)
        bills.append(bill)
        report["bills"][str(count)] = {
            **bill.as_dict(),
            "per_lead_quantities": {k: round(v, 4) for k, v in usage.per_lead.items()},
            "measured": usage.measured,
        }
    report["goals"] = {f"{b.leads}.{name}": goal for b in bills for name, goal in b.goals().items()}
    report["all_goals_met"] = all(goal["met"] for goal in report["goals"].values())
    return bills, report, prices
