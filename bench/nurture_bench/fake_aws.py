"""In-process AWS for the CPU measurement: a small DynamoDB and EventBridge
answering at botocore's HTTP layer, and a publisher that publishes nothing."""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from typing import Any

from .expressions import apply_update, condition_holds, holds, key_condition, project

_ERROR = "com.amazonaws.dynamodb.v20120810#"


class _RawBody(io.BytesIO):
    def stream(self, **_: Any):
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


class _Refused(Exception):
    def __init__(self, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.answer = {"__type": _ERROR + kind, "message": message, **extra}


class FakeAws:
    """A small DynamoDB + EventBridge answering botocore's `before-send`, i.e.
    after parameter validation, serialization and SigV4 signing, and before
    the response is parsed: the client-side work stays real. The CPU spent
    in here (the "service") is measured and subtracted from the handler's.

    Expressions are evaluated by `expressions` (DynamoDB's grammar: SET with
    several clauses, REMOVE lists, ADD, DELETE, if_not_exists, list_append,
    conditions with AND/OR/NOT ...); an operation or expression it cannot
    answer raises instead of answering wrong. One table's key is pk/sk; the
    indexes named in `indexes` (index name -> (partition, sort) attributes)
    answer Query. `log` keeps each call's operation name, to compare the calls
    with another run's."""

    def __init__(self, indexes: dict[str, tuple[str, str]] | None = None) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.indexes = indexes or {"gsi1": ("gsi1pk", "gsi1sk"), "gsi2": ("gsi2pk", "gsi2sk")}
        self.cpu = 0.0
        self.calls = 0
        self.log: list[str] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send", self._send)

    def reset_counts(self) -> None:
        self.cpu, self.calls, self.log = 0.0, 0, []

    def _send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        started = time.process_time()
        self.calls += 1
        target = request.headers.get("X-Amz-Target")
        target = target.decode() if isinstance(target, bytes) else str(target)
        service, operation = target.rsplit(".", 1)
        self.log.append(f"{'events' if service.startswith('AWSEvents') else 'dynamodb'}.{operation}")
        body = json.loads(request.body or b"{}")
        handler = getattr(self, "_" + operation, None)
        if handler is None:
            raise NotImplementedError(f"the in-process fake does not answer {operation}")
        try:
            status, answer = 200, handler(body)
        except _Refused as refused:
            status, answer = 400, refused.answer
        payload = json.dumps(answer).encode()
        response = AWSResponse(
            request.url,
            status,
            {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(payload))},
            _RawBody(payload),
        )
        self.cpu += time.process_time() - started
        return response

    @staticmethod
    def _key(item: dict[str, Any]) -> tuple[str, str]:
        return item["pk"]["S"], item["sk"]["S"]

    @staticmethod
    def _check(current: dict[str, Any] | None, body: dict[str, Any]) -> None:
        if not condition_holds(
            body.get("ConditionExpression"),
            current,
            body.get("ExpressionAttributeNames"),
            body.get("ExpressionAttributeValues"),
        ):
            extra = {}
            if body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                extra["Item"] = current
            raise _Refused("ConditionalCheckFailedException", "The conditional request failed", **extra)

    @staticmethod
    def _returned(body: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
        wanted = body.get("ReturnValues", "NONE")
        if wanted == "ALL_OLD" and old:
            return {"Attributes": old}
        if wanted == "ALL_NEW" and new:
            return {"Attributes": new}
        if wanted in ("UPDATED_NEW", "UPDATED_OLD"):
            source = new if wanted == "UPDATED_NEW" else old
            changed = {
                name
                for name in {*(old or {}), *(new or {})}
                if (old or {}).get(name) != (new or {}).get(name) and name not in ("pk", "sk")
            }
            attributes = {name: value for name, value in (source or {}).items() if name in changed}
            return {"Attributes": attributes} if attributes else {}
        return {}

    # -- DynamoDB

    def _GetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(self._key(body["Key"]))
        if not item:
            return {}
        return {"Item": project(item, body.get("ProjectionExpression"), body.get("ExpressionAttributeNames"))}

    def _BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        responses = {}
        for table, request in body["RequestItems"].items():
            found = [self.items[k] for k in map(self._key, request["Keys"]) if k in self.items]
            projection, names = request.get("ProjectionExpression"), request.get("ExpressionAttributeNames")
            responses[table] = [project(item, projection, names) for item in found]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def _BatchWriteItem(self, body: dict[str, Any]) -> dict[str, Any]:
        for requests in body["RequestItems"].values():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    self.items[self._key(item)] = item
                else:
                    self.items.pop(self._key(request["DeleteRequest"]["Key"]), None)
        return {"UnprocessedItems": {}}

    def _PutItem(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._key(body["Item"])
        old = self.items.get(key)
        self._check(old, body)
        self.items[key] = body["Item"]
        return self._returned(body, old, None)

    def _updated(self, body: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any] | None, dict[str, Any]]:
        key = self._key(body["Key"])
        old = self.items.get(key)
        self._check(old, body)
        new = apply_update(
            body["UpdateExpression"],
            copy.deepcopy(old) if old is not None else dict(body["Key"]),
            body.get("ExpressionAttributeNames"),
            body.get("ExpressionAttributeValues"),
        )
        return key, old, new

    def _UpdateItem(self, body: dict[str, Any]) -> dict[str, Any]:
        key, old, new = self._updated(body)
        self.items[key] = new
        return self._returned(body, old, new)

    def _DeleteItem(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._key(body["Key"])
        old = self.items.get(key)
        self._check(old, body)
        self.items.pop(key, None)
        return self._returned(body, old, None)

    def _Query(self, body: dict[str, Any]) -> dict[str, Any]:
        names, values = body.get("ExpressionAttributeNames"), body.get("ExpressionAttributeValues")
        partition_name, partition_value, sort = key_condition(body["KeyConditionExpression"], names, values)
        index = body.get("IndexName")
        sort_name = self.indexes[index][1] if index else "sk"
        matches = [
            item
            for item in self.items.values()
            if item.get(partition_name) == partition_value and sort_name in item and holds(sort, item)
        ]
        matches.sort(key=lambda item: (item[sort_name].get("S") or item[sort_name].get("N"), self._key(item)))
        if body.get("ScanIndexForward") is False:
            matches.reverse()
        start = body.get("ExclusiveStartKey")
        if start:
            keys = [self._key(item) for item in matches]
            after = self._key(start)
            matches = matches[keys.index(after) + 1 :] if after in keys else matches
        limit = body.get("Limit")
        page = matches[:limit] if limit else matches
        answer: dict[str, Any] = {"ScannedCount": len(page)}
        if limit and len(matches) > limit:
            last = page[-1]
            answer["LastEvaluatedKey"] = {
                name: last[name] for name in ("pk", "sk", partition_name, sort_name) if name in last
            }
        found = [item for item in page if condition_holds(body.get("FilterExpression"), item, names, values)]
        answer["Items"] = [project(item, body.get("ProjectionExpression"), names) for item in found]
        answer["Count"] = len(found)
        if body.get("Select") == "COUNT":
            del answer["Items"]
        return answer

    def _TransactWriteItems(self, body: dict[str, Any]) -> dict[str, Any]:
        """All or nothing: every condition is checked before anything is written."""
        staged: list[tuple[tuple[str, str], dict[str, Any] | None]] = []
        reasons: list[dict[str, Any]] = []
        for action in body["TransactItems"]:
            ((kind, request),) = action.items()
            try:
                if kind == "Put":
                    key = self._key(request["Item"])
                    self._check(self.items.get(key), request)
                    staged.append((key, request["Item"]))
                elif kind == "Update":
                    key, _, new = self._updated(request)
                    staged.append((key, new))
                elif kind == "Delete":
                    key = self._key(request["Key"])
                    self._check(self.items.get(key), request)
                    staged.append((key, None))
                else:  # ConditionCheck
                    self._check(self.items.get(self._key(request["Key"])), request)
                reasons.append({"Code": "None"})
            except _Refused:
                reasons.append({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"})
        if any(reason["Code"] != "None" for reason in reasons):
            raise _Refused(
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons "
                f"[{', '.join(reason['Code'] for reason in reasons)}]",
                CancellationReasons=reasons,
            )
        for key, item in staged:
            if item is None:
                self.items.pop(key, None)
            else:
                self.items[key] = item
        return {}

    # -- EventBridge

    def _PutEvents(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in body["Entries"]]}


class NoopPublisher:
    """The event bus answered by nothing (the handler's publisher port)."""

    def publish(self, entries: Any) -> None:
        return None
