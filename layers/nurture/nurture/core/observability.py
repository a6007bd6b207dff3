"""The one place Logger and Metrics are built, and the catalogue of every
business count the functions record (lazily: cold start is a feature).

A recorded count reaches CloudWatch two ways, and the catalogue says which:

- **a metric series** (`series=True`): an embedded metric format (EMF)
  document, namespace `Nurture`, dimension `service=nurture` alone, summed
  per invocation. CloudWatch bills every series (name x dimension values) a
  month, so only the headline numbers marketing reads at a glance are series
  — `SERIES_BUDGET` bounds them, and no series carries a dimension.
- **a business record**, for every count, series or not: one JSON line on the
  function's log, `{"business_event": name, name: value, ...fields}`, the
  breakdown (track, stage, currency, bounce type ...) as plain fields. The
  dashboard's Logs Insights widgets group them (`stats sum(EmailsSent) by
  track`); a log line costs its bytes, not a series per value. Field values
  stay bounded all the same (track ids from the configuration, stages from
  the lifecycle, never lead ids or addresses), so the breakdowns read cleanly.

Records are printed, not logged through the Logger: the function's log level
(`LogLevel`) must not silence what the dashboard counts, exactly as it does
not silence the EMF documents Powertools prints. A zero is never recorded.

Recording is cheap and only buffers; `metered` (on every handler) flushes what
the invocation recorded when it returns or raises, so a handler reporting
partial batch failures still reports what it did. It also registers the
invocation's deadline (`nurture.core.deadline`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from nurture.core.deadline import Deadline, running
from nurture.core.stages import LIFECYCLE_STAGES

SERVICE = "nurture"
NAMESPACE = "Nurture"
OTHER = "other"  # a field value outside the bounded set
BUSINESS_EVENT = "business_event"  # the log field naming a business record
SERIES_BUDGET = 20  # custom metric series the functions may emit, in all

COUNT, NONE = "Count", "None"


class MetricDef:
    """One catalogued count (a plain class: defining it at import costs less
    than a NamedTuple or a dataclass; the whole module body runs in ~0.03 ms)."""

    __slots__ = ("name", "unit", "fields", "meaning", "series")

    def __init__(self, name: str, unit: str, fields: tuple[str, ...], meaning: str, *, series: bool = False) -> None:
        self.name = name
        self.unit = unit
        self.fields = fields  # the breakdown its business record carries
        self.meaning = meaning
        self.series = series  # also a CloudWatch metric (dimension service only)


def _catalogue(*defs: MetricDef) -> dict[str, MetricDef]:
    return {d.name: d for d in defs}


# Every business count, by name. Names and fields are part of the dashboard:
# rename one only together with tools/nurture_tools/dashboard.py (`make dashboard`).
CATALOGUE: dict[str, MetricDef] = _catalogue(
    # ingest
    MetricDef("EventsAccepted", COUNT, (), "tracking events the API validated and queued"),
    MetricDef("EventsRejected", COUNT, ("reason",), "calls of a batch dropped as invalid, by the field at fault"),
    MetricDef("EventsIngested", COUNT, (), "tracking events applied to leads by the track consumer"),
    MetricDef("DuplicateEvents", COUNT, (), "redelivered or resent events recognised and skipped"),
    # lifecycle, from the bus events published (whichever function publishes them)
    MetricDef("LeadStageChanges", COUNT, ("to_stage",), "lifecycle moves, by the stage entered"),
    MetricDef("DaysInStage", NONE, ("from_stage",), "days a lead spent in the stage it just left"),
    MetricDef("LeadsBecameWarm", COUNT, (), "lead.became_warm (MQL)", series=True),
    MetricDef("LeadsBecameHot", COUNT, (), "lead.became_hot (SQL)", series=True),
    MetricDef("LeadsHandedOff", COUNT, (), "lead.handed_off to sales", series=True),
    MetricDef("LeadsSalesAccepted", COUNT, (), "lead.sales_accepted", series=True),
    MetricDef("HandoffsEscalated", COUNT, (), "lead.handoff_escalated (sales SLA missed)", series=True),
    MetricDef("OpportunitiesCreated", COUNT, (), "lead.opportunity_created", series=True),
    MetricDef("DealsWon", COUNT, (), "lead.won", series=True),
    MetricDef("Revenue", NONE, ("currency",), "revenue of won deals, in the deal's currency"),
    MetricDef("LeadsBecameCustomer", COUNT, (), "lead.became_customer", series=True),
    MetricDef("LeadsRecycled", COUNT, (), "lead.recycled back to nurture"),
    MetricDef("LeadsLost", COUNT, (), "lead.lost"),
    MetricDef("LeadsDormant", COUNT, (), "lead.dormant"),
    MetricDef("LeadsDemoted", COUNT, (), "lead.demoted by score decay"),
    MetricDef("LeadsSunset", COUNT, (), "lead.sunset (graymail: stopped mailing the unengaged)"),
    MetricDef("LeadsReactivated", COUNT, (), "lead.reactivated (a dormant lead engaged again)"),
    MetricDef("LeadsUnsubscribed", COUNT, (), "lead.unsubscribed (link, one-click or mailbox provider)", series=True),
    MetricDef("LeadsErased", COUNT, (), "lead.erased on request"),
    MetricDef("FormsSubmitted", COUNT, (), "lead.form_submitted that asked for a timely response"),
    MetricDef("BehaviourTriggers", COUNT, (), "lead.behaviour_triggered"),
    MetricDef("ContentExhausted", COUNT, (), "lead.content_exhausted (nothing left that fits)"),
    # timelines and touches
    MetricDef("TimelinesEnrolled", COUNT, (), "timelines started"),
    MetricDef("TimelinesHoldout", COUNT, (), "enrollments kept in the control group"),
    MetricDef("TimelinesStopped", COUNT, (), "timelines stopped (hot, unsubscribed, exit stage)"),
    MetricDef("EmailsSent", COUNT, ("track",), "emails SES accepted", series=True),
    MetricDef("EmailsSkipped", COUNT, (), "email touches not sent (consent, already sent, no content)"),
    # SES feedback
    MetricDef("HumanOpens", COUNT, ("track",), "opens made by a person (scored)", series=True),
    MetricDef("HumanClicks", COUNT, ("track",), "clicks made by a person (scored)", series=True),
    MetricDef("MachineOpens", COUNT, (), "opens by scanners and privacy proxies (not scored)", series=True),
    MetricDef("MachineClicks", COUNT, (), "clicks by link scanners (not scored)"),
    MetricDef("Bounces", COUNT, ("bounce_type",), "bounce records about a lead's address"),
    MetricDef("Complaints", COUNT, (), "spam complaints (not-spam reports excluded)"),
    MetricDef("LeadsSuppressed", COUNT, ("consent",), "leads newly suppressed by SES feedback"),
    # channels
    MetricDef("AudienceMembersSynced", COUNT, (), "leads an ad platform accepted into an audience"),
    MetricDef("AudienceMembersRemoved", COUNT, (), "platform removals of leads leaving the audiences"),
    MetricDef("FormsAcknowledged", COUNT, (), "transactional acknowledgements sent for forms"),
    MetricDef("SalesAlerts", COUNT, (), "sales alerts for forms"),
    MetricDef("SalesTasksCreated", COUNT, (), "sales call tasks created from timeline steps"),
    # scheduled sweeps
    MetricDef("SweepRuns", COUNT, ("sweep",), "scheduled sweep runs"),
    MetricDef("SweepFailures", COUNT, ("sweep",), "scheduled sweep runs that raised"),
    MetricDef("SweepLeadsExamined", COUNT, ("sweep",), "due leads a sweep read (its read cost follows them)"),
    MetricDef("SweepReadCapacity", COUNT, ("sweep",), "DynamoDB read capacity units a sweep consumed"),
)


def metric_series() -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every custom metric series the functions can emit, as CloudWatch bills
    them: (name, dimension pairs). Series carry no dimension but `service`, so
    this is the catalogue's series, whatever the configuration."""
    return [(d.name, (("service", SERVICE),)) for d in CATALOGUE.values() if d.series]


# Bus event (detail-type) -> the metric counting it, wherever it is published.
BUS_EVENT_METRICS: dict[str, str] = {
    "lead.became_warm": "LeadsBecameWarm",
    "lead.became_hot": "LeadsBecameHot",
    "lead.handed_off": "LeadsHandedOff",
    "lead.sales_accepted": "LeadsSalesAccepted",
    "lead.handoff_escalated": "HandoffsEscalated",
    "lead.opportunity_created": "OpportunitiesCreated",
    "lead.won": "DealsWon",
    "lead.became_customer": "LeadsBecameCustomer",
    "lead.recycled": "LeadsRecycled",
    "lead.lost": "LeadsLost",
    "lead.dormant": "LeadsDormant",
    "lead.demoted": "LeadsDemoted",
    "lead.sunset": "LeadsSunset",
    "lead.reactivated": "LeadsReactivated",
    "lead.unsubscribed": "LeadsUnsubscribed",
    "lead.erased": "LeadsErased",
    "lead.form_submitted": "FormsSubmitted",
    "lead.behaviour_triggered": "BehaviourTriggers",
    "lead.content_exhausted": "ContentExhausted",
    "lead.stage_changed": "LeadStageChanges",
}
# ISO 4217 codes are three capital letters; anything else is not a currency.
_CURRENCY_LENGTH = 3


@lru_cache(maxsize=1)
def get_logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=SERVICE)


@lru_cache(maxsize=1)
def get_metrics() -> Any:
    """Powertools Metrics whose flush also prints the invocation's business
    records and adds its series, so `metered` and `@get_metrics().log_metrics`
    on a handler flush the same."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    class NurtureEMFProvider(AmazonCloudWatchEMFProvider):
        def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
            _drain(self, printing=not is_metrics_disabled())
            if self.metric_set or raise_on_empty_metrics:
                super().flush_metrics(raise_on_empty_metrics)
                self.clear_metrics()  # Powertools keeps them when metrics are disabled

    return Metrics(provider=NurtureEMFProvider(namespace=NAMESPACE, service=SERVICE))


# Values buffered until the flush: (name, field items) -> values.
_records: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}


def add_metric(name: str, value: float = 1, **fields: str) -> None:
    """Buffer one value of a catalogued count for this invocation's flush. A
    count of zero records nothing (nothing happened, and CloudWatch bills a
    series that receives only zeros all the same); a measure (days in stage,
    revenue) of zero is a value like any other.

    Raises KeyError for a name outside the catalogue and ValueError for
    fields the catalogue does not declare: names and fields stay stable
    because nothing else can be recorded."""
    definition = CATALOGUE[name]
    if set(fields) != set(definition.fields):
        raise ValueError(f"{name} takes fields {definition.fields}, got {tuple(fields)}")
    if not value and definition.unit == COUNT:
        return
    key = (name, tuple(sorted((k, str(v)) for k, v in fields.items())))
    _records.setdefault(key, []).append(value)


def bounded(value: Any, allowed: Iterable[str]) -> str:
    """The value itself if it is one of the allowed (configured) values, else `other`."""
    text = str(value) if value is not None else ""
    return text if text in allowed else OTHER


def record_bus_events(entries: Iterable[Mapping[str, Any]]) -> None:
    """Count published lead events ({"type", "detail"}) by detail-type; a won
    deal also adds its revenue, a stage change the days spent in the stage left."""
    for entry in entries:
        name = BUS_EVENT_METRICS.get(str(entry.get("type")))
        if name is None:
            continue
        detail = entry.get("detail") or {}
        if name == "LeadStageChanges":
            add_metric(name, to_stage=bounded(detail.get("to_stage"), LIFECYCLE_STAGES))
            days = detail.get("days_in_stage")
            if isinstance(days, int | float) and days >= 0:
                add_metric("DaysInStage", float(days), from_stage=bounded(detail.get("from_stage"), LIFECYCLE_STAGES))
            continue
        add_metric(name)
        revenue = detail.get("revenue")
        if name == "DealsWon" and isinstance(revenue, int | float) and not isinstance(revenue, bool) and revenue >= 0:
            currency = str(detail.get("currency") or "")
            valid = len(currency) == _CURRENCY_LENGTH and currency.isalpha() and currency.isupper()
            add_metric("Revenue", float(revenue), currency=currency if valid else OTHER)


@contextmanager
def sweep_run(sweep: str):
    """Count a scheduled sweep's run, and its failure if the body raises (the
    exception propagates, so Lambda also records the error)."""
    add_metric("SweepRuns", sweep=sweep)
    try:
        yield
    except Exception:
        add_metric("SweepFailures", sweep=sweep)
        raise


def flush_metrics() -> None:
    """Print what the invocation recorded: a business record per name and
    field values (a count summed, a measure per value), and one EMF document
    with the series among them."""
    if not _records and not get_metrics.cache_info().currsize:
        return  # nothing recorded in this process yet: not even Powertools is imported
    get_metrics().flush_metrics()


def _drain(provider: Any, *, printing: bool) -> None:
    totals: dict[str, float] = {}
    lines = []
    for (name, fields), values in _records.items():
        definition = CATALOGUE[name]
        for amount in [sum(values)] if definition.unit == COUNT else values:
            lines.append(json.dumps({BUSINESS_EVENT: name, name: amount, **dict(fields), "service": SERVICE}))
        if definition.series:
            totals[name] = totals.get(name, 0) + sum(values)
    _records.clear()
    if printing:
        for line in lines:  # one print per line: one log event per record
            print(line)
    for name, total in totals.items():
        provider.add_metric(name=name, unit=CATALOGUE[name].unit, value=total)


def clear_metrics() -> None:
    """Drop everything buffered (tests; a handler never needs it)."""
    _records.clear()
    if get_metrics.cache_info().currsize:
        get_metrics().clear_metrics()


Handler = TypeVar("Handler", bound=Callable[..., Any])


def metered(handler: Handler) -> Handler:
    """One invocation of a Lambda handler `(event, context)`: its deadline
    registered from the context (`nurture.core.deadline`: the leases of its
    claims and its outbound HTTP are bounded by it), and its business counts
    flushed when the handler returns or raises."""

    @functools.wraps(handler)
    def invocation(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        with running(Deadline.of(context)):
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                flush_metrics()

    return invocation  # type: ignore[return-value]
