"""Two small, version-pinned adaptations that make moto (5.2.5) run the real
product: Lambda invocations (Step Functions tasks) go to the Python handlers
named in template.yaml, and Step Functions waits follow the product clock, so
a simulated day can pass in a second. Both patch moto internals on purpose;
moto is pinned exactly for that reason."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nurture.core.clock import get_clock

logger = logging.getLogger("nurture_tools.local")

_handlers: dict[str, Callable[[Any, Any], Any]] = {}
_lock = threading.Lock()
_installed: set[str] = set()
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def register_function(name: str, handler: Callable[[Any, Any], Any]) -> None:
    """Route invocations of the Lambda function `name` to `handler`."""
    _handlers[name] = handler


def clear_functions() -> None:
    _handlers.clear()


def _function_name(name_or_arn: str) -> str:
    return name_or_arn.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in name_or_arn else name_or_arn


def route_lambda_invocations() -> None:
    """Make moto's Docker-less Lambda run the registered handler instead of echoing."""
    with _lock:
        if "lambda" in _installed:
            return
        from moto.awslambda_simple.models import LambdaSimpleBackend

        from nurture_tools.local.apigw import lambda_context

        def invoke(self, function_name, qualifier, body, headers, response_headers):  # noqa: ANN001
            name = _function_name(function_name)
            handler = _handlers.get(name)
            if handler is None:
                raise KeyError(f"no local handler registered for Lambda function {name}")
            event = json.loads(body) if body else {}
            try:
                result = handler(event, lambda_context(name))
            except Exception as error:
                logger.exception("%s failed", name)
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
            return json.dumps(result).encode()

        LambdaSimpleBackend.invoke = invoke
        _installed.add("lambda")


class _WaitScale:
    scale = 1.0


def scale_waits(scale: float) -> None:
    """Step Functions Wait states measure time on the product clock and sleep
    `1/scale` of it; StopExecution still interrupts them."""
    _WaitScale.scale = scale
    with _lock:
        if "wait" in _installed:
            return
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp, wait_function

        def get_wait_seconds(self, env):  # noqa: ANN001
            self.string.eval(env=env)
            text = env.stack.pop()
            moment = self._from_timestamp_string(timestamp=text)
            if moment is None:
                raise timestamp.FailureEventException(self._create_failure_event(env, text))
            simulated = moment.replace(tzinfo=UTC).timestamp() - get_clock().timestamp()
            return max(0.0, simulated / _WaitScale.scale)

        def wait_interval(self, env, wait_seconds):  # noqa: ANN001
            deadline = time.monotonic() + wait_seconds
            while env.is_running():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or env.program_state_event.wait(min(remaining, 1.0)):
                    return  # due, or interrupted (StopExecution): Advance re-checks the time

        timestamp.Timestamp._get_wait_seconds = get_wait_seconds
        wait_function.WaitFunction._wait_interval = wait_interval
        _installed.add("wait")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
