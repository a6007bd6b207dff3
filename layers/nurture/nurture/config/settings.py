"""Deployment settings, read once per cold start from the environment the
template sets. Logic receives these values; it never reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from nurture.core.errors import SettingsError


@dataclass(frozen=True)
class Settings:
    table_name: str
    ingest_queue_url: str
    event_bus_name: str
    api_keys_secret_arn: str
    config_dir: str
    event_retention_days: int = 395
    # Only the functions that use them get these (see template.yaml).
    optional: Mapping[str, str] = field(default_factory=dict)

    def require(self, variable: str) -> str:
        """An optional setting this function needs; names the variable if missing."""
        value = self.optional.get(variable, "").strip()
        if not value:
            raise SettingsError(f"environment variable {variable} is not set", field=variable)
        return value

    @property
    def retention_seconds(self) -> float:
        return self.event_retention_days * 86400.0


_REQUIRED = {
    "table_name": "TABLE_NAME",
    "ingest_queue_url": "INGEST_QUEUE_URL",
    "event_bus_name": "EVENT_BUS_NAME",
    "api_keys_secret_arn": "API_KEYS_SECRET_ARN",
    "config_dir": "NURTURE_CONFIG_DIR",
}


OPTIONAL_VARIABLES = (
    "STATE_MACHINE_ARN",
    "SWEEP_SCHEDULE",
    "SENDER_EMAIL",
    "COMPANY_NAME",
    "COMPANY_POSTAL_ADDRESS",
    "SES_CONFIGURATION_SET",
    "PUBLIC_API_URL",
    "UNSUBSCRIBE_SECRET_ARN",
    "AD_PLATFORMS_SECRET_ARN",
    "SALES_ALERTS_TOPIC_ARN",
    "CRM_WEBHOOK_SECRET_ARN",
    "SALES_TIMER_FUNCTION_ARN",
    "SALES_TIMER_DLQ_ARN",
    "SCHEDULER_ROLE_ARN",
    "SCHEDULE_PREFIX",
    "AUDIENCE_QUEUE_URL",
    "SALES_TASK_QUEUE_URL",
)


def load_settings(environ: Mapping[str, str]) -> Settings:
    values = {}
    for attribute, variable in _REQUIRED.items():
        value = environ.get(variable, "").strip()
        if not value:
            raise SettingsError(f"environment variable {variable} is not set", field=variable)
        values[attribute] = value
    retention = environ.get("EVENT_RETENTION_DAYS", "395")
    if not retention.isdigit() or int(retention) < 1:
        raise SettingsError("EVENT_RETENTION_DAYS must be a positive whole number", field="EVENT_RETENTION_DAYS")
    optional = {name: environ[name] for name in OPTIONAL_VARIABLES if environ.get(name)}
    return Settings(**values, event_retention_days=int(retention), optional=optional)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings(os.environ)
