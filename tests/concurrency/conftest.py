"""A DynamoDB whose conditional writes are atomic, for racing the store's for
real: dynalite (npm, pinned in package-lock.json; `make test` installs it),
started on a free port for the session and stopped after it. moto serialises
nothing and loses concurrent updates, so it cannot prove these invariants.

dynalite keeps its data in memory and implements conditions, updates and
queries, but no transactions, streams or TTL — none of which these tests use.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from nurture.store.schema import table_definition

DYNALITE = Path(__file__).resolve().parent / "node_modules" / "dynalite" / "cli.js"
WORKERS = 16
START_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def dynalite_endpoint() -> Iterator[str]:
    node = shutil.which("node")
    if node is None or not DYNALITE.exists():
        pytest.fail(
            "dynalite is not installed: run `make test`, or `npm ci --prefix tests/concurrency` (needs Node.js 20+)"
        )
    port = _free_port()
    server = subprocess.Popen(
        [node, str(DYNALITE), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if server.poll() is not None:
                pytest.fail(f"dynalite exited at start: {server.stderr.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"dynalite did not listen on port {port} within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def dynamodb(dynalite_endpoint: str) -> Any:
    """A boto3 DynamoDB client on dynalite, with a connection per worker."""
    return boto3.client(
        "dynamodb",
        endpoint_url=dynalite_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=WORKERS * 2, retries={"mode": "standard", "max_attempts": 3}),
    )


@pytest.fixture
def table(dynamodb: Any) -> str:
    """A fresh table per test, created from the models as the local stack does."""
    name = f"leads-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(**table_definition(name))
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name


def race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(0..count-1)` on `count` threads released at the same moment;
    each result, or the exception it raised."""
    start = threading.Barrier(count)

    def runner(n: int) -> Any:
        start.wait()
        try:
            return work(n)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(runner, range(count)))
