"""What the handler's AWS requests cost: DynamoDB write request units by AWS's
sizing rules (GSI included), billed from the requests themselves against a
shadow copy of the table, and every AWS API call by service and operation."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from nurture.store.schema import EventItem, IdentityItem, LeadItem


def number_size(text: str) -> int:
    """Bytes DynamoDB bills for a number: 1 per two significant digits, plus 1."""
    mantissa = text.lstrip("+-").lower().split("e")[0]
    digits = mantissa.replace(".", "").strip("0")  # leading and trailing zeros are not stored
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(number_size(s) for s in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in v.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


TABLE_KEY = ("pk", "sk")


class Index:
    """A global secondary index as template.yaml declares it: its key
    attributes and what it projects (KEYS_ONLY, INCLUDE or ALL)."""

    def __init__(self, name: str, keys: tuple[str, ...], projection: str, included: tuple[str, ...] = ()) -> None:
        self.name, self.keys, self.projection, self.included = name, keys, projection, included

    def entry(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        """The item's entry in the index (None: not in it, the index is sparse):
        the table's key and the index's key attributes, plus what is projected."""
        if not item or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return item
        names = {*TABLE_KEY, *self.keys, *(self.included if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in names}

    def writes(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[int]:
        """The index writes a table write makes, as the sizes of the entries
        written (DynamoDB Developer Guide, "Provisioned throughput
        considerations for Global Secondary Indexes"): an item entering the
        index is one put, leaving it one delete, a change of an index key
        attribute a delete plus a put, a change of projected non-key attributes
        only one put; nothing when the entry stays the same or the item is in
        the index neither before nor after. Each is billed on the entry's size,
        1 unit per KB rounded up."""
        before, after = self.entry(old), self.entry(new)
        if before is None and after is None:
            return []
        if before is None:
            return [item_size(after)]
        if after is None:
            return [item_size(before)]
        if any(before[key] != after[key] for key in self.keys):
            return [item_size(before), item_size(after)]
        return [item_size(after)] if before != after else []


def table_indexes(table: dict[str, Any]) -> list[Index]:
    """The global secondary indexes of a template.yaml table's Properties."""
    indexes = []
    for index in table.get("GlobalSecondaryIndexes") or []:
        keys = tuple(k["AttributeName"] for k in sorted(index["KeySchema"], key=lambda k: k["KeyType"] != "HASH"))
        projection = index.get("Projection") or {}
        indexes.append(
            Index(
                index["IndexName"],
                keys,
                projection.get("ProjectionType", "ALL"),
                tuple(projection.get("NonKeyAttributes") or ()),
            )
        )
    return indexes


class WriteMeter:
    """Hooks one botocore DynamoDB client: captures each request's parameters
    (before-parameter-build) and, once the service answered (after-call),
    bills it by the AWS rules against a shadow copy of the table."""

    def __init__(self, client: Any, reader: Any, counter: CallCounter, indexes: list[Index]) -> None:
        self.indexes = indexes
        self.reader = reader  # an unhooked client, to read an item after an UpdateItem
        self.counter = counter  # paused while the meter reads
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.wru: Counter[str] = Counter()
        self.lead_sizes: list[int] = []
        self.event_sizes: list[int] = []
        self.conditional_failures = 0
        self.writes: Counter[str] = Counter()  # items written, by category
        self.paused = False
        # With keep_puts: every item put, as (invocation, category, item), for
        # modelling other storage designs on the same writes (storage.py).
        self.keep_puts = False
        self.invocation = 0
        self.puts: list[tuple[int, str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.dynamodb", self._capture)
        client.meta.events.register("after-call.dynamodb", self._bill)

    @staticmethod
    def _capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    @staticmethod
    def _key(item: dict[str, Any]) -> tuple[str, str]:
        return item["pk"]["S"], item["sk"]["S"]

    @staticmethod
    def _category(key: tuple[str, str], operation: str) -> str:
        pk, sk = key
        if sk == LeadItem.SK:
            return "lead_update_item" if operation == "UpdateItem" else "lead_put_item"
        if sk.startswith((EventItem.STAGE, f"{EventItem.EVENT}stage-")):
            return "lifecycle_items"
        if sk.startswith(EventItem.EVENT):
            return "event_items"
        if sk == IdentityItem.SK:
            return "identity_items"
        return "other"

    def _index_writes(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for index in self.indexes:
            for size in index.writes(old, new):
                self.wru[index.name] += write_units(size)
                self.writes[index.name] += 1

    def table_units(self) -> int:
        """Write units billed on the table itself (every category but the indexes)."""
        names = {index.name for index in self.indexes}
        return sum(units for category, units in self.wru.items() if category not in names)

    def _put(self, item: dict[str, Any], operation: str) -> None:
        key = self._key(item)
        old = self.items.get(key)
        size = max(item_size(old), item_size(item))
        category = self._category(key, operation)
        self.wru[category] += write_units(size)
        self.writes[category] += 1
        self._index_writes(old, item)
        self.items[key] = item
        if self.keep_puts:
            self.puts.append((self.invocation, category, item))
        if category == "lead_put_item":
            self.lead_sizes.append(item_size(item))
        elif category == "event_items":
            self.event_sizes.append(item_size(item))

    def _bill(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self.paused:
            return
        params = context.get("bench_params") or {}
        operation = model.name
        failed = http_response.status_code >= 300
        if operation == "PutItem":
            item = params["Item"]
            if failed:  # a failed conditional write is still billed
                self.conditional_failures += 1
                key = self._key(item)
                self.wru["failed_conditional_writes"] += write_units(
                    max(item_size(self.items.get(key)), item_size(item))
                )
            else:
                self._put(item, operation)
        elif operation == "BatchWriteItem":
            unprocessed = (
                {
                    json.dumps(r, sort_keys=True)
                    for table in (parsed.get("UnprocessedItems") or {}).values()
                    for r in table
                }
                if not failed
                else None
            )
            for table_requests in params["RequestItems"].values():
                for request in table_requests:
                    if unprocessed is None or json.dumps(request, sort_keys=True) in unprocessed:
                        continue
                    if "PutRequest" in request:
                        self._put(request["PutRequest"]["Item"], operation)
                    else:
                        key = self._key(request["DeleteRequest"]["Key"])
                        old = self.items.pop(key, None)
                        self.wru[self._category(key, "DeleteItem")] += write_units(item_size(old))
                        self.writes[self._category(key, "DeleteItem")] += 1
                        self._index_writes(old, None)
        elif operation in ("UpdateItem", "DeleteItem"):
            key = self._key(params["Key"])
            old = self.items.get(key)
            if failed:
                self.conditional_failures += 1
                self.wru["failed_conditional_writes"] += write_units(item_size(old))
                return
            new = self._read(params["TableName"], params["Key"]) if operation == "UpdateItem" else None
            self.wru[self._category(key, operation)] += write_units(max(item_size(old), item_size(new)))
            self.writes[self._category(key, operation)] += 1
            self._index_writes(old, new)
            if new is None:
                self.items.pop(key, None)
            else:
                self.items[key] = new
        elif operation == "TransactWriteItems":
            self._bill_transaction(params["TransactItems"], failed)

    def _read(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The item as the service holds it now (after an update), read unmetered."""
        self.paused, counting, self.counter.active = True, self.counter.active, False
        try:
            return self.reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        finally:
            self.paused, self.counter.active = False, counting

    def _bill_transaction(self, actions: list[dict[str, Any]], failed: bool) -> None:
        """A transactional write costs 2 units per KB of each item it writes
        or checks; a cancelled transaction is billed too. Index writes follow
        the table writes that happened, at the usual rate."""
        for action in actions:
            ((kind, request),) = action.items()
            key = self._key(request["Item"] if kind == "Put" else request["Key"])
            old = self.items.get(key)
            if failed or kind == "ConditionCheck":
                proposed = request.get("Item") if kind == "Put" else None
                category = "failed_transactions" if failed else "transaction_condition_checks"
                self.wru[category] += 2 * write_units(max(item_size(old), item_size(proposed)))
                continue
            new = request["Item"] if kind == "Put" else self._read(request["TableName"], request["Key"])
            if kind == "Delete":
                new = None
            category = self._category(key, "UpdateItem" if kind == "Update" else "PutItem")
            self.wru[category] += 2 * write_units(max(item_size(old), item_size(new)))
            self.writes[category] += 1
            self._index_writes(old, new)
            if new is None:
                self.items.pop(key, None)
            else:
                self.items[key] = new
            if category == "lead_put_item" and new is not None:
                self.lead_sizes.append(item_size(new))


class CallCounter:
    """Counts every AWS API call made while `active` (all clients, all services)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.log: list[str] = []  # the operations in order
        self.active = False
        import botocore.client

        self._original = botocore.client.BaseClient._make_api_call
        counter = self

        def counting(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if counter.active:
                operation = f"{client.meta.service_model.service_name}.{operation_name}"
                counter.calls[operation] += 1
                counter.log.append(operation)
            return counter._original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counting

    def restore(self) -> None:
        import botocore.client

        botocore.client.BaseClient._make_api_call = self._original
