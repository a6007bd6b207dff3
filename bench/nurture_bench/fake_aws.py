"""In-process AWS for the CPU measurement: a tiny DynamoDB and EventBridge
answering at botocore's HTTP layer, and a publisher that publishes nothing."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from typing import Any


class _RawBody(io.BytesIO):
    def stream(self, **_: Any):
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


class FakeAws:
    """A tiny DynamoDB + EventBridge answering botocore's `before-send`, i.e.
    after parameter validation, serialization and SigV4 signing, and before
    the response is parsed: the client-side work stays real. The CPU spent
    in here (the "service") is measured and subtracted from the handler's."""

    _CONDITION = re.compile(r"^\s*(?:attribute_not_exists\((\w+)\)|attribute_exists\((\w+)\)|(\w+)\s*=\s*(:\w+))\s*$")

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.cpu = 0.0
        self.calls = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send", self._send)

    def _send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        started = time.process_time()
        self.calls += 1
        target = request.headers.get("X-Amz-Target")
        target = target.decode() if isinstance(target, bytes) else str(target)
        operation = target.split(".")[-1]
        body = json.loads(request.body or b"{}")
        try:
            status, answer = 200, getattr(self, "_" + operation)(body)
        except _Conditional:
            status, answer = (
                400,
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                    "message": "The conditional request failed",
                },
            )
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

    def _check(self, current: dict[str, Any] | None, expression: str | None, values: dict[str, Any]) -> None:
        if not expression:
            return
        for clause in re.split(r"\s+AND\s+", expression, flags=re.IGNORECASE):
            match = self._CONDITION.match(clause)
            if not match:
                raise NotImplementedError(f"condition {clause!r}")
            missing, present, name, placeholder = match.groups()
            ok = (
                (missing and not (current and missing in current))
                or (present and current and present in current)
                or (name and current and current.get(name) == values.get(placeholder))
            )
            if not ok:
                raise _Conditional()

    def _BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        responses = {}
        for table, request in body["RequestItems"].items():
            responses[table] = [self.items[k] for k in map(self._key, request["Keys"]) if k in self.items]
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
        self._check(self.items.get(key), body.get("ConditionExpression"), body.get("ExpressionAttributeValues", {}))
        self.items[key] = body["Item"]
        return {}

    def _GetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(self._key(body["Key"]))
        return {"Item": item} if item else {}

    def _UpdateItem(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._key(body["Key"])
        current = self.items.get(key)
        self._check(current, body.get("ConditionExpression"), body.get("ExpressionAttributeValues", {}))
        expression = body["UpdateExpression"].strip()
        if not expression.upper().startswith("REMOVE "):
            raise NotImplementedError(f"update {expression!r}")
        if current is not None:
            for name in expression[7:].split(","):
                current.pop(name.strip(), None)
        return {}

    def _PutEvents(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in body["Entries"]]}


class _Conditional(Exception):
    pass


class NoopPublisher:
    """The event bus answered by nothing (the handler's publisher port)."""

    def publish(self, entries: Any) -> None:
        return None
