"""AWS adapters: clients built lazily, requests batched to each service's limit,
failures raised as typed errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from nurture.core.domain import TrackingEvent
from nurture.core.errors import NurtureError
from nurture.core.observability import record_bus_events

EVENT_SOURCE = "nurture"
PUT_EVENTS_LIMIT = 10
SQS_BATCH_LIMIT = 10
MAX_MESSAGE_BYTES = 200 * 1024


class PublishError(NurtureError):
    code = "PublishFailed"


class EnqueueError(NurtureError):
    code = "EnqueueFailed"


@lru_cache(maxsize=1)
def _session() -> Any:
    """botocore's session, not boto3's: boto3 adds resources and S3 transfers
    (which Nurture does not use) and its import loads s3transfer, about 17 ms
    of CPU of every cold start; its clients of the other services are
    botocore's own, built the same way."""
    import botocore.session

    return botocore.session.get_session()


@cache
def aws_client(service: str) -> Any:
    """One client per service per process, from one shared session (a session
    per client doubles cold-start client set-up); honours AWS_ENDPOINT_URL for
    the local stack."""
    return _session().create_client(service)


class LazyClient:
    """The process's client of `service` (`aws_client`), built at its first
    use: building a client reads its service model (5-15 ms each), and most
    invocations use few of the services their function can call (the track
    consumer publishes to the bus only when a lead changes stage)."""

    __slots__ = ("service",)

    def __init__(self, service: str) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(aws_client(self.service), name)


def reset_clients() -> None:
    aws_client.cache_clear()
    _session.cache_clear()


class EventBridgePublisher:
    """Publishes lead lifecycle events to the Nurture bus, 10 per request.
    At least once: callers retry on PublishError; consumers dedupe on event_id.
    Every event the bus accepted is counted in the business metrics here, so
    they count whichever use case publishes (a retried publish counts again)."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, entries: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(entries), PUT_EVENTS_LIMIT):
            chunk = entries[start : start + PUT_EVENTS_LIMIT]
            response = self._client.put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": entry["type"],
                        "EventBusName": self._bus,
                        "Detail": json.dumps(entry["detail"], separators=(",", ":")),
                    }
                    for entry in chunk
                ]
            )
            results = response.get("Entries") or [{}] * len(chunk)
            record_bus_events(
                entry for entry, result in zip(chunk, results, strict=False) if not result.get("ErrorCode")
            )
            if response.get("FailedEntryCount"):
                raise PublishError(f"{response['FailedEntryCount']} of {len(chunk)} events were not accepted")


class SqsIngestQueue:
    """Puts validated events on the ingest queue before the API answers 2xx.
    Splits into messages under 200 KB and sends up to 10 per request."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def enqueue(self, events: Sequence[TrackingEvent]) -> None:
        bodies = _message_bodies(events)
        for start in range(0, len(bodies), SQS_BATCH_LIMIT):
            chunk = bodies[start : start + SQS_BATCH_LIMIT]
            if sum(len(body) for body in chunk) > 900 * 1024:
                for body in chunk:
                    self._client.send_message(QueueUrl=self._url, MessageBody=body)
                continue
            response = self._client.send_message_batch(
                QueueUrl=self._url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            )
            if response.get("Failed"):
                raise EnqueueError(f"{len(response['Failed'])} messages were not queued")


def _message_bodies(events: Sequence[TrackingEvent]) -> list[str]:
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for event in events:
        encoded = json.dumps(event.to_message(), separators=(",", ":"))
        if current and size + len(encoded) > MAX_MESSAGE_BYTES:
            bodies.append('{"events":[' + ",".join(current) + "]}")
            current, size = [], 0
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        bodies.append('{"events":[' + ",".join(current) + "]}")
    return bodies


def decode_ingest_message(body: str) -> list[TrackingEvent]:
    return [TrackingEvent.from_message(message) for message in json.loads(body)["events"]]


class SecretsManagerKeys:
    """A JSON secret (name -> value), cached for five minutes so a rotated key
    takes effect without a deploy; `invalidate` drops the cache at once."""

    def __init__(self, client: Any, secret_id: str, ttl_seconds: float = 300.0, raw: bool = False) -> None:
        self._raw = raw  # a plain string secret (e.g. a signing key), read as {"value": ...}
        self._client = client
        self._secret_id = secret_id
        self._ttl = ttl_seconds
        self._cached: dict[str, Any] | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._loaded_at > self._ttl:
                secret = self._client.get_secret_value(SecretId=self._secret_id)["SecretString"]
                self._cached = {"value": secret} if self._raw else json.loads(secret)
                self._loaded_at = time.monotonic()
            return self._cached

    def keys(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.document().items()}

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None
