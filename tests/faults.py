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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

MODES = ("before", "after")


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
