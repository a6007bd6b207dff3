"""Data access for leads, identities and events in the single DynamoDB table.

The item layout — keys, attribute names, indexes, TTL — is defined once, by
the PynamoDB models of `nurture.store.schema`. Two interfaces over it:

- `DynamoLeadStore`, the ingest consumer's store. Its hot path (identity
  lookups, reading and saving leads, writing events) sends requests on the
  low-level client, batched to the service limits, with items built from the
  models' attribute names: a model instance costs about 65 µs per event to
  build and serialise against 2.5 µs for the plain item (docs/ARCHITECTURE.md).
  Its colder operations (consent, preferences, soft bounces, the sweep
  budget, tombstones, the lead's history) use the models themselves.
- `DynamoTimelineStore`: enrollments, touches, content claims and the send
  log, all through the models.

Items never leave the store: callers get domain objects. The `*_to_item` /
`*_from_item` functions give the plain-document form of an item (attribute
name -> value), which the tests' in-memory fakes keep.

gsi2 is the sparse due index of the sweeps (KEYS_ONLY): a lead carries
gsi2pk = DUE#<shard>, gsi2sk = <due epoch seconds, 11 digits>#<lead id> only
while some sweep will have work for it (see nurture.sweeps.scheduled.due_at), and is
due at once while its outbox holds unpublished events. Every write of the
whole lead recomputes it, so every write path keeps it true. Both indexes are
keys-only, so their queries (which cannot see an item's kind) are low-level
requests too.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import PynamoDBException

from nurture.core.domain import Enrollment, Lead, StoredEvent, Touch
from nurture.core.errors import ConcurrentUpdateError
from nurture.store.schema import DUE_SHARDS as DUE_SHARDS
from nurture.store.schema import (
    LEAD_ATTRIBUTES,
    ContentClaimItem,
    EnrollmentItem,
    EventItem,
    IdentityItem,
    LeadItem,
    NurtureItem,
    SendLogItem,
    SoftBounceItem,
    SweepBudgetItem,
    TombstoneItem,
    TouchItem,
    bind,
    due_bound,
    due_shard,
    due_shard_key,
    due_sort_key,
    epoch,
    expiry,
    from_item,
    identity_key,
    key_item,
    lead_of_partition,
    lead_partition,
    to_item,
)

PROFILE = LeadItem.SK
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
MAX_PROPERTY_BYTES = 600
DueFunction = Callable[[Lead], float | None]

__all__ = [
    "DUE_SHARDS",
    "StoredEvent",
    "due_bound",
    "due_shard",
    "due_sort_key",
    "from_item",
    "identity_key",
    "to_item",
]


def tombstone_key(key: str) -> tuple[str, str]:
    """The tombstone of an identity key: only its SHA-256 is kept, never the address."""
    return TombstoneItem.key(key)


def _condition_failed(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


# --- item mapping (the hot path's plain items, named by the models) -----------

_ATTRIBUTES = LeadItem.get_attributes()
_LEAD_FIELDS = tuple((name, _ATTRIBUTES[name].attr_name) for name in LEAD_ATTRIBUTES)
_KIND = NurtureItem.kind.attr_name
_LEAD_KIND = NurtureItem.kind.serialize(LeadItem)
_LEAD_ID = LeadItem.lead_id.attr_name
_VERSION = LeadItem.version.attr_name
_OUTBOX = LeadItem.outbox.attr_name
_DUE_KEY = LeadItem.due_key.attr_name
_EVENT_KIND = NurtureItem.kind.serialize(EventItem)
_IDENTITY_KIND = NurtureItem.kind.serialize(IdentityItem)
_EXPIRES = NurtureItem.expires_at.attr_name
_E = {name: attribute.attr_name for name, attribute in EventItem.get_attributes().items()}


def lead_to_item(lead: Lead, due: DueFunction | None = None) -> dict[str, Any]:
    pk, sk = LeadItem.key(lead.lead_id)
    item: dict[str, Any] = {"pk": pk, "sk": sk, _KIND: _LEAD_KIND, _LEAD_ID: lead.lead_id}
    for attribute, name in _LEAD_FIELDS:
        value = getattr(lead, attribute)
        if value not in (None, [], {}, ""):
            item[name] = value
    if lead.domain and not lead.merged_into:
        item["gsi1pk"] = LeadItem.account_key(lead.domain)
        item["gsi1sk"] = LeadItem.account_sort_key(lead.lead_id)
    when = due(lead) if due is not None else None
    if when is not None:
        item[_DUE_KEY] = due_sort_key(when, lead.lead_id)  # restored by clear_outbox
    if lead.outbox and not lead.merged_into:
        item["gsi2pk"], item["gsi2sk"] = due_shard(lead.lead_id), due_sort_key(0, lead.lead_id)
    elif when is not None:
        item["gsi2pk"], item["gsi2sk"] = due_shard(lead.lead_id), item[_DUE_KEY]
    return item


def lead_from_item(item: dict[str, Any]) -> Lead:
    lead = Lead(lead_id=item[_LEAD_ID])
    for attribute, name in _LEAD_FIELDS:
        if name in item:
            setattr(lead, attribute, item[name])
    return lead


def event_to_item(event: StoredEvent) -> dict[str, Any]:
    pk, sk = EventItem.key(event.lead_id, event.message_id, lifecycle=event.kind == "lifecycle")
    item: dict[str, Any] = {
        "pk": pk,
        "sk": sk,
        _KIND: _EVENT_KIND,
        _E["event_kind"]: event.kind,
        _E["name"]: event.name,
        _E["timestamp"]: event.timestamp,
        _E["source"]: event.source,
    }
    if event.properties:
        item[_E["properties"]] = _compact_properties(event.properties)
    if event.points:
        item[_E["points"]] = event.points
    if event.content:
        item[_E["content"]] = event.content
    if event.expires_at:
        item[_EXPIRES] = event.expires_at
    return item


def event_from_item(item: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        lead_id=lead_of_partition(item["pk"]) or "",
        message_id=EventItem.message_id_of(item["sk"]),
        kind=item[_E["event_kind"]],
        name=item[_E["name"]],
        timestamp=item[_E["timestamp"]],
        source=item.get(_E["source"], ""),
        properties=json.loads(item[_E["properties"]]) if _E["properties"] in item else {},
        points=item.get(_E["points"], []),
        content=item.get(_E["content"], []),
        expires_at=item.get(_EXPIRES, 0),
    )


def event_from_model(item: EventItem) -> StoredEvent:
    return StoredEvent(
        lead_id=lead_of_partition(item.pk) or "",
        message_id=EventItem.message_id_of(item.sk),
        kind=item.event_kind,
        name=item.name,
        timestamp=item.timestamp,
        source=item.source or "",
        properties=json.loads(item.properties) if item.properties else {},
        points=item.points or [],
        content=item.content or [],
        expires_at=epoch(item.expires_at),
    )


def identity_item(key: str, lead_id: str) -> dict[str, Any]:
    pk, sk = IdentityItem.key(key)
    return {"pk": pk, "sk": sk, _KIND: _IDENTITY_KIND, _LEAD_ID: lead_id}


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


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batch_get(
    client: Any,
    table: str,
    keys: list[tuple[str, str]],
    consistent: bool = False,
    max_attempts: int = 8,
    meter: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """BatchGetItem in requests of 100 distinct keys, retrying unprocessed keys with
    jittered back-off; `meter` gets each response with its consumed capacity."""
    found: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(keys))
    for chunk in _chunks(unique, BATCH_GET_LIMIT):
        request = {table: {"Keys": [key_item(pk, sk) for pk, sk in chunk], "ConsistentRead": consistent}}
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


def _query_pages(client: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        response = client.query(**request)
        yield from response["Items"]
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class DynamoLeadStore:
    """LeadStore on one DynamoDB table. Batches reads to 100 keys and writes to
    25 items per request and retries unprocessed keys with jittered back-off."""

    def __init__(self, client: Any, table_name: str, max_attempts: int = 8, due: DueFunction | None = None) -> None:
        self._client = client
        self._table = table_name
        self._max_attempts = max_attempts
        self._due = due
        self.sweep_reads = {"capacity_units": 0.0, "index_items": 0, "leads": 0}

    def _models(self) -> None:
        bind(self._client, self._table)

    def _batch_get(
        self, keys: list[tuple[str, str]], consistent: bool = False, metered: bool = False
    ) -> list[dict[str, Any]]:
        return batch_get(
            self._client, self._table, keys, consistent, self._max_attempts, self._meter if metered else None
        )

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self._client, self._table, requests, self._max_attempts)

    def lookup_identities(self, keys: Iterable[str]) -> dict[str, str]:
        items = self._batch_get([IdentityItem.key(key) for key in keys])
        return {IdentityItem.identity_of(item["pk"]): item[_LEAD_ID] for item in items}

    def get_leads(self, lead_ids: Iterable[str], consistent: bool = False) -> dict[str, Lead]:
        items = self._batch_get([LeadItem.key(lead_id) for lead_id in lead_ids], consistent)
        return {item[_LEAD_ID]: lead_from_item(item) for item in items}

    def existing_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        items = self._batch_get([EventItem.key(lead_id, mid) for lead_id, mid in keys])
        return {(lead_of_partition(item["pk"]) or "", EventItem.message_id_of(item["sk"])) for item in items}

    def save_lead(self, lead: Lead, expected_version: int) -> None:
        lead.version = expected_version + 1
        request: dict[str, Any] = {"TableName": self._table, "Item": to_item(lead_to_item(lead, self._due))}
        if expected_version == 0:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            request["ConditionExpression"] = f"{_VERSION} = :v"
            request["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        try:
            self._client.put_item(**request)
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            lead.version = expected_version
            raise ConcurrentUpdateError(f"lead {lead.lead_id} changed concurrently") from exc

    def write_records(self, events: Sequence[StoredEvent], identities: dict[str, str]) -> None:
        requests = [{"PutRequest": {"Item": to_item(event_to_item(event))}} for event in events]
        requests += [
            {"PutRequest": {"Item": to_item(identity_item(key, lead_id))}} for key, lead_id in identities.items()
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
        key = key_item(*LeadItem.key(lead_id))
        values = {":v": {"N": str(version)}}
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=f"REMOVE {_OUTBOX} SET gsi2sk = {_DUE_KEY}",
                    ConditionExpression=f"{_VERSION} = :v AND attribute_exists({_DUE_KEY})",
                    ExpressionAttributeValues=values,
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=f"REMOVE {_OUTBOX}, gsi2pk, gsi2sk",
                    ConditionExpression=f"{_VERSION} = :v AND attribute_not_exists({_DUE_KEY})",
                    ExpressionAttributeValues=values,
                )

    def set_consent(self, lead_id: str, consent: str, now: float) -> bool:
        actions = [LeadItem.consent.set(consent), LeadItem.consent_at.set(now)]
        if consent != "subscribed":
            # A suppressed lead leaves the sweeps' due index (a pending outbox
            # stays with the lead and goes out with its next write).
            actions += [LeadItem.gsi2pk.remove(), LeadItem.gsi2sk.remove(), LeadItem.due_key.remove()]
        return self._update_profile(lead_id, actions)

    def set_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> bool:
        return self._update_profile(lead_id, [LeadItem.preferences.set(preferences), LeadItem.preferences_at.set(now)])

    def _update_profile(self, lead_id: str, actions: list[Any]) -> bool:
        """Apply `actions` to an existing lead and add one to its version
        (PynamoDB's update always increments the version attribute; with no
        version condition it adds to the stored one)."""
        self._models()
        lead = LeadItem(*LeadItem.key(lead_id), version=0)
        try:
            lead.update(actions=actions, condition=LeadItem.pk.exists(), add_version_condition=False)
        except PynamoDBException as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def increment_transient_bounces(
        self, lead_id: str, message_id: str, bounced_at: float, window_seconds: float
    ) -> int:
        """Count a transient bounce once per SES message (a string set: adding is
        idempotent); returns how many fell inside the window."""
        self._models()
        bounces = SoftBounceItem(*SoftBounceItem.key(lead_id))
        bounces.update(
            actions=[
                NurtureItem.kind.set(SoftBounceItem),
                SoftBounceItem.bounces.add({f"{int(bounced_at)}#{message_id}"}),
                SoftBounceItem.expires_at.set(expiry(bounced_at + window_seconds)),
            ]
        )
        entries = bounces.bounces or set()
        return sum(1 for entry in entries if int(entry.split("#", 1)[0]) >= bounced_at - window_seconds)

    def lead_events(self, lead_id: str) -> list[StoredEvent]:
        """The lead's stored events and lifecycle moves, oldest key first."""
        self._models()
        return [event_from_model(item) for item in EventItem.query(lead_partition(lead_id))]

    def due_leads(self, now: float, limit: int, after: Any = None) -> tuple[list[tuple[Lead, str | None]], Any]:
        """Leads whose due moment is at or before `now`, from the sparse due
        index, shard by shard, oldest first within a shard, each with the due
        key its item holds now (the index may lag); `after` is the cursor a
        previous page returned. Metered in `sweep_reads`."""
        shard, start_key = after if after is not None else (0, None)
        keys: list[tuple[str, str]] = []
        while shard < DUE_SHARDS and len(keys) < limit:
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": LeadItem.due_index.Meta.index_name,
                "KeyConditionExpression": "gsi2pk = :shard AND gsi2sk <= :now",
                "ExpressionAttributeValues": to_item({":shard": due_shard_key(shard), ":now": due_bound(now)}),
                "Limit": limit - len(keys),
                "ReturnConsumedCapacity": "TOTAL",
            }
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = self._client.query(**request)
            self._meter(response)
            self.sweep_reads["index_items"] += response.get("ScannedCount", len(response["Items"]))
            keys.extend((item["pk"]["S"], item["sk"]["S"]) for item in response["Items"])
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                shard += 1
        cursor = (shard, start_key) if shard < DUE_SHARDS else None
        items = self._batch_get(keys, metered=True) if keys else []
        self.sweep_reads["leads"] += len(items)
        order = {pk: n for n, (pk, _) in enumerate(keys)}
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
        self._models()
        key = SweepBudgetItem.key(day)
        expires = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=8)
        for _ in range(self._max_attempts):
            try:
                item = SweepBudgetItem.get(*key, consistent_read=True)
                spent = int(item.spent or 0)
                condition = SweepBudgetItem.spent == spent
            except SweepBudgetItem.DoesNotExist:
                item, spent = SweepBudgetItem(*key), 0
                condition = SweepBudgetItem.pk.does_not_exist()
            granted = count if count < 0 else max(0, min(count, budget - spent))
            if granted == 0:
                return 0
            try:
                item.update(
                    actions=[
                        NurtureItem.kind.set(SweepBudgetItem),
                        SweepBudgetItem.spent.add(granted),
                        SweepBudgetItem.expires_at.set(expires),
                    ],
                    condition=condition,
                )
            except PynamoDBException as exc:
                if _condition_failed(exc):
                    continue
                raise
            return granted
        raise ConcurrentUpdateError(f"the sweep budget of {day} kept changing")

    def account_leads(self, domain: str, limit: int = 200) -> list[Lead]:
        response = self._client.query(
            TableName=self._table,
            IndexName=LeadItem.account_index.Meta.index_name,
            KeyConditionExpression="gsi1pk = :account",
            ExpressionAttributeValues=to_item({":account": LeadItem.account_key(domain)}),
            Limit=limit,
        )
        lead_ids = [LeadItem.lead_of_account_sort_key(item["gsi1sk"]["S"]) for item in response["Items"]]
        return list(self.get_leads(lead_ids).values())

    def lookup_identities_and_tombstones(
        self, keys: Iterable[str], person_keys: Iterable[str]
    ) -> tuple[dict[str, str], set[str]]:
        of_tombstone = {TombstoneItem.key(key): key for key in person_keys}
        requested = [IdentityItem.key(key) for key in keys] + list(of_tombstone)
        identities, erased = {}, set()
        for item in self._batch_get(requested):
            if item["sk"] == IdentityItem.SK:
                identities[IdentityItem.identity_of(item["pk"])] = item[_LEAD_ID]
            else:
                erased.add(of_tombstone[(item["pk"], item["sk"])])
        return identities, erased

    def put_tombstones(self, keys: Iterable[str], now: float) -> None:
        self._models()
        with TombstoneItem.batch_write() as batch:
            for pk, sk in {TombstoneItem.key(key) for key in keys}:
                batch.save(TombstoneItem(pk, sk, erased_at=now))

    def lead_item_keys(self, lead_id: str) -> list[tuple[str, str]]:
        """Every item of the partition, whatever its kind (a keys-only query
        that reads items of any age, so erasure misses nothing)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": lead_partition(lead_id)}),
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        return [(item["pk"]["S"], item["sk"]["S"]) for item in _query_pages(self._client, request)]

    def identity_item_keys(self, identity_keys: Iterable[str]) -> list[tuple[str, str]]:
        return [IdentityItem.key(key) for key in identity_keys]

    def delete_items(self, keys: Sequence[tuple[str, str]]) -> None:
        self._models()
        with NurtureItem.batch_write() as batch:
            for pk, sk in dict.fromkeys(keys):
                batch.delete(NurtureItem(pk, sk))


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())


# --- enrollments and touches ------------------------------------------------------

_ENROLLMENT_FIELDS = tuple(name for name in EnrollmentItem.get_attributes() if name not in NurtureItem.get_attributes())
_TOUCH_FIELDS = tuple(name for name in TouchItem.get_attributes() if name not in NurtureItem.get_attributes())


def enrollment_key(lead_id: str, track_id: str, seq: int) -> dict[str, str]:
    pk, sk = EnrollmentItem.key(lead_id, track_id, seq)
    return {"pk": pk, "sk": sk}


def _enrollment_model(enrollment: Enrollment, version: int | None) -> EnrollmentItem:
    """The enrollment's item, at `version` (None: a new item, which PynamoDB
    saves as version 1 on condition that no version exists)."""
    item = EnrollmentItem(*EnrollmentItem.key(enrollment.lead_id, enrollment.track_id, enrollment.seq))
    for name in _ENROLLMENT_FIELDS:
        value = getattr(enrollment, name)
        if name != "version" and value not in (None, {}, ""):
            setattr(item, name, value)
    if version is not None:
        item.version = version
    return item


def _enrollment(item: EnrollmentItem) -> Enrollment:
    values = {name: getattr(item, name) for name in _ENROLLMENT_FIELDS}
    return Enrollment(**{name: value for name, value in values.items() if value is not None})


def _touch_model(touch: Touch) -> TouchItem:
    item = TouchItem(*TouchItem.key(touch.lead_id, touch.touch_id))
    for name in _TOUCH_FIELDS:
        value = getattr(touch, name)
        if value not in (None, ""):
            setattr(item, name, value)
    return item


def _touch(item: TouchItem) -> Touch:
    values = {name: getattr(item, name) for name in _TOUCH_FIELDS}
    return Touch(**{name: value for name, value in values.items() if value is not None})


def enrollment_to_item(enrollment: Enrollment) -> dict[str, Any]:
    return from_item(_enrollment_model(enrollment, enrollment.version or None).serialize())


def enrollment_from_item(item: dict[str, Any]) -> Enrollment:
    return _enrollment(EnrollmentItem.from_raw_data(to_item(item)))


def touch_to_item(touch: Touch) -> dict[str, Any]:
    return from_item(_touch_model(touch).serialize())


def touch_from_item(item: dict[str, Any]) -> Touch:
    return _touch(TouchItem.from_raw_data(to_item(item)))


SEND_LOG = SendLogItem.SK
_SEND_LOG_KEEP = 50


def may_log_send(sends: list[list[Any]], touch: Any, max_sends: int, window_seconds: float) -> bool:
    if any(entry[1] == touch.touch_id for entry in sends):
        return True  # this touch's own entry, from an earlier attempt
    near = [entry for entry in sends if abs(float(entry[0]) - touch.at) < window_seconds]
    return len(near) < max_sends


def logged_sends(sends: list[list[Any]], touch: Any, window_seconds: float) -> list[list[Any]]:
    """The send log with the touch entered, [time, touch id], only as far back as the cap looks."""
    entries = sorted([*sends, [touch.at, touch.touch_id]], key=lambda entry: float(entry[0]))
    return [entry for entry in entries if float(entry[0]) > touch.at - 2 * window_seconds][-_SEND_LOG_KEEP:]


def send_log_item(touch: Any, log: dict[str, Any], window_seconds: float) -> dict[str, Any]:
    """LEAD#<id> / SENDLOG as a plain item: the lead's recent marketing sends, for the cap."""
    pk, sk = SendLogItem.key(touch.lead_id)
    return {
        "pk": pk,
        "sk": sk,
        "sends": logged_sends(log["sends"], touch, window_seconds),
        "version": log["version"] + 1,
    }


def claims_content(touch: Any) -> bool:
    return touch.channel == "email" and touch.klass == "marketing" and bool(touch.content_id)


def _content_claim(touch: Any) -> ContentClaimItem:
    return ContentClaimItem(*ContentClaimItem.key(touch.lead_id, touch.content_id), touch=touch.touch_id, at=touch.at)


def content_claim_item(touch: Any) -> dict[str, Any]:
    """LEAD#<id> / CONTENT#<content id> as a plain item: the lead was sent this piece, by this touch."""
    return from_item(_content_claim(touch).serialize())


class DynamoTimelineStore:
    """Enrollments and touches beside their lead (same partition), so a lead's
    whole nurture history is one Query. Every write that must happen once is
    conditional: an enrollment is created once, a touch is claimed once."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _models(self) -> None:
        bind(self._client, self._table)

    def enrollments(self, lead_id: str) -> list[Enrollment]:
        self._models()
        found = EnrollmentItem.query(
            lead_partition(lead_id), EnrollmentItem.sk.startswith(EnrollmentItem.PREFIX), consistent_read=True
        )
        return [_enrollment(item) for item in found]

    def get_enrollment(self, lead_id: str, track_id: str, seq: int) -> Enrollment | None:
        self._models()
        try:
            return _enrollment(EnrollmentItem.get(*EnrollmentItem.key(lead_id, track_id, seq), consistent_read=True))
        except EnrollmentItem.DoesNotExist:
            return None

    def create_enrollment(self, enrollment: Enrollment) -> bool:
        """False if this enrollment already exists (a duplicate trigger)."""
        self._models()
        item = _enrollment_model(enrollment, version=None)
        try:
            item.save()
        except PynamoDBException as exc:
            if _condition_failed(exc):
                return False
            raise
        enrollment.version = 1
        return True

    def save_enrollment(self, enrollment: Enrollment, expected_version: int) -> None:
        self._models()
        # saved as expected + 1, on condition that the stored version is the expected one
        item = _enrollment_model(enrollment, version=expected_version)
        try:
            item.save()
        except PynamoDBException as exc:
            if _condition_failed(exc):
                raise ConcurrentUpdateError(f"enrollment {enrollment.enrollment_id} changed concurrently") from exc
            raise
        enrollment.version = expected_version + 1

    def claim_touch(self, touch: Touch) -> bool:
        """Record a touch before acting on it; False if enrollment + step was
        already claimed, so a retried or redelivered step never acts twice.

        A marketing email first claims its content for the lead (kept if the
        claim is this touch's own, from an earlier attempt): two tracks deciding
        for one lead at the same moment (a pricing visit that also makes the
        lead warm) cannot both send the same piece. Two conditional puts, not a
        transaction: a crash between them leaves the content claimed by a touch
        its retry will still send."""
        self._models()
        claims = []
        if claims_content(touch):
            claims.append(
                (
                    _content_claim(touch),
                    ContentClaimItem.pk.does_not_exist() | (ContentClaimItem.touch == touch.touch_id),
                )
            )
        claims.append((_touch_model(touch), TouchItem.pk.does_not_exist()))
        for item, condition in claims:
            try:
                item.save(condition=condition)
            except PynamoDBException as exc:
                if _condition_failed(exc):
                    return False
                raise
        return True

    def update_touch(self, touch: Touch) -> None:
        self._models()
        _touch_model(touch).save()

    def release_touch(self, touch: Touch) -> None:
        """Forget a claim whose send was definitely rejected, so a retry may send."""
        self._models()
        if claims_content(touch):
            try:  # only this touch's own claim
                _content_claim(touch).delete(condition=ContentClaimItem.touch == touch.touch_id)
            except PynamoDBException as exc:
                if not _condition_failed(exc):
                    raise
        TouchItem(*TouchItem.key(touch.lead_id, touch.touch_id)).delete()

    def touches(self, lead_id: str) -> list[Touch]:
        self._models()
        found = TouchItem.query(
            lead_partition(lead_id), TouchItem.sk.startswith(TouchItem.PREFIX), consistent_read=True
        )
        return [_touch(item) for item in found]

    def _send_log(self, lead_id: str) -> SendLogItem:
        try:
            return SendLogItem.get(*SendLogItem.key(lead_id), consistent_read=True)
        except SendLogItem.DoesNotExist:
            return SendLogItem(*SendLogItem.key(lead_id), sends=[])

    def reserve_marketing_send(self, touch: Touch, max_sends: int, window_seconds: float) -> bool:
        """Enter the touch in the lead's marketing-send log unless `max_sends`
        sends already lie within `window_seconds` of it (either side: a send
        decided a moment earlier may be logged a moment later). An optimistic
        write on one item per lead (its version attribute), retried on a
        concurrent change, so two tracks sending at once cannot both pass the
        cap. Idempotent per touch."""
        self._models()
        for _ in range(8):
            log = self._send_log(touch.lead_id)
            sends = log.sends or []
            if not may_log_send(sends, touch, max_sends, window_seconds):
                return False
            if any(entry[1] == touch.touch_id for entry in sends):
                return True
            log.sends = logged_sends(sends, touch, window_seconds)
            try:
                log.save()
            except PynamoDBException as exc:
                if _condition_failed(exc):
                    continue
                raise
            return True
        raise ConcurrentUpdateError(f"the marketing-send log of lead {touch.lead_id} kept changing")

    def release_marketing_send(self, touch: Touch) -> None:
        """Take a send that definitely did not happen out of the log (best effort)."""
        self._models()
        log = self._send_log(touch.lead_id)
        if log.version is None:
            return
        log.sends = [entry for entry in log.sends or [] if entry[1] != touch.touch_id]
        try:
            log.save()
        except PynamoDBException as exc:
            if not _condition_failed(exc):
                raise

    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Touch | None:
        self._models()
        try:
            return _touch(TouchItem.get(*TouchItem.key(lead_id, f"{enrollment_id}#{step_id}")))
        except TouchItem.DoesNotExist:
            return None
