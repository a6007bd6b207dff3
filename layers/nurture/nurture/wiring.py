"""Cached factories that build the use cases from settings, once per cold start.
Nothing here runs at import time, so moto can start first in tests. Each
factory imports its use case when first called, so a handler pays only for
the modules it uses (cold start); the types below are for readers and type
checkers, not imported at run time. Clients of services other than DynamoDB
(which every first invocation reads) are `LazyClient`s: built when a request
first needs them, not with the use case."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from nurture.adapters.aws import EventBridgePublisher, LazyClient, SecretsManagerKeys, SqsIngestQueue, aws_client
from nurture.config.loader import Config, cached_config
from nurture.config.settings import get_settings

if TYPE_CHECKING:
    from nurture.channels.audience_sync import AudienceSyncer
    from nurture.channels.consent import ConsentKeeper
    from nurture.channels.form_responses import Responder
    from nurture.channels.ses_feedback import SesFeedbackProcessor
    from nurture.ingest.api import Ingestor
    from nurture.ingest.consumer import Tracker
    from nurture.ingest.profiling import ProfileAdvisor
    from nurture.leads.view import LeadViewer
    from nurture.privacy.erasure import Eraser
    from nurture.sales.call_tasks import SalesTasks
    from nurture.sales.crm import SalesChannel
    from nurture.sales.handoff import SalesHandOff
    from nurture.sales.outcomes import OutcomeRecorder
    from nurture.store.audience_members import DynamoAudienceMembers
    from nurture.store.repository import DynamoLeadStore
    from nurture.store.timelines import DynamoTimelineStore
    from nurture.sweeps.scheduled import Sweeper
    from nurture.timelines.use_cases import Advancer, Enroller, SqsHandOffs, TouchSender


def get_config() -> Config:
    return cached_config(get_settings().config_dir)


@lru_cache(maxsize=1)
def get_store() -> DynamoLeadStore:
    """Every lead write keeps the sweeps' due index true, so every store knows the due rule."""
    from nurture.store.repository import DynamoLeadStore
    from nurture.sweeps.scheduled import due_index_function

    settings = get_settings()
    due = due_index_function(get_config(), settings.optional.get("SWEEP_SCHEDULE"))
    return DynamoLeadStore(aws_client("dynamodb"), settings.table_name, due=due)


@lru_cache(maxsize=1)
def get_ingestor() -> Ingestor:
    from nurture.ingest.api import Ingestor

    settings = get_settings()
    return Ingestor(
        get_config(),
        SecretsManagerKeys(LazyClient("secretsmanager"), settings.api_keys_secret_arn),
        SqsIngestQueue(LazyClient("sqs"), settings.ingest_queue_url),
    )


@lru_cache(maxsize=1)
def get_tracker() -> Tracker:
    from nurture.ingest.consumer import Tracker

    settings = get_settings()
    return Tracker(
        get_store(),
        EventBridgePublisher(LazyClient("events"), settings.event_bus_name),
        get_config(),
        settings.retention_seconds,
    )


@lru_cache(maxsize=1)
def get_lead_viewer() -> LeadViewer:
    from nurture.leads.view import LeadViewer

    return LeadViewer(get_store(), get_config())


@lru_cache(maxsize=1)
def get_outcome_recorder() -> OutcomeRecorder:
    from nurture.sales.outcomes import OutcomeRecorder

    return OutcomeRecorder(get_store(), get_ingestor().queue, get_config())


@lru_cache(maxsize=1)
def get_profile_advisor() -> ProfileAdvisor:
    from nurture.ingest.profiling import ProfileAdvisor

    return ProfileAdvisor(get_store(), get_config())


@lru_cache(maxsize=1)
def get_consent_keeper() -> ConsentKeeper:
    from nurture.channels.consent import ConsentKeeper

    return ConsentKeeper(get_store(), get_publisher())


@lru_cache(maxsize=1)
def get_timeline_store() -> DynamoTimelineStore:
    from nurture.store.timelines import DynamoTimelineStore  # loads PynamoDB: not on the ingest path

    return DynamoTimelineStore(aws_client("dynamodb"), get_settings().table_name)


class _AtFirstUse:
    """What `factory` (a cached factory) returns, imported and built when a
    use case first calls it. The stores on PynamoDB's models load it (10-15 ms
    of a cold start), and many requests never read what they hold (an event
    about a lead that is not stored, a lead event that changes no timeline
    and no audience)."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self.factory(), name)


def _timelines() -> DynamoTimelineStore:
    return cast("DynamoTimelineStore", _AtFirstUse(get_timeline_store))


def _publisher() -> EventBridgePublisher:
    return EventBridgePublisher(LazyClient("events"), get_settings().event_bus_name)


@lru_cache(maxsize=1)
def get_advancer() -> Advancer:
    """The Advance task; its email sender and hand-off queues are built at
    the first touch that needs them, not at a cold start that only waits."""
    from nurture.timelines.use_cases import Advancer

    return Advancer(get_store(), _timelines(), _publisher(), get_config(), get_touch_sender, get_handoffs)


@lru_cache(maxsize=1)
def get_handoffs() -> SqsHandOffs:
    from nurture.timelines.use_cases import SqsHandOffs

    settings = get_settings()
    return SqsHandOffs(
        LazyClient("sqs"),
        {
            "retargeting": settings.require("AUDIENCE_QUEUE_URL"),
            "sales_call": settings.require("SALES_TASK_QUEUE_URL"),
        },
    )


@lru_cache(maxsize=1)
def get_enroller() -> Enroller:
    from nurture.timelines.use_cases import Enroller, StepFunctionsExecutions

    executions = StepFunctionsExecutions(LazyClient("stepfunctions"), get_settings().require("STATE_MACHINE_ARN"))
    return Enroller(get_store(), _timelines(), executions, get_config())


@lru_cache(maxsize=1)
def get_touch_sender() -> TouchSender:
    from nurture.channels.email import CompanyInfo, SesEmailSender
    from nurture.timelines.use_cases import TouchSender

    settings = get_settings()
    sender = settings.require("SENDER_EMAIL")
    company = CompanyInfo(
        name=settings.require("COMPANY_NAME"),
        postal_address=settings.require("COMPANY_POSTAL_ADDRESS"),
        sender=f"{settings.require('COMPANY_NAME')} <{sender}>",
        base_url=settings.require("PUBLIC_API_URL").rstrip("/"),
    )
    return TouchSender(
        get_store(),
        _timelines(),
        get_config(),
        company,
        SesEmailSender(LazyClient("sesv2"), settings.require("SES_CONFIGURATION_SET"), company.sender),
        SecretsManagerKeys(LazyClient("secretsmanager"), settings.require("UNSUBSCRIBE_SECRET_ARN"), raw=True),
        _publisher(),
    )


@lru_cache(maxsize=1)
def get_unsubscribe_keys() -> SecretsManagerKeys:
    return SecretsManagerKeys(LazyClient("secretsmanager"), get_settings().require("UNSUBSCRIBE_SECRET_ARN"), raw=True)


@lru_cache(maxsize=1)
def get_ses_feedback() -> SesFeedbackProcessor:
    from nurture.channels.ses_feedback import SesFeedbackProcessor
    from nurture.timelines.use_cases import metric_track_ids

    return SesFeedbackProcessor(
        get_store(), _timelines(), get_tracker(), _publisher(), tracks=metric_track_ids(get_config())
    )


@lru_cache(maxsize=1)
def get_audience_syncer() -> AudienceSyncer:
    """Platforms from config/audiences.yaml, credentials from the ad-platform
    secret; NURTURE_AD_PLATFORMS=local (the local stack) records instead of calling out."""
    import os

    from nurture.channels.ad_platforms import platform_for
    from nurture.channels.audience_sync import AudienceSyncer, RecordingPlatform, SecretsManagerCredentials
    from nurture.config.audiences import load_audiences
    from nurture.core.clock import get_clock

    settings = get_settings()
    audiences = load_audiences(settings.config_dir)
    members = cast("DynamoAudienceMembers", _AtFirstUse(get_audience_members))

    def clock() -> float:
        return get_clock().timestamp()

    if os.environ.get("NURTURE_AD_PLATFORMS") == "local":
        recorder = RecordingPlatform()
        return AudienceSyncer(get_store(), audiences, lambda destination: recorder, members, clock)
    credentials = SecretsManagerCredentials(LazyClient("secretsmanager"), settings.require("AD_PLATFORMS_SECRET_ARN"))
    return AudienceSyncer(
        get_store(), audiences, lambda destination: platform_for(destination, credentials), members, clock
    )


@lru_cache(maxsize=1)
def get_audience_members() -> DynamoAudienceMembers:
    from nurture.store.audience_members import DynamoAudienceMembers

    return DynamoAudienceMembers(aws_client("dynamodb"), get_settings().table_name)


@lru_cache(maxsize=1)
def get_responder() -> Responder:
    from nurture.channels.form_responses import Responder, SnsSalesAlerts

    alerts = SnsSalesAlerts(LazyClient("sns"), get_settings().require("SALES_ALERTS_TOPIC_ARN"))
    return Responder(get_store(), _timelines(), get_touch_sender(), alerts, get_config())


@lru_cache(maxsize=1)
def get_sales_channel() -> SalesChannel:
    """Sales deliveries: the CRM webhook when its secret holds a URL, and the sales SNS topic."""
    from nurture.channels.form_responses import SnsSalesAlerts
    from nurture.core.clock import get_clock
    from nurture.sales.crm import CrmWebhook, SalesChannel

    settings = get_settings()
    sns = SnsSalesAlerts(LazyClient("sns"), settings.require("SALES_ALERTS_TOPIC_ARN"))
    crm_secret = settings.optional.get("CRM_WEBHOOK_SECRET_ARN")
    crm = CrmWebhook(SecretsManagerKeys(LazyClient("secretsmanager"), crm_secret)) if crm_secret else None
    return SalesChannel(sns, crm, lambda: get_clock().timestamp())


@lru_cache(maxsize=1)
def get_sales_tasks() -> SalesTasks:
    from nurture.sales.call_tasks import SalesTasks

    return SalesTasks(get_store(), _timelines(), get_sales_channel(), get_config())


@lru_cache(maxsize=1)
def get_sales_handoff() -> SalesHandOff:
    from nurture.sales.handoff import SalesHandOff, SchedulerTimers

    settings = get_settings()
    timers = SchedulerTimers(
        LazyClient("scheduler"),
        settings.require("SALES_TIMER_FUNCTION_ARN"),
        settings.require("SCHEDULER_ROLE_ARN"),
        settings.require("SALES_TIMER_DLQ_ARN"),
        settings.require("SCHEDULE_PREFIX"),
    )
    return SalesHandOff(
        get_store(), _timelines(), get_enroller(), get_sales_channel(), timers, _publisher(), get_config()
    )


@lru_cache(maxsize=1)
def get_sales_timers() -> SalesHandOff:
    """The use case behind the timer function: it fires timers, never sets them."""
    from nurture.sales.handoff import SalesHandOff

    return SalesHandOff(get_store(), _timelines(), None, get_sales_channel(), None, _publisher(), get_config())


@lru_cache(maxsize=1)
def get_eraser() -> Eraser:
    from nurture.privacy.erasure import Eraser, SqsAudienceRemovals

    removals = SqsAudienceRemovals(LazyClient("sqs"), get_settings().require("AUDIENCE_QUEUE_URL"))
    return Eraser(get_store(), _timelines(), removals, _publisher())


@lru_cache(maxsize=1)
def get_sweeper() -> Sweeper:
    from nurture.sweeps.scheduled import Sweeper

    return Sweeper(get_store(), _publisher(), get_config(), get_settings().retention_seconds)


def get_publisher() -> EventBridgePublisher:
    return _publisher()


def _factories() -> list[Any]:
    """Every cached factory this module holds (its own and the settings' and
    configuration's): a factory added later is forgotten by reset() too."""
    return [value for value in globals().values() if hasattr(value, "cache_clear")]


def reset() -> None:
    """Forget every cached client and use case (tests, the local stack)."""
    from nurture.adapters.aws import reset_clients

    for factory in _factories():
        factory.cache_clear()
    reset_clients()
