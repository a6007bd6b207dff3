"""Data access for leads, identities and events in the single DynamoDB table.

One small interface, a DynamoDB implementation built on the low-level client
(so every request is batched to the service limit and its cost is visible),
and an in-memory fake for unit tests. Items never leave this module: callers
get domain objects.

Keys:
  LEAD#<id> / PROFILE         the lead (gsi1: ACCOUNT#<domain> / LEAD#<id>)
  LEAD#<id> / EVT#<messageId>  a stored event, expiring after the retention period
  LEAD#<id> / STAGE#<version>  a lifecycle move (from, to, reason), same retention
  ID#<kind>#<value> / ID      identity (email, user, anon) -> lead id
  ERASED#<sha256> / TOMBSTONE  an erased person's identity, hashed: never re-imported or mailed
  LEAD#<id> / ENR#, TOUCH#    nurture enrollments and touches (below)
  LEAD#<id> / CONTENT#<id>    a piece of content emailed to the lead, claimed with the touch that sent it
  LEAD#<id> / SENDLOG         the lead's recent marketing sends, so concurrent tracks cannot pass the cap
  SWEEP#budget / <yyyy-mm-dd>  leads the sweeps processed that day

gsi2 is the sparse due index of the sweeps (KEYS_ONLY): a lead carries
gsi2pk = DUE#<shard>, gsi2sk = <due epoch seconds, 11 digits>#<lead id> only
while some sweep will have work for it (see nurture.sweeps.scheduled.due_at), and is
due at once while its outbox holds unpublished events. Every write of the
whole lead recomputes it, so every write path keeps it true.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from nurture.core.domain import Enrollment, Lead, Touch
from nurture.core.errors import ConcurrentUpdateError

PROFILE = "PROFILE"
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
MAX_PROPERTY_BYTES = 600
DUE_SHARDS = 4  # spreads the due index's writes over partitions; a sweep queries each
DueFunction = Callable[[Lead], float | None]


@dataclass
class StoredEvent:
    lead_id: str
    message_id: str
    kind: str
    name: str
    timestamp: float
    source: str
    properties: dict[str, Any] = field(default_factory=dict)
    points: list[list[Any]] = field(default_factory=list)  # [rule_id, points] as awarded
    content: list[str] = field(default_factory=list)
    expires_at: int = 0

    @classmethod
    def stage_move(
        cls, lead_id: str, message_id: str, at: float, source: str, move: tuple[str, str, str], expires_at: int
    ) -> StoredEvent:
        """A lifecycle move (from, to, reason) in the lead's history (STAGE#), as every writer records it."""
        before, after, reason = move
        props = {"from": before, "to": after, "reason": reason}
        return cls(lead_id, message_id, "lifecycle", "lead.stage_changed", at, source, props, expires_at=expires_at)


class LeadStore(Protocol):
    def lookup_identities(self, keys: Iterable[str]) -> dict[str, str]:
        """identity key ("email#a@b.c") -> lead id, for the keys that exist."""

    def get_leads(self, lead_ids: Iterable[str], consistent: bool = False) -> dict[str, Lead]: ...

    def existing_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (lead id, message id) pairs are already stored."""

    def save_lead(self, lead: Lead, expected_version: int) -> None:
        """Write the whole lead if nobody else wrote it since `expected_version`;
        raises ConcurrentUpdateError otherwise. Increments lead.version."""

    def write_records(self, events: Sequence[StoredEvent], identities: dict[str, str]) -> None:
        """Store events and identity mappings; idempotent (same keys, same content)."""

    def put_events_if_absent(self, events: Sequence[StoredEvent]) -> None:
        """Store events that may already exist without overwriting them (rare path)."""

    def clear_outbox(self, lead_id: str, version: int) -> None: ...

    def set_consent(self, lead_id: str, consent: str, now: float) -> bool:
        """Set the lead's consent and bump its version (so a concurrent scoring
        write retries on top of it); False if there is no such lead."""

    def set_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> bool:
        """Replace the lead's email preferences, bumping its version like set_consent;
        False if there is no such lead."""

    def lead_events(self, lead_id: str) -> list[StoredEvent]: ...

    def account_leads(self, domain: str, limit: int = 200) -> list[Lead]: ...

    def lookup_identities_and_tombstones(
        self, keys: Iterable[str], person_keys: Iterable[str]
    ) -> tuple[dict[str, str], set[str]]:
        """lookup_identities(keys), and which of `person_keys` belong to people
        who were erased, in one request."""

    def put_tombstones(self, keys: Iterable[str], now: float) -> None:
        """Remember erased identities, hashed (idempotent)."""

    def lead_item_keys(self, lead_id: str) -> list[tuple[str, str]]:
        """(pk, sk) of every item in the lead's partition: profile, events, touches, enrollments."""

    def delete_items(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete items by key, 25 per request (deleting a missing item is harmless)."""


def identity_key(kind: str, value: str) -> str:
    return f"{kind}#{value}"


def tombstone_key(key: str) -> tuple[str, str]:
    """The tombstone of an identity key: only its SHA-256 is kept, never the address."""
    return f"ERASED#{hashlib.sha256(key.encode()).hexdigest()}", "TOMBSTONE"


# --- item mapping -----------------------------------------------------------

_LEAD_FIELDS = (
    # (domain attribute, item attribute)
    ("email", "em"),
    ("user_id", "uid"),
    ("anonymous_ids", "anon"),
    ("profile", "prof"),
    ("fit_grade", "fg"),
    ("fit_score", "fs"),
    ("fit_reasons", "fr"),
    ("engagement", "eng"),
    ("engagement_at", "eat"),
    ("caps", "caps"),
    ("lifecycle", "lc"),
    ("lifecycle_at", "lcat"),
    ("lifecycle_reason", "lcr"),
    ("lost_at", "lost_at"),
    ("sales", "sales"),
    ("consent", "cs"),
    ("preferences", "pref"),
    ("consent_at", "csat"),
    ("milestones", "ms"),
    ("buying_stage", "bs"),
    ("buying", "buy"),
    ("interests", "int"),
    ("consumed", "cons"),
    ("recent_ids", "rid"),
    ("aliases", "als"),
    ("merged_into", "mi"),
    ("outbox", "ob"),
    ("created_at", "cat"),
    ("last_seen_at", "lsa"),
    ("woken_at", "wkat"),
    ("demoted_from", "dmf"),
    ("email_engaged_at", "eeat"),
    ("sunset", "sun"),
    ("version", "v"),
)


def due_shard(lead_id: str) -> str:
    return f"DUE#{hashlib.blake2b(lead_id.encode(), digest_size=2).digest()[0] % DUE_SHARDS}"


def due_sort_key(due: float, lead_id: str) -> str:
    return f"{max(0, int(due)):011d}#{lead_id}"


def due_bound(now: float) -> str:
    """The greatest due key of a lead due at or before `now`."""
    return f"{max(0, int(now)):011d}~"


def lead_to_item(lead: Lead, due: DueFunction | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": f"LEAD#{lead.lead_id}", "sk": PROFILE, "lid": lead.lead_id}
    for attribute, name in _LEAD_FIELDS:
        value = getattr(lead, attribute)
        if value not in (None, [], {}, ""):
            item[name] = value
    if lead.domain and not lead.merged_into:
        item["gsi1pk"] = f"ACCOUNT#{lead.domain}"
        item["gsi1sk"] = f"LEAD#{lead.lead_id}"
    when = due(lead) if due is not None else None
    if when is not None:
        item["gdue"] = due_sort_key(when, lead.lead_id)  # restored by clear_outbox
    if lead.outbox and not lead.merged_into:
        item["gsi2pk"], item["gsi2sk"] = due_shard(lead.lead_id), due_sort_key(0, lead.lead_id)
    elif when is not None:
        item["gsi2pk"], item["gsi2sk"] = due_shard(lead.lead_id), item["gdue"]
    return item


def lead_from_item(item: dict[str, Any]) -> Lead:
    lead = Lead(lead_id=item["lid"])
    for attribute, name in _LEAD_FIELDS:
        if name in item:
            setattr(lead, attribute, item[name])
    return lead


def _event_sort_key(event: StoredEvent) -> str:
    # Lifecycle moves get their own prefix so no client messageId can collide with them.
    return f"STAGE#{event.message_id}" if event.kind == "lifecycle" else f"EVT#{event.message_id}"


def event_to_item(event: StoredEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": f"LEAD#{event.lead_id}",
        "sk": _event_sort_key(event),
        "k": event.kind,
        "n": event.name,
        "ts": event.timestamp,
        "src": event.source,
    }
    if event.properties:
        item["pr"] = _compact_properties(event.properties)
    if event.points:
        item["pts"] = event.points
    if event.content:
        item["cid"] = event.content
    if event.expires_at:
        item["expires_at"] = event.expires_at
    return item


def event_from_item(item: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        lead_id=item["pk"][5:],
        message_id=item["sk"].split("#", 1)[1],
        kind=item["k"],
        name=item["n"],
        timestamp=item["ts"],
        source=item.get("src", ""),
        properties=json.loads(item["pr"]) if "pr" in item else {},
        points=item.get("pts", []),
        content=item.get("cid", []),
        expires_at=item.get("expires_at", 0),
    )


def _compact_properties(properties: dict[str, Any]) -> str:
    """Properties as compact JSON, long values trimmed so an event stays one write unit."""
    text = json.dumps(properties, separators=(",", ":"), default=str)
    if len(text) <= MAX_PROPERTY_BYTES:
        return text
    trimmed = {
        key: value[:120] if isinstance(value, str) else value
        for key, value in properties.items()
        if isinstance(value, str | int | float | bool)
    }
    text = json.dumps(trimmed, separators=(",", ":"))
    while len(text) > MAX_PROPERTY_BYTES and trimmed:
        trimmed.pop(next(reversed(trimmed)))
        text = json.dumps(trimmed, separators=(",", ":"))
    return text


# --- DynamoDB attribute values ------------------------------------------------


def to_attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": format(value, ".12g")}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_attribute(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "L":
        return [from_attribute(v) for v in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "SS":
        return list(value)
    raise TypeError(f"unexpected attribute type {kind}")


def to_item(document: dict[str, Any]) -> dict[str, Any]:
    return {key: to_attribute(value) for key, value in document.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: from_attribute(value) for key, value in item.items()}


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batch_get(
    client: Any,
    table: str,
    keys: list[dict[str, Any]],
    consistent: bool = False,
    max_attempts: int = 8,
    meter: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """BatchGetItem in requests of 100 distinct keys, retrying unprocessed keys with
    jittered back-off; `meter` gets each response with its consumed capacity."""
    found: list[dict[str, Any]] = []
    unique = list({(k["pk"], k["sk"]): k for k in keys}.values())
    for chunk in _chunks(unique, BATCH_GET_LIMIT):
        request = {table: {"Keys": [to_item(k) for k in chunk], "ConsistentRead": consistent}}
        for attempt in range(max_attempts):
            if meter is None:
                response = client.batch_get_item(RequestItems=request)
            else:
                response = client.batch_get_item(RequestItems=request, ReturnConsumedCapacity="TOTAL")
                meter(response)
            found.extend(from_item(item) for item in response["Responses"].get(table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
        else:
            raise RuntimeError("DynamoDB left keys unprocessed after retries")
    return found


def batch_write(client: Any, table: str, requests: list[dict[str, Any]], max_attempts: int = 8) -> None:
    """BatchWriteItem in requests of 25, retrying unprocessed items with jittered back-off."""
    for chunk in _chunks(requests, BATCH_WRITE_LIMIT):
        pending = {table: list(chunk)}
        for attempt in range(max_attempts):
            response = client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise RuntimeError("DynamoDB left writes unprocessed after retries")


class DynamoLeadStore:
    """LeadStore on one DynamoDB table. Batches reads to 100 keys and writes to
    25 items per request and retries unprocessed keys with jittered back-off."""

    def __init__(self, client: Any, table_name: str, max_attempts: int = 8, due: DueFunction | None = None) -> None:
        self._client = client
        self._table = table_name
        self._max_attempts = max_attempts
        self._due = due
        self.sweep_reads = {"capacity_units": 0.0, "index_items": 0, "leads": 0}

    def _batch_get(
        self, keys: list[dict[str, Any]], consistent: bool = False, metered: bool = False
    ) -> list[dict[str, Any]]:
        return batch_get(
            self._client, self._table, keys, consistent, self._max_attempts, self._meter if metered else None
        )

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self._client, self._table, requests, self._max_attempts)

    def lookup_identities(self, keys: Iterable[str]) -> dict[str, str]:
        items = self._batch_get([{"pk": f"ID#{key}", "sk": "ID"} for key in keys])
        return {item["pk"][3:]: item["lid"] for item in items}

    def get_leads(self, lead_ids: Iterable[str], consistent: bool = False) -> dict[str, Lead]:
        items = self._batch_get([{"pk": f"LEAD#{lead_id}", "sk": PROFILE} for lead_id in lead_ids], consistent)
        return {item["lid"]: lead_from_item(item) for item in items}

    def existing_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        items = self._batch_get([{"pk": f"LEAD#{lead_id}", "sk": f"EVT#{mid}"} for lead_id, mid in keys])
        return {(item["pk"][5:], item["sk"][4:]) for item in items}

    def save_lead(self, lead: Lead, expected_version: int) -> None:
        lead.version = expected_version + 1
        request: dict[str, Any] = {"TableName": self._table, "Item": to_item(lead_to_item(lead, self._due))}
        if expected_version == 0:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            request["ConditionExpression"] = "v = :v"
            request["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        try:
            self._client.put_item(**request)
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            lead.version = expected_version
            raise ConcurrentUpdateError(f"lead {lead.lead_id} changed concurrently") from exc

    def write_records(self, events: Sequence[StoredEvent], identities: dict[str, str]) -> None:
        requests = [{"PutRequest": {"Item": to_item(event_to_item(event))}} for event in events]
        requests += [
            {"PutRequest": {"Item": to_item({"pk": f"ID#{key}", "sk": "ID", "lid": lead_id})}}
            for key, lead_id in identities.items()
        ]
        self._batch_write(requests)

    def put_events_if_absent(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                self._client.put_item(
                    TableName=self._table,
                    Item=to_item(event_to_item(event)),
                    ConditionExpression="attribute_not_exists(pk)",
                )

    def clear_outbox(self, lead_id: str, version: int) -> None:
        """Forget published events and put the lead back at its own place in
        the due index (or out of it). A failed condition means a newer write
        carried the outbox forward; that write's publisher clears it."""
        key = to_item({"pk": f"LEAD#{lead_id}", "sk": PROFILE})
        values = {":v": {"N": str(version)}}
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="REMOVE ob SET gsi2sk = gdue",
                    ConditionExpression="v = :v AND attribute_exists(gdue)",
                    ExpressionAttributeValues=values,
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="REMOVE ob, gsi2pk, gsi2sk",
                    ConditionExpression="v = :v AND attribute_not_exists(gdue)",
                    ExpressionAttributeValues=values,
                )

    def set_consent(self, lead_id: str, consent: str, now: float) -> bool:
        expression = "SET cs = :value, csat = :now, v = v + :one"
        if consent != "subscribed":
            # A suppressed lead leaves the sweeps' due index (a pending outbox
            # stays with the lead and goes out with its next write).
            expression += " REMOVE gsi2pk, gsi2sk, gdue"
        return self._update_profile(lead_id, expression, consent, now)

    def set_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> bool:
        return self._update_profile(lead_id, "SET pref = :value, prefat = :now, v = v + :one", preferences, now)

    def _update_profile(self, lead_id: str, expression: str, value: Any, now: float) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item({"pk": f"LEAD#{lead_id}", "sk": PROFILE}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=to_item({":value": value, ":now": now, ":one": 1}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def increment_transient_bounces(
        self, lead_id: str, message_id: str, bounced_at: float, window_seconds: float
    ) -> int:
        """Count a transient bounce once per SES message (a string set: adding is
        idempotent); returns how many fell inside the window."""
        response = self._client.update_item(
            TableName=self._table,
            Key=to_item({"pk": f"LEAD#{lead_id}", "sk": "SOFTBOUNCE"}),
            UpdateExpression="ADD tb :bounce SET expires_at = :expires",
            ExpressionAttributeValues={
                ":bounce": {"SS": [f"{int(bounced_at)}#{message_id}"]},
                ":expires": {"N": str(int(bounced_at + window_seconds))},
            },
            ReturnValues="ALL_NEW",
        )
        entries = response["Attributes"]["tb"]["SS"]
        return sum(1 for entry in entries if int(entry.split("#", 1)[0]) >= bounced_at - window_seconds)

    def lead_events(self, lead_id: str) -> list[StoredEvent]:
        events = []
        request = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "begins_with(sk, :evt) OR begins_with(sk, :stage)",
            "ExpressionAttributeValues": to_item({":pk": f"LEAD#{lead_id}", ":evt": "EVT#", ":stage": "STAGE#"}),
        }
        while True:
            response = self._client.query(**request)
            events.extend(event_from_item(from_item(item)) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return events
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def due_leads(self, now: float, limit: int, after: Any = None) -> tuple[list[tuple[Lead, str | None]], Any]:
        """Leads whose due moment is at or before `now`, from the sparse due
        index, shard by shard, oldest first within a shard, each with the due
        key its item holds now (the index may lag); `after` is the cursor a
        previous page returned. Metered in `sweep_reads`."""
        shard, start_key = after if after is not None else (0, None)
        keys: list[dict[str, Any]] = []
        while shard < DUE_SHARDS and len(keys) < limit:
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "gsi2",
                "KeyConditionExpression": "gsi2pk = :shard AND gsi2sk <= :now",
                "ExpressionAttributeValues": to_item({":shard": f"DUE#{shard}", ":now": due_bound(now)}),
                "Limit": limit - len(keys),
                "ReturnConsumedCapacity": "TOTAL",
            }
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = self._client.query(**request)
            self._meter(response)
            self.sweep_reads["index_items"] += response.get("ScannedCount", len(response["Items"]))
            keys.extend({"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in response["Items"])
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                shard += 1
        cursor = (shard, start_key) if shard < DUE_SHARDS else None
        items = self._batch_get(keys, metered=True) if keys else []
        self.sweep_reads["leads"] += len(items)
        order = {key["pk"]: n for n, key in enumerate(keys)}
        items.sort(key=lambda item: order[item["pk"]])
        return [(lead_from_item(item), item.get("gsi2sk")) for item in items], cursor

    def _meter(self, response: dict[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity") or []
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            self.sweep_reads["capacity_units"] += float(entry.get("CapacityUnits", 0.0))

    def read_capacity(self) -> float:
        return self.sweep_reads["capacity_units"]

    def spend_budget(self, day: str, count: int, budget: int) -> int:
        """Reserve up to `count` of the day's sweep budget (negative gives back);
        optimistic on the day's counter, so concurrent sweeps never overspend."""
        key = to_item({"pk": "SWEEP#budget", "sk": day})
        for _ in range(self._max_attempts):
            item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            spent = int(item["spent"]["N"]) if item else 0
            granted = count if count < 0 else max(0, min(count, budget - spent))
            if granted == 0:
                return 0
            condition = "spent = :spent" if item else "attribute_not_exists(pk)"
            expires = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=8)
            values = {":n": {"N": str(granted)}, ":ttl": {"N": str(int(expires.timestamp()))}}
            if item:
                values[":spent"] = {"N": str(spent)}
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="ADD spent :n SET expires_at = :ttl",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                continue
            return granted
        raise ConcurrentUpdateError(f"the sweep budget of {day} kept changing")

    def account_leads(self, domain: str, limit: int = 200) -> list[Lead]:
        response = self._client.query(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :account",
            ExpressionAttributeValues=to_item({":account": f"ACCOUNT#{domain}"}),
            Limit=limit,
        )
        lead_ids = [from_item(item)["gsi1sk"][5:] for item in response["Items"]]
        return list(self.get_leads(lead_ids).values())

    def lookup_identities_and_tombstones(
        self, keys: Iterable[str], person_keys: Iterable[str]
    ) -> tuple[dict[str, str], set[str]]:
        of_tombstone = {tombstone_key(key)[0]: key for key in person_keys}
        requested = [{"pk": f"ID#{key}", "sk": "ID"} for key in keys]
        requested += [{"pk": pk, "sk": "TOMBSTONE"} for pk in of_tombstone]
        identities, erased = {}, set()
        for item in self._batch_get(requested):
            if item["sk"] == "ID":
                identities[item["pk"][3:]] = item["lid"]
            else:
                erased.add(of_tombstone[item["pk"]])
        return identities, erased

    def put_tombstones(self, keys: Iterable[str], now: float) -> None:
        self._batch_write(
            [
                {"PutRequest": {"Item": to_item({"pk": pk, "sk": sk, "erased_at": now})}}
                for pk, sk in {tombstone_key(key) for key in keys}
            ]
        )

    def lead_item_keys(self, lead_id: str) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": f"LEAD#{lead_id}"}),
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**request)
            keys.extend((item["pk"]["S"], item["sk"]["S"]) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return keys
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delete_items(self, keys: Sequence[tuple[str, str]]) -> None:
        unique = list(dict.fromkeys(keys))
        self._batch_write([{"DeleteRequest": {"Key": to_item({"pk": pk, "sk": sk})}} for pk, sk in unique])


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())


# --- enrollments and touches ------------------------------------------------------

_ENROLLMENT_FIELDS = (
    "enrollment_id",
    "lead_id",
    "track_id",
    "seq",
    "status",
    "step",
    "due_at",
    "pending",
    "decision_seq",
    "last_decision",
    "variants",
    "started_at",
    "ended_at",
    "exit_reason",
    "trigger",
    "version",
)
_TOUCH_FIELDS = (
    "lead_id",
    "enrollment_id",
    "track_id",
    "step_id",
    "channel",
    "at",
    "content_id",
    "variant",
    "subject",
    "klass",
    "status",
    "message_id",
    "recipient",
)


def enrollment_key(lead_id: str, track_id: str, seq: int) -> dict[str, str]:
    return {"pk": f"LEAD#{lead_id}", "sk": f"ENR#{track_id}#{seq:03d}"}


def enrollment_to_item(enrollment: Enrollment) -> dict[str, Any]:
    item = enrollment_key(enrollment.lead_id, enrollment.track_id, enrollment.seq)
    for name in _ENROLLMENT_FIELDS:
        value = getattr(enrollment, name)
        if value not in (None, {}, ""):
            item[name] = value
    return item


def enrollment_from_item(item: dict[str, Any]) -> Enrollment:
    return Enrollment(**{name: item[name] for name in _ENROLLMENT_FIELDS if name in item})


def touch_to_item(touch: Touch) -> dict[str, Any]:
    item = {"pk": f"LEAD#{touch.lead_id}", "sk": f"TOUCH#{touch.touch_id}"}
    for name in _TOUCH_FIELDS:
        value = getattr(touch, name)
        if value not in (None, ""):
            item[name] = value
    return item


def touch_from_item(item: dict[str, Any]) -> Touch:
    return Touch(**{name: item[name] for name in _TOUCH_FIELDS if name in item})


SEND_LOG = "SENDLOG"
_SEND_LOG_KEEP = 50


def may_log_send(sends: list[list[Any]], touch: Any, max_sends: int, window_seconds: float) -> bool:
    if any(entry[1] == touch.touch_id for entry in sends):
        return True  # this touch's own entry, from an earlier attempt
    near = [entry for entry in sends if abs(float(entry[0]) - touch.at) < window_seconds]
    return len(near) < max_sends


def send_log_item(touch: Any, log: dict[str, Any], window_seconds: float) -> dict[str, Any]:
    """LEAD#<id> / SENDLOG: the lead's recent marketing sends, [time, touch id], for the cap."""
    sends = sorted([*log["sends"], [touch.at, touch.touch_id]], key=lambda entry: float(entry[0]))
    recent = [entry for entry in sends if float(entry[0]) > touch.at - 2 * window_seconds][-_SEND_LOG_KEEP:]
    return {"pk": f"LEAD#{touch.lead_id}", "sk": SEND_LOG, "sends": recent, "version": log["version"] + 1}


def claims_content(touch: Any) -> bool:
    return touch.channel == "email" and touch.klass == "marketing" and bool(touch.content_id)


def content_claim_item(touch: Any) -> dict[str, Any]:
    """LEAD#<id> / CONTENT#<content id>: the lead was sent this piece, by this touch."""
    return {"pk": f"LEAD#{touch.lead_id}", "sk": f"CONTENT#{touch.content_id}", "touch": touch.touch_id, "at": touch.at}


class DynamoTimelineStore:
    """Enrollments and touches beside their lead (same partition), so a lead's
    whole nurture history is one Query. Every write that must happen once is
    conditional: an enrollment is created once, a touch is claimed once."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _query(self, lead_id: str, prefix: str) -> list[dict[str, Any]]:
        items, request = (
            [],
            {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": to_item({":pk": f"LEAD#{lead_id}", ":prefix": prefix}),
                "ConsistentRead": True,
            },
        )
        while True:
            response = self._client.query(**request)
            items.extend(from_item(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def enrollments(self, lead_id: str) -> list[Any]:
        return [enrollment_from_item(item) for item in self._query(lead_id, "ENR#")]

    def get_enrollment(self, lead_id: str, track_id: str, seq: int) -> Any | None:
        response = self._client.get_item(
            TableName=self._table, Key=to_item(enrollment_key(lead_id, track_id, seq)), ConsistentRead=True
        )
        return enrollment_from_item(from_item(response["Item"])) if "Item" in response else None

    def create_enrollment(self, enrollment: Any) -> bool:
        """False if this enrollment already exists (a duplicate trigger)."""
        enrollment.version = 1
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(enrollment_to_item(enrollment)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def save_enrollment(self, enrollment: Any, expected_version: int) -> None:
        enrollment.version = expected_version + 1
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(enrollment_to_item(enrollment)),
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":v": {"N": str(expected_version)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            enrollment.version = expected_version
            raise ConcurrentUpdateError(f"enrollment {enrollment.enrollment_id} changed concurrently") from exc

    def claim_touch(self, touch: Any) -> bool:
        """Record a touch before acting on it; False if enrollment + step was
        already claimed, so a retried or redelivered step never acts twice.

        A marketing email first claims its content for the lead (kept if the
        claim is this touch's own, from an earlier attempt): two tracks deciding
        for one lead at the same moment (a pricing visit that also makes the
        lead warm) cannot both send the same piece. Two conditional puts, not a
        transaction: a crash between them leaves the content claimed by a touch
        its retry will still send."""
        if claims_content(touch):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=to_item(content_claim_item(touch)),
                    ConditionExpression="attribute_not_exists(pk) OR #touch = :touch",
                    ExpressionAttributeNames={"#touch": "touch"},  # a reserved word
                    ExpressionAttributeValues={":touch": {"S": touch.touch_id}},
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                return False
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(touch_to_item(touch)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def update_touch(self, touch: Any) -> None:
        self._client.put_item(TableName=self._table, Item=to_item(touch_to_item(touch)))

    def release_touch(self, touch: Any) -> None:
        """Forget a claim whose send was definitely rejected, so a retry may send."""
        if claims_content(touch):
            claim = content_claim_item(touch)
            with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                self._client.delete_item(
                    TableName=self._table,
                    Key=to_item({"pk": claim["pk"], "sk": claim["sk"]}),
                    ConditionExpression="#touch = :touch",  # only this touch's own claim
                    ExpressionAttributeNames={"#touch": "touch"},
                    ExpressionAttributeValues={":touch": {"S": touch.touch_id}},
                )
        self._client.delete_item(
            TableName=self._table, Key=to_item({"pk": f"LEAD#{touch.lead_id}", "sk": f"TOUCH#{touch.touch_id}"})
        )

    def touches(self, lead_id: str) -> list[Any]:
        return [touch_from_item(item) for item in self._query(lead_id, "TOUCH#")]

    def reserve_marketing_send(self, touch: Any, max_sends: int, window_seconds: float) -> bool:
        """Enter the touch in the lead's marketing-send log unless `max_sends`
        sends already lie within `window_seconds` of it (either side: a send
        decided a moment earlier may be logged a moment later). An optimistic
        write on one item per lead, retried on a concurrent change, so two tracks
        sending at once cannot both pass the cap. Idempotent per touch."""
        key = to_item({"pk": f"LEAD#{touch.lead_id}", "sk": SEND_LOG})
        for _ in range(8):
            found = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            log = from_item(found) if found else {"sends": [], "version": 0}
            if not may_log_send(log["sends"], touch, max_sends, window_seconds):
                return False
            if any(entry[1] == touch.touch_id for entry in log["sends"]):
                return True
            request: dict[str, Any] = {
                "TableName": self._table,
                "Item": to_item(send_log_item(touch, log, window_seconds)),
            }
            if log["version"]:
                request["ConditionExpression"] = "version = :v"
                request["ExpressionAttributeValues"] = {":v": {"N": str(log["version"])}}
            else:
                request["ConditionExpression"] = "attribute_not_exists(pk)"
            try:
                self._client.put_item(**request)
            except self._client.exceptions.ConditionalCheckFailedException:
                continue
            return True
        raise ConcurrentUpdateError(f"the marketing-send log of lead {touch.lead_id} kept changing")

    def release_marketing_send(self, touch: Any) -> None:
        """Take a send that definitely did not happen out of the log (best effort)."""
        key = to_item({"pk": f"LEAD#{touch.lead_id}", "sk": SEND_LOG})
        found = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        if not found:
            return
        log = from_item(found)
        log["sends"] = [entry for entry in log["sends"] if entry[1] != touch.touch_id]
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.put_item(
                TableName=self._table,
                Item=to_item({**log, "version": log["version"] + 1}),
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":v": {"N": str(log["version"])}},
            )

    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Any | None:
        response = self._client.get_item(
            TableName=self._table, Key=to_item({"pk": f"LEAD#{lead_id}", "sk": f"TOUCH#{enrollment_id}#{step_id}"})
        )
        return touch_from_item(from_item(response["Item"])) if "Item" in response else None
