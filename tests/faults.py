"""A fault injector for AWS calls: fails one call of a run, chosen by its
position, as a network, a throttle or a function timeout would.

Every botocore client (boto3's and PynamoDB's, which shares it) goes through
`BaseClient._make_api_call`, so one patch sees every call a handler makes.
A fault strikes either before the call reaches the service (nothing happened)
or after it succeeded (the write happened, the caller saw an error: a timeout
after the request went out). Tests run a scenario once clean to count its
calls, then once per call and mode with that call failing, and compare what
the system holds at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

MODES = ("before", "after")
T = TypeVar("T")


class InjectedFault(ClientError):
    def __init__(self, operation: str, mode: str) -> None:
        super().__init__(
            {"Error": {"Code": "InternalServerError", "Message": f"injected fault {mode} {operation}"}}, operation
        )


@dataclass
class FaultInjector:
    fail_at: int | None = None  # 1-based position of the call that fails
    mode: str = "before"
    calls: list[str] = field(default_factory=list)
    struck: str | None = None

    @contextmanager
    def active(self) -> Iterator[FaultInjector]:
        original = BaseClient._make_api_call
        injector = self

        def make_api_call(client: BaseClient, operation: str, params: dict) -> dict:
            injector.calls.append(f"{client.meta.service_model.service_name}.{operation}")
            strike = len(injector.calls) == injector.fail_at
            if strike and injector.mode == "before":
                injector.struck = injector.calls[-1]
                raise InjectedFault(operation, "before")
            try:
                response = original(client, operation, params)
            except Exception:
                if strike:  # the call failed by itself: the caller sees the error it would have seen
                    injector.struck = injector.calls[-1]
                raise
            if strike:
                injector.struck = injector.calls[-1]
                raise InjectedFault(operation, "after")
            return response

        with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
            yield self

    def outbound(self, name: str, request: Callable[[], T]) -> T:
        """An outbound request that is not an AWS call (HTTP to the CRM or an
        ad platform), counted and failed in the same sequence as the AWS calls:
        "before" drops the connection and nothing is sent; "after" sends it and
        drops the connection before the answer (the receiver acted, the caller
        saw a network error)."""
        self.calls.append(name)
        strike = len(self.calls) == self.fail_at
        if strike and self.mode == "before":
            self.struck = name
            raise ConnectionResetError(f"injected fault before {name}")
        response = request()
        if strike:
            self.struck = name
            raise ConnectionResetError(f"injected fault after {name}")
        return response


def table_items(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the table, as DynamoDB returns them (a snapshot to restore)."""
    pages = client.get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def restore_table(client: Any, table: str, snapshot: list[dict[str, Any]]) -> None:
    """Put the table back as `snapshot` holds it: items added since are deleted,
    changed ones rewritten, deleted ones put back, the rest left alone."""
    before = {(item["pk"]["S"], item["sk"]["S"]): item for item in snapshot}
    for item in table_items(client, table):
        key = (item["pk"]["S"], item["sk"]["S"])
        if key not in before:
            client.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        elif before[key] != item:
            client.put_item(TableName=table, Item=before[key])
        before.pop(key, None)
    for item in before.values():
        client.put_item(TableName=table, Item=item)


@contextmanager
def fixed_clocks(monkeypatch: Any, now: float, function_timeout: float) -> Iterator[tuple[Any, Any]]:
    """The product clock fixed at `now`, and the wall clock leases are taken on
    (tests.fakes.WallClock), both moved by hand: every invocation's deadline is
    `function_timeout` seconds of that wall clock."""
    from nurture.core import deadline
    from nurture.core.clock import FixedClock, get_clock, set_clock
    from tests.fakes import WallClock

    previous = get_clock()
    clock, wall = FixedClock(now), WallClock()
    set_clock(clock)
    monkeypatch.setattr(
        deadline.Deadline,
        "of",
        classmethod(lambda cls, context, bound=30.0: cls(lambda: function_timeout, wall_clock=wall)),
    )
    try:
        yield clock, wall
    finally:
        set_clock(previous)
