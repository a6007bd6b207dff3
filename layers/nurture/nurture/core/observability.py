"""The one place Logger and Metrics are built, and the catalogue of every
business metric the functions emit (lazily: cold start is a feature).

Metrics are CloudWatch embedded metric format (EMF) documents that Powertools
prints to the function's log, namespace `Nurture`, always with the dimension
`service=nurture`. A metric with dimensions (e.g. per track) is emitted twice
in one document: once per dimension set (`[service]` for the total,
`[service, track]` for the split), so the dashboard reads totals without
SEARCH. Dimension values are bounded by construction: track ids come from the
configuration, stages from the lifecycle, never lead ids or addresses.

Recording is cheap and only buffers; `metered` (on every handler) flushes what
the invocation recorded when it returns or raises, so a handler reporting
partial batch failures still reports what it did. It also registers the
invocation's deadline (`nurture.core.deadline`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from nurture.core.deadline import Deadline, running
from nurture.core.stages import LIFECYCLE_STAGES

SERVICE = "nurture"
NAMESPACE = "Nurture"
OTHER = "other"  # a dimension value outside the bounded set

COUNT, NONE = "Count", "None"


class MetricDef:
    """One catalogued metric (a plain class: defining it at import costs less
    than a NamedTuple or a dataclass; the whole module body runs in ~0.03 ms)."""

    __slots__ = ("name", "unit", "dimensions", "meaning")

    def __init__(self, name: str, unit: str, dimensions: tuple[str, ...], meaning: str) -> None:
        self.name = name
        self.unit = unit
        self.dimensions = dimensions  # besides service; each is also emitted without them
        self.meaning = meaning


def _catalogue(*defs: MetricDef) -> dict[str, MetricDef]:
    return {d.name: d for d in defs}


# Every business metric, by name. Names are part of the dashboard and alarms:
# rename one only together with infra/dashboards and template.yaml.
CATALOGUE: dict[str, MetricDef] = _catalogue(
    # ingest
    MetricDef("EventsAccepted", COUNT, (), "tracking events the API validated and queued"),
    MetricDef("EventsRejected", COUNT, ("reason",), "calls of a batch dropped as invalid, by the field at fault"),
    MetricDef("EventsIngested", COUNT, (), "tracking events applied to leads by the track consumer"),
    MetricDef("DuplicateEvents", COUNT, (), "redelivered or resent events recognised and skipped"),
    # lifecycle, from the bus events published (whichever function publishes them)
    MetricDef("LeadStageChanges", COUNT, ("to_stage",), "lifecycle moves, by the stage entered"),
    MetricDef("DaysInStage", NONE, ("from_stage",), "days a lead spent in the stage it just left"),
    MetricDef("LeadsBecameWarm", COUNT, (), "lead.became_warm (MQL)"),
    MetricDef("LeadsBecameHot", COUNT, (), "lead.became_hot (SQL)"),
    MetricDef("LeadsHandedOff", COUNT, (), "lead.handed_off to sales"),
    MetricDef("LeadsSalesAccepted", COUNT, (), "lead.sales_accepted"),
    MetricDef("HandoffsEscalated", COUNT, (), "lead.handoff_escalated (sales SLA missed)"),
    MetricDef("OpportunitiesCreated", COUNT, (), "lead.opportunity_created"),
    MetricDef("DealsWon", COUNT, (), "lead.won"),
    MetricDef("Revenue", NONE, ("currency",), "revenue of won deals, in the deal's currency"),
    MetricDef("LeadsBecameCustomer", COUNT, (), "lead.became_customer"),
    MetricDef("LeadsRecycled", COUNT, (), "lead.recycled back to nurture"),
    MetricDef("LeadsLost", COUNT, (), "lead.lost"),
    MetricDef("LeadsDormant", COUNT, (), "lead.dormant"),
    MetricDef("LeadsDemoted", COUNT, (), "lead.demoted by score decay"),
    MetricDef("LeadsSunset", COUNT, (), "lead.sunset (graymail: stopped mailing the unengaged)"),
    MetricDef("LeadsReactivated", COUNT, (), "lead.reactivated (a dormant lead engaged again)"),
    MetricDef("LeadsUnsubscribed", COUNT, (), "lead.unsubscribed (link, one-click or mailbox provider)"),
    MetricDef("LeadsErased", COUNT, (), "lead.erased on request"),
    MetricDef("FormsSubmitted", COUNT, (), "lead.form_submitted that asked for a timely response"),
    MetricDef("BehaviourTriggers", COUNT, (), "lead.behaviour_triggered"),
    MetricDef("ContentExhausted", COUNT, (), "lead.content_exhausted (nothing left that fits)"),
    # timelines and touches
    MetricDef("TimelinesEnrolled", COUNT, (), "timelines started"),
    MetricDef("TimelinesHoldout", COUNT, (), "enrollments kept in the control group"),
    MetricDef("TimelinesStopped", COUNT, (), "timelines stopped (hot, unsubscribed, exit stage)"),
    MetricDef("EmailsSent", COUNT, ("track",), "emails SES accepted"),
    MetricDef("EmailsSkipped", COUNT, (), "email touches not sent (consent, already sent, no content)"),
    # SES feedback
    MetricDef("HumanOpens", COUNT, ("track",), "opens made by a person (scored)"),
    MetricDef("HumanClicks", COUNT, ("track",), "clicks made by a person (scored)"),
    MetricDef("MachineOpens", COUNT, (), "opens by scanners and privacy proxies (not scored)"),
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
    """Powertools Metrics whose flush also prints the dimensioned metrics, so
    `metered` and `@get_metrics().log_metrics` on a handler flush the same."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    class NurtureEMFProvider(AmazonCloudWatchEMFProvider):
        def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
            _flush_dimensioned(AmazonCloudWatchEMFProvider)
            if self.metric_set or raise_on_empty_metrics:
                super().flush_metrics(raise_on_empty_metrics)
                self.clear_metrics()  # Powertools keeps them when metrics are disabled

    return Metrics(provider=NurtureEMFProvider(namespace=NAMESPACE, service=SERVICE))


# Dimensioned values buffered until the flush: (name, dimension items) -> values.
_split: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}


def add_metric(name: str, value: float = 1, **dimensions: str) -> None:
    """Buffer one value of a catalogued metric for this invocation's flush.

    Raises KeyError for a name outside the catalogue and ValueError for
    dimensions the catalogue does not declare: names and dimension sets stay
    stable because nothing else can be emitted."""
    definition = CATALOGUE[name]
    if set(dimensions) != set(definition.dimensions):
        raise ValueError(f"{name} takes dimensions {definition.dimensions}, got {tuple(dimensions)}")
    if dimensions:
        key = (name, tuple(sorted((k, str(v)) for k, v in dimensions.items())))
        _split.setdefault(key, []).append(value)
    else:
        get_metrics().add_metric(name=name, unit=definition.unit, value=value)


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
    """Print the buffered metrics as EMF documents: the plain ones in one
    document, each dimension set's in one document of its own."""
    if not _split and not get_metrics.cache_info().currsize:
        return  # nothing recorded in this process yet: not even Powertools is imported
    get_metrics().flush_metrics()


def _flush_dimensioned(provider_class: Any) -> None:
    groups: dict[tuple[tuple[str, str], ...], dict[str, list[float]]] = {}
    for (name, dimensions), values in _split.items():
        groups.setdefault(dimensions, {})[name] = values
    _split.clear()
    for dimensions, metrics in groups.items():
        document = provider_class(namespace=NAMESPACE, service=SERVICE)
        document.add_dimensions(service=SERVICE, **dict(dimensions))
        for name, values in metrics.items():
            unit = CATALOGUE[name].unit
            for value in [sum(values)] if unit == COUNT else values:
                document.add_metric(name=name, unit=unit, value=value)
        document.flush_metrics()


def clear_metrics() -> None:
    """Drop everything buffered (tests; a handler never needs it)."""
    _split.clear()
    if get_metrics.cache_info().currsize:
        get_metrics().clear_metrics()


Handler = TypeVar("Handler", bound=Callable[..., Any])


def metered(handler: Handler) -> Handler:
    """One invocation of a Lambda handler `(event, context)`: its deadline
    registered from the context (`nurture.core.deadline`: the leases of its
    claims and its outbound HTTP are bounded by it), and its metrics flushed
    when the handler returns or raises."""

    @functools.wraps(handler)
    def invocation(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        with running(Deadline.of(context)):
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                flush_metrics()

    return invocation  # type: ignore[return-value]
