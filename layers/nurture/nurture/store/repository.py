"""Leads, identities and events in the single DynamoDB table: the ingest
consumer's store (`DynamoLeadStore`).

The item layout — keys, attribute names, indexes, TTL — is defined once, by
the PynamoDB models of `nurture.store.schema`. The hot path here (identity
lookups, reading and saving leads, writing events, clearing the outbox) does
not load PynamoDB: it sends low-level requests, batched to the service limits,
with plain items named by `nurture.store.layout`, which `make layout`
generates from the models. The colder operations (consent, preferences, soft
bounces, the sweep budget, tombstones, a lead's history) load the models and
go through them. docs/ARCHITECTURE.md has the figures behind the split.

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
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nurture.core.domain import ANONYMOUS, CONSENTS, Lead, StoredEvent, lead_id_for
from nurture.core.errors import ConcurrentUpdateError
from nurture.store import layout
from nurture.store.values import from_item, key_item, to_item

if TYPE_CHECKING:
    from types import ModuleType

    from nurture.store.schema import EventItem

PROFILE = layout.LEAD_SK
DUE_SHARDS = 4  # spreads the due index's writes over partitions; a sweep queries each
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
MAX_PROPERTY_BYTES = 600
DueFunction = Callable[[Lead], float | None]

__all__ = ["StoredEvent", "from_item", "to_item"]


def identity_key(kind: str, value: str) -> str:
    """How an identity (kind email, user or anon) is keyed: "<kind>#<value>"."""
    return f"{kind}#{value}"


def lead_key(lead_id: str) -> tuple[str, str]:
    return f"{layout.LEAD_PREFIX}{lead_id}", layout.LEAD_SK


def lead_of_partition(pk: str) -> str | None:
    return pk[len(layout.LEAD_PREFIX) :] if pk.startswith(layout.LEAD_PREFIX) else None


def event_key(lead_id: str, message_id: str, lifecycle: bool = False) -> tuple[str, str]:
    """A lifecycle move has its own prefix, so no client messageId can collide with it."""
    prefix = layout.STAGE_PREFIX if lifecycle else layout.EVENT_PREFIX
    return f"{layout.LEAD_PREFIX}{lead_id}", f"{prefix}{message_id}"


def identity_item_key(identity: str) -> tuple[str, str]:
    return f"{layout.IDENTITY_PREFIX}{identity}", layout.IDENTITY_SK


def tombstone_key(key: str) -> tuple[str, str]:
    """The tombstone of an identity key: only its SHA-256 is kept, never the address."""
    return f"{layout.TOMBSTONE_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}", layout.TOMBSTONE_SK


def due_shard_key(shard: int) -> str:
    return f"{layout.DUE_PREFIX}{shard}"


def due_shard(lead_id: str) -> str:
    return due_shard_key(hashlib.blake2b(lead_id.encode(), digest_size=2).digest()[0] % DUE_SHARDS)


def due_sort_key(due: float, lead_id: str) -> str:
    return f"{max(0, int(due)):011d}#{lead_id}"


def due_bound(now: float) -> str:
    """The greatest due key of a lead due at or before `now`."""
    return f"{max(0, int(now)):011d}~"


def _condition_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


# --- item mapping (the hot path's plain items, named by the models) -----------

_LEAD_FIELDS = tuple(layout.LEAD_ATTRIBUTES.items())
_KIND = layout.KIND
_VERSION = layout.LEAD_VERSION
_OUTBOX = layout.LEAD_OUTBOX
_DUE_KEY = layout.LEAD_DUE_KEY
_EXPIRES = layout.EXPIRES_AT
_E = layout.EVENT_ATTRIBUTES
_GSI1PK, _GSI1SK = layout.ACCOUNT_INDEX_KEYS
_GSI2PK, _GSI2SK = layout.DUE_INDEX_KEYS


def lead_to_item(lead: Lead, due: DueFunction | None = None) -> dict[str, Any]:
    pk, sk = lead_key(lead.lead_id)
    item: dict[str, Any] = {"pk": pk, "sk": sk, _KIND: layout.LEAD_KIND}
    for attribute, name in _LEAD_FIELDS:
        value = getattr(lead, attribute)
        # Empty values and zero numbers (never-set times, no score yet) are left
        # out: lead_from_item restores the Lead's defaults, and the item stays small.
        if value not in (None, [], {}, "", 0):
            item[name] = value
    if lead.domain and not lead.merged_into:
        # The account index: an account's leads, best fit first. A lead's grade
        # rarely changes, so the index is rarely rewritten.
        item[_GSI1PK] = f"{layout.ACCOUNT_PREFIX}{lead.domain}"
        item[_GSI1SK] = lead.fit_grade
    when = due(lead) if due is not None else None
    if when is not None:
        item[_DUE_KEY] = due_sort_key(when, lead.lead_id)  # restored by clear_outbox
    if lead.outbox and not lead.merged_into:
        item[_GSI2PK], item[_GSI2SK] = due_shard(lead.lead_id), due_sort_key(0, lead.lead_id)
    elif when is not None:
        item[_GSI2PK], item[_GSI2SK] = due_shard(lead.lead_id), item[_DUE_KEY]
    return item


def lead_from_item(item: dict[str, Any]) -> Lead:
    lead = Lead(lead_id=lead_of_partition(item["pk"]) or "")
    for attribute, name in _LEAD_FIELDS:
        if name in item:
            setattr(lead, attribute, item[name])
    return lead


def event_to_item(event: StoredEvent) -> dict[str, Any]:
    pk, sk = event_key(event.lead_id, event.message_id, lifecycle=event.kind == "lifecycle")
    item: dict[str, Any] = {
        "pk": pk,
        "sk": sk,
        _KIND: layout.EVENT_KIND,
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
        message_id=item["sk"].split("#", 1)[1],
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
        message_id=item.sk.split("#", 1)[1],
        kind=item.event_kind,
        name=item.name,
        timestamp=item.timestamp,
        source=item.source or "",
        properties=json.loads(item.properties) if item.properties else {},
        points=item.points or [],
        content=item.content or [],
        expires_at=int(item.expires_at.timestamp()) if item.expires_at else 0,
    )


def identity_item(key: str, lead_id: str) -> dict[str, Any]:
    pk, sk = identity_item_key(key)
    return {"pk": pk, "sk": sk, _KIND: layout.IDENTITY_KIND, layout.IDENTITY_LEAD_ID: lead_id}


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

    def _models(self) -> ModuleType:
        """The models, bound to this table: only the colder operations load
        PynamoDB, so a handler's cold start on the hot path never does."""
        from nurture.store import schema

        schema.bind(self._client, self._table)
        return schema

    def _batch_get(
        self, keys: list[tuple[str, str]], consistent: bool = False, metered: bool = False
    ) -> list[dict[str, Any]]:
        return batch_get(
            self._client, self._table, keys, consistent, self._max_attempts, self._meter if metered else None
        )

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self._client, self._table, requests, self._max_attempts)

    def lookup_identities(self, keys: Iterable[str]) -> dict[str, str]:
        return self.lookup_identities_and_tombstones(keys, ())[0]

    def get_leads(self, lead_ids: Iterable[str], consistent: bool = False) -> dict[str, Lead]:
        keys = [lead_key(lead_id) for lead_id in lead_ids]
        if not keys:
            return {}
        items = self._batch_get(keys, consistent)
        leads = [lead_from_item(item) for item in items]
        return {lead.lead_id: lead for lead in leads}

    def stored_records(
        self, events: Iterable[tuple[str, str]], moves: Iterable[tuple[str, str]] = ()
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        keys = {event_key(lead_id, mid): (lead_id, mid) for lead_id, mid in events}
        move_keys = {event_key(lead_id, mid, lifecycle=True): (lead_id, mid) for lead_id, mid in moves}
        found = {(item["pk"], item["sk"]) for item in self._batch_get([*keys, *move_keys])}
        return (
            {pair for key, pair in keys.items() if key in found},
            {pair for key, pair in move_keys.items() if key in found},
        )

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

    def put_aliases(self, lead_id: str, aliases: Sequence[str]) -> None:
        pk = lead_key(lead_id)[0]
        items = [{"pk": pk, "sk": f"{layout.ALIAS_PREFIX}{alias}", _KIND: layout.ALIAS_KIND} for alias in aliases]
        self._batch_write([{"PutRequest": {"Item": to_item(item)}} for item in items])

    def aliases_of(self, lead_id: str) -> list[str]:
        """The merged anonymous leads recorded as their own items (beyond those the lead lists)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :alias)",
            "ExpressionAttributeValues": to_item({":pk": lead_key(lead_id)[0], ":alias": layout.ALIAS_PREFIX}),
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        return [item["sk"]["S"][len(layout.ALIAS_PREFIX) :] for item in _query_pages(self._client, request)]

    def clear_outbox(self, lead: Lead) -> None:
        """Forget the published events of `lead` (as saved) and put it back at
        its own place in the due index, or out of it: one conditional update,
        which fails only when a newer write carried the outbox forward — that
        write's publisher clears it."""
        key = key_item(*lead_key(lead.lead_id))
        indexed = self._due is not None and self._due(lead) is not None
        update = (
            f"REMOVE {_OUTBOX} SET {_GSI2SK} = {_DUE_KEY}" if indexed else f"REMOVE {_OUTBOX}, {_GSI2PK}, {_GSI2SK}"
        )
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression=f"{_VERSION} = :v",
                ExpressionAttributeValues={":v": {"N": str(lead.version)}},
            )

    def set_consent(self, lead_id: str, consent: str, now: float) -> bool:
        """Tighten the lead's consent to `consent` (CONSENTS order) and bump its
        version; a lead already at least as strict is left as it is. The
        condition is on the write itself, so of concurrent changes (an
        unsubscribe racing a complaint) the strictest stands, whatever the
        order. False if there is no such lead."""
        item = self._models().LeadItem
        actions = [item.consent.set(consent), item.consent_at.set(now)]
        if consent != "subscribed":
            # A suppressed lead leaves the sweeps' due index (a pending outbox
            # stays with the lead and goes out with its next write).
            actions += [item.gsi2pk.remove(), item.gsi2sk.remove(), item.due_key.remove()]
        as_strict = CONSENTS[CONSENTS.index(consent) :]
        looser = item.consent.does_not_exist() | ~item.consent.is_in(*as_strict)
        if self._update_profile(lead_id, actions, looser):
            return True
        return bool(self.get_leads([lead_id], consistent=True))

    def set_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> bool:
        item = self._models().LeadItem
        return self._update_profile(lead_id, [item.preferences.set(preferences), item.preferences_at.set(now)])

    def _update_profile(self, lead_id: str, actions: list[Any], condition: Any = None) -> bool:
        """Apply `actions` to an existing lead (on `condition` too, if given) and
        add one to its version (PynamoDB's update always increments the version
        attribute; with no version condition it adds to the stored one). False
        if the lead does not exist or the condition does not hold."""
        LeadItem = self._models().LeadItem  # noqa: N806
        lead = LeadItem(*lead_key(lead_id), version=0)
        exists = LeadItem.pk.exists() if condition is None else LeadItem.pk.exists() & condition
        try:
            lead.update(actions=actions, condition=exists, add_version_condition=False)
        except Exception as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def increment_transient_bounces(
        self, lead_id: str, message_id: str, bounced_at: float, window_seconds: float
    ) -> int:
        """Count a transient bounce once per SES message (a string set: adding is
        idempotent); returns how many fell inside the window."""
        schema = self._models()
        SoftBounceItem = schema.SoftBounceItem  # noqa: N806
        bounces = SoftBounceItem(*SoftBounceItem.key(lead_id))
        bounces.update(
            actions=[
                schema.NurtureItem.kind.set(SoftBounceItem),
                SoftBounceItem.bounces.add({f"{int(bounced_at)}#{message_id}"}),
                SoftBounceItem.expires_at.set(schema.expiry(bounced_at + window_seconds)),
            ]
        )
        entries = bounces.bounces or set()
        return sum(1 for entry in entries if int(entry.split("#", 1)[0]) >= bounced_at - window_seconds)

    def lead_events(self, lead_id: str) -> list[StoredEvent]:
        """The lead's stored events and lifecycle moves, oldest key first."""
        schema = self._models()
        return [event_from_model(item) for item in schema.EventItem.query(schema.lead_partition(lead_id))]

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
                "IndexName": layout.DUE_INDEX,
                "KeyConditionExpression": f"{_GSI2PK} = :shard AND {_GSI2SK} <= :now",
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
        return [(lead_from_item(item), item.get(_GSI2SK)) for item in items], cursor

    def _meter(self, response: dict[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity") or []
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            self.sweep_reads["capacity_units"] += float(entry.get("CapacityUnits", 0.0))

    def read_capacity(self) -> float:
        return self.sweep_reads["capacity_units"]

    def spend_budget(self, day: str, count: int, budget: int) -> int:
        """Reserve up to `count` of the day's sweep budget (negative gives back);
        optimistic on the day's counter, so concurrent sweeps never overspend."""
        schema = self._models()
        SweepBudgetItem = schema.SweepBudgetItem  # noqa: N806
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
                        schema.NurtureItem.kind.set(SweepBudgetItem),
                        SweepBudgetItem.spent.add(granted),
                        SweepBudgetItem.expires_at.set(expires),
                    ],
                    condition=condition,
                )
            except Exception as exc:
                if _condition_failed(exc):
                    continue
                raise
            return granted
        raise ConcurrentUpdateError(f"the sweep budget of {day} kept changing")

    def account_leads(self, domain: str, limit: int = 200) -> list[Lead]:
        response = self._client.query(
            TableName=self._table,
            IndexName=layout.ACCOUNT_INDEX,
            KeyConditionExpression=f"{_GSI1PK} = :account",
            ExpressionAttributeValues=to_item({":account": f"{layout.ACCOUNT_PREFIX}{domain}"}),
            Limit=limit,
        )
        lead_ids = [lead_of_partition(item["pk"]["S"]) or "" for item in response["Items"]]
        return list(self.get_leads(lead_ids).values())

    def lookup_identities_and_tombstones(
        self,
        keys: Iterable[str],
        person_keys: Iterable[str],
        leads: Iterable[str] = (),
        records: Iterable[tuple[str, str]] = (),
    ) -> tuple[dict[str, str], set[str], dict[str, Lead], set[tuple[str, str]]]:
        keys = list(keys)
        of_tombstone = {tombstone_key(key): key for key in person_keys}
        visitors = {lead_id_for(key): key for key in keys if key.startswith(ANONYMOUS)}
        of_record = {event_key(lead_id, mid): (lead_id, mid) for lead_id, mid in records}
        requested = [identity_item_key(key) for key in keys] + list(of_tombstone)
        requested += [lead_key(lead_id) for lead_id in dict.fromkeys([*visitors, *leads])]
        requested += list(of_record)
        identities, erased, found, stored = {}, set(), {}, set()
        for item in self._batch_get(requested):
            if item["sk"] == layout.IDENTITY_SK:
                identities[item["pk"][len(layout.IDENTITY_PREFIX) :]] = item[layout.IDENTITY_LEAD_ID]
            elif item["sk"] == layout.LEAD_SK:
                lead = lead_from_item(item)
                found[lead.lead_id] = lead
            elif (item["pk"], item["sk"]) in of_record:
                stored.add(of_record[(item["pk"], item["sk"])])
            else:
                erased.add(of_tombstone[(item["pk"], item["sk"])])
        for lead_id, key in visitors.items():
            if key not in identities and lead_id in found:
                identities[key] = lead_id
        return identities, erased, found, stored

    def put_tombstones(self, keys: Iterable[str], now: float) -> None:
        TombstoneItem = self._models().TombstoneItem  # noqa: N806
        with TombstoneItem.batch_write() as batch:
            for pk, sk in {TombstoneItem.key(key) for key in keys}:
                batch.save(TombstoneItem(pk, sk, erased_at=now))

    def lead_item_keys(self, lead_id: str) -> list[tuple[str, str]]:
        """Every item of the partition, whatever its kind (a keys-only query
        that reads items of any age, so erasure misses nothing)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": lead_key(lead_id)[0]}),
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        return [(item["pk"]["S"], item["sk"]["S"]) for item in _query_pages(self._client, request)]

    def identity_item_keys(self, identity_keys: Iterable[str]) -> list[tuple[str, str]]:
        return [identity_item_key(key) for key in identity_keys]

    def delete_items(self, keys: Sequence[tuple[str, str]]) -> None:
        NurtureItem = self._models().NurtureItem  # noqa: N806
        with NurtureItem.batch_write() as batch:
            for pk, sk in dict.fromkeys(keys):
                batch.delete(NurtureItem(pk, sk))


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
