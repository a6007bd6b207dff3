"""The one place Logger and Metrics are built (lazily: cold start is a feature)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

SERVICE = "nurture"
NAMESPACE = "Nurture"


@lru_cache(maxsize=1)
def get_logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=SERVICE)


@lru_cache(maxsize=1)
def get_metrics() -> Any:
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=NAMESPACE, service=SERVICE)
