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


def _gsi_keys(item: dict[str, Any] | None) -> tuple | None:
    if item and "gsi1pk" in item and "gsi1sk" in item:
        return item["gsi1pk"]["S"], item["gsi1sk"]["S"]
    return None


def gsi_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
    """KEYS_ONLY index: a write only when the index keys appear, go or change
    (a change is a delete plus a put); each is 1 WRU as a keys-only entry is tiny."""
    before, after = _gsi_keys(old), _gsi_keys(new)
    if before == after:
        return 0
    return (before is not None) + (after is not None)


class WriteMeter:
    """Hooks one botocore DynamoDB client: captures each request's parameters
    (before-parameter-build) and, once the service answered (after-call),
    bills it by the AWS rules against a shadow copy of the table."""

    def __init__(self, client: Any, reader: Any, counter: CallCounter) -> None:
        self.reader = reader  # an unhooked client, to read an item after an UpdateItem
        self.counter = counter  # paused while the meter reads
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.wru: Counter[str] = Counter()
        self.lead_sizes: list[int] = []
        self.event_sizes: list[int] = []
        self.conditional_failures = 0
        self.writes: Counter[str] = Counter()  # items written, by category
        self.paused = False
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

    def _put(self, item: dict[str, Any], operation: str) -> None:
        key = self._key(item)
        old = self.items.get(key)
        size = max(item_size(old), item_size(item))
        category = self._category(key, operation)
        self.wru[category] += write_units(size)
        self.writes[category] += 1
        self.wru["gsi"] += gsi_writes(old, item)
        self.items[key] = item
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
                        self.wru["gsi"] += gsi_writes(old, None)
        elif operation in ("UpdateItem", "DeleteItem"):
            key = self._key(params["Key"])
            old = self.items.get(key)
            if failed:
                self.conditional_failures += 1
                self.wru["failed_conditional_writes"] += write_units(item_size(old))
                return
            new = None
            if operation == "UpdateItem":
                self.paused, counting, self.counter.active = True, self.counter.active, False
                try:
                    new = self.reader.get_item(
                        TableName=params["TableName"], Key=params["Key"], ConsistentRead=True
                    ).get("Item")
                finally:
                    self.paused, self.counter.active = False, counting
            self.wru[self._category(key, operation)] += write_units(max(item_size(old), item_size(new)))
            self.writes[self._category(key, operation)] += 1
            self.wru["gsi"] += gsi_writes(old, new)
            if new is None:
                self.items.pop(key, None)
            else:
                self.items[key] = new
        elif operation in ("TransactWriteItems",):
            raise NotImplementedError("the benchmark does not bill transactions yet")


class CallCounter:
    """Counts every AWS API call made while `active` (all clients, all services)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.active = False
        import botocore.client

        self._original = botocore.client.BaseClient._make_api_call
        counter = self

        def counting(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if counter.active:
                counter.calls[f"{client.meta.service_model.service_name}.{operation_name}"] += 1
            return counter._original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counting

    def restore(self) -> None:
        import botocore.client

        botocore.client.BaseClient._make_api_call = self._original
