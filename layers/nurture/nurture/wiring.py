"""Cached factories that build the use cases from settings, once per cold start.
Nothing here runs at import time, so moto can start first in tests."""

from __future__ import annotations

from functools import lru_cache

from nurture.adapters import EventBridgePublisher, SecretsManagerKeys, SqsIngestQueue, aws_client
from nurture.config import Config, cached_config
from nurture.ingest import Ingestor
from nurture.settings import get_settings
from nurture.store import DynamoLeadStore
from nurture.track import Tracker


def get_config() -> Config:
    return cached_config(get_settings().config_dir)


@lru_cache(maxsize=1)
def get_store() -> DynamoLeadStore:
    return DynamoLeadStore(aws_client("dynamodb"), get_settings().table_name)


@lru_cache(maxsize=1)
def get_ingestor() -> Ingestor:
    settings = get_settings()
    return Ingestor(
        get_config(),
        SecretsManagerKeys(aws_client("secretsmanager"), settings.api_keys_secret_arn),
        SqsIngestQueue(aws_client("sqs"), settings.ingest_queue_url),
    )


@lru_cache(maxsize=1)
def get_tracker() -> Tracker:
    settings = get_settings()
    return Tracker(
        get_store(),
        EventBridgePublisher(aws_client("events"), settings.event_bus_name),
        get_config(),
        settings.retention_seconds,
    )


def reset() -> None:
    """Forget every cached client and use case (tests, the local stack)."""
    from nurture.adapters import reset_clients
    from nurture.settings import get_settings as settings_factory

    for factory in (get_store, get_ingestor, get_tracker, settings_factory, cached_config):
        factory.cache_clear()
    reset_clients()
