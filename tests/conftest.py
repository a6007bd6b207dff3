"""Shared test set-up: fake AWS credentials before any client exists, and the
project's paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_DIR / "config"
EVENTS_DIR = Path(__file__).resolve().parent / "events"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    """Fake credentials and a fixed region; no test ever reaches real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Nurture",
        "POWERTOOLS_SERVICE_NAME": "nurture",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def no_buffered_metrics():
    """Each test starts with no business metrics buffered by an earlier one."""
    from nurture.core.observability import clear_metrics

    clear_metrics()
    yield
    clear_metrics()


@pytest.fixture
def restore_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
