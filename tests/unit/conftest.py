"""Unit-test fixtures: the shipped configuration, an in-memory store and a
recording publisher. No network, no moto."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nurture.config.loader import Config, load_config
from nurture.ingest.consumer import Tracker
from tests.conftest import CONFIG_DIR
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore
from tests.unit.builders import RETENTION, RecordingPublisher
from tests.unit.timeline_builders import FakeExecutions


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(CONFIG_DIR)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A writable copy of config/ for tests that break it."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


@pytest.fixture
def store() -> InMemoryLeadStore:
    return InMemoryLeadStore()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def timelines(store) -> InMemoryTimelineStore:
    return InMemoryTimelineStore(store.items)  # one table, as deployed


@pytest.fixture
def executions() -> FakeExecutions:
    return FakeExecutions()


@pytest.fixture
def tracker(store, publisher, config) -> Tracker:
    return Tracker(store, publisher, config, RETENTION)
