"""What a timeline costs an enrolled lead in a month, from the state machine
of `infra/statemachines/nurture_timeline.asl.json`, in two ways:

- `run_execution` (what `nurture cost` uses): an execution the enroll
  function started is run in-process for a month, state by state, its Lambda
  tasks calling the real functions (Advance decides against the lead's
  state, SendEmail sends through SES), its Wait states moving the product
  clock. Every state entered is a transition Step Functions bills, so a
  change to the definition or to what Advance decides is picked up as it is.
- `walk` with `month_of_decisions` (the fallback when the definition uses
  what the in-process run does not interpret): the decisions a track's
  configuration implies — a first wait, a touch per step due within the
  month, an exit if the track ends — walked through the definition.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAYS_PER_MONTH = 30
MAX_STATES = 500  # in a month; more is a timeline that loops without waiting
log = logging.getLogger("nurture_tools.cost")
WAIT = "wait"
EXIT = "exit"


@dataclass
class Walk:
    transitions: int = 0
    states: Counter[str] = field(default_factory=Counter)
    lambda_invocations: Counter[str] = field(default_factory=Counter)  # substitution name -> invocations
    sqs_messages: Counter[str] = field(default_factory=Counter)


def load_definition(project_dir: Path) -> dict[str, Any]:
    return json.loads((project_dir / "infra" / "statemachines" / "nurture_timeline.asl.json").read_text())


def _path(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.removeprefix("$").strip(".").split("."):
        if not part:
            continue
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _choose(state: dict[str, Any], document: dict[str, Any]) -> str:
    for rule in state.get("Choices", []):
        value = _path(document, rule["Variable"])
        if "StringEquals" in rule and value == rule["StringEquals"]:
            return rule["Next"]
        if "IsPresent" in rule and (value is not None) == rule["IsPresent"]:
            return rule["Next"]
        if "BooleanEquals" in rule and value == rule["BooleanEquals"]:
            return rule["Next"]
        unsupported = set(rule) - {"Variable", "Next", "StringEquals", "IsPresent", "BooleanEquals"}
        if unsupported:
            raise ValueError(f"the cost walk cannot evaluate Choice rule {sorted(unsupported)}")
    if "Default" not in state:
        raise ValueError("a Choice state matched no rule and has no Default")
    return state["Default"]


def _decision_document(decision: dict[str, Any]) -> dict[str, Any]:
    """The execution's input as the Choice states see it after the deciding
    task: the decision under `$.decision` (its ResultPath) and at the top."""
    return {"decision": decision, **decision}


def walk(definition: dict[str, Any], decisions: list[dict[str, Any]]) -> Walk:
    """Runs `decisions` (one per run of the deciding task, in order) through
    the definition: each Task that invokes a Lambda function and has a
    ResultPath takes the next decision; Choice states route on it; a Wait
    hands over to the next decision; the walk ends at Succeed or Fail, or
    at a Wait once the decisions are used up (the month is over)."""
    states = definition["States"]
    result = Walk()
    name = definition["StartAt"]
    remaining = list(decisions)
    document: dict[str, Any] = {}
    for _ in range(10_000):
        state = states[name]
        result.transitions += 1
        result.states[name] += 1
        kind = state["Type"]
        if kind in ("Succeed", "Fail"):
            return result
        if kind == "Task":
            resource = state.get("Resource", "")
            parameters = state.get("Parameters") or {}
            if resource.endswith(":lambda:invoke") or ":function:" in resource:
                function = str(parameters.get("FunctionName", resource))
                result.lambda_invocations[function.strip("${}")] += 1
                if state.get("ResultPath") not in (None, "$.error") and "ResultSelector" in state:
                    if not remaining:
                        return result
                    document = _decision_document(remaining.pop(0))
            elif resource.endswith(":sqs:sendMessage"):
                result.sqs_messages[str(parameters.get("QueueUrl", "")).strip("${}")] += 1
            else:
                raise ValueError(f"the cost walk does not know the task resource {resource}")
        elif kind == "Choice":
            name = _choose(state, document)
            continue
        elif kind == "Wait":
            if not remaining:
                return result
        elif kind != "Pass":
            raise ValueError(f"the cost walk does not know the state type {kind}")
        if state.get("End"):
            return result
        name = state["Next"]
    raise RuntimeError("the timeline walk did not end")


def month_of_decisions(track: Any, days: float = DAYS_PER_MONTH) -> list[dict[str, Any]]:
    """Advance's decisions for a lead enrolled in `track`, over `days`: wait
    for the first step, then each step due within the period (a touch on its
    channel, which also names when to wake next), then exit if the track
    has no step left. A step's `after_days` counts from the step before."""
    decisions: list[dict[str, Any]] = [{"action": WAIT}]
    elapsed = 0.0
    steps = list(track.steps)
    for position, step in enumerate(steps):
        elapsed += step.after_days
        if elapsed > days:
            return decisions
        decisions.append({"action": step.channel, "step": step.id})
        if position == len(steps) - 1:
            decisions.append({"action": EXIT})
    return decisions


def timeline_usage(project_dir: Path, started: list[dict[str, Any]]) -> dict[str, Any]:
    """The month of each started execution, walked per its track; the mean
    per execution of transitions, task invocations, queued touches, emails."""
    from nurture.config.loader import load_config

    definition = load_definition(project_dir)
    tracks = {track.id: track for track in load_config(project_dir / "config").tracks}
    walks: dict[str, Any] = {}
    totals: Counter[str] = Counter()
    for execution in started:
        track_id = execution.get("track_id")
        if track_id not in tracks:
            continue
        if track_id not in walks:
            decisions = month_of_decisions(tracks[track_id])
            walked = walk(definition, decisions)
            walks[track_id] = {
                "transitions": walked.transitions,
                "advance": walked.lambda_invocations.get("AdvanceFunctionArn", 0),
                "send_email": walked.lambda_invocations.get("SendEmailFunctionArn", 0),
                "audience_messages": walked.sqs_messages.get("AudienceQueueUrl", 0),
                "sales_messages": walked.sqs_messages.get("SalesTaskQueueUrl", 0),
                "emails": sum(1 for d in decisions if d["action"] == "email"),
                "decisions": [d["action"] for d in decisions],
            }
        totals.update({k: v for k, v in walks[track_id].items() if k != "decisions"})
        totals["executions"] += 1
    runs = max(1, totals["executions"])
    per_execution = {
        k: totals[k] / runs
        for k in ("transitions", "advance", "send_email", "audience_messages", "sales_messages", "emails")
    }
    return {
        "per_execution": per_execution,
        "transitions_per_execution": per_execution["transitions"],
        "transitions_per_enrolled_lead_month": per_execution["transitions"],
        "executions_by_track": dict(Counter(e.get("track_id") for e in started)),
        "tracks": walks,
    }


# ------------------------------------------------- executions, run for real --


class UnsupportedStateError(ValueError):
    """The definition uses something the in-process run does not interpret."""


def _parameters(template: Any, document: Any) -> Any:
    """A Parameters / ResultSelector block with its `.$` paths resolved."""
    if not isinstance(template, dict):
        return template
    resolved = {}
    for key, value in template.items():
        if key.endswith(".$"):
            if not isinstance(value, str) or not value.startswith("$"):
                raise UnsupportedStateError(f"the cost run cannot evaluate {key}: {value!r}")
            resolved[key[:-2]] = _path(document, value)
        else:
            resolved[key] = _parameters(value, document)
    return resolved


def _with_result(document: dict[str, Any], result_path: Any, result: Any) -> dict[str, Any]:
    if result_path is None:
        return document
    if result_path == "$":
        return result if isinstance(result, dict) else {"value": result}
    updated = json.loads(json.dumps(document))
    target = updated
    parts = result_path.removeprefix("$.").split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = result
    return updated


def run_execution(
    definition: dict[str, Any],
    execution_input: dict[str, Any],
    invoke: Any,
    clock: Any,
    until: float,
) -> Walk:
    """One execution run in-process from its input until it ends or waits
    past `until`: Lambda tasks call `invoke(substitution name, payload)` (the
    real handler), SQS tasks are counted, Choice states route on the
    document, Wait states move the product clock (a `FixedClock`) on, and
    so does each task, by the time it ran.
    A task that raises follows the state's Catch. Every state entered is
    counted, as Step Functions bills it."""
    from datetime import datetime

    states = definition["States"]
    result = Walk()
    document = dict(execution_input)
    name = definition["StartAt"]
    for _ in range(MAX_STATES):
        state = states[name]
        result.transitions += 1
        result.states[name] += 1
        kind = state["Type"]
        if kind in ("Succeed", "Fail"):
            return result
        if kind == "Task":
            resource = state.get("Resource", "")
            parameters = state.get("Parameters") or {}
            if resource.endswith(":lambda:invoke"):
                function = str(parameters.get("FunctionName", "")).strip("${}")
                payload = _parameters({k: v for k, v in parameters.items() if k.startswith("Payload")}, document)
                result.lambda_invocations[function] += 1
                started = time.perf_counter()
                try:
                    answer = {"Payload": invoke(function, payload.get("Payload"))}
                except Exception as error:  # the state's Catch decides, as Step Functions does
                    log.warning("cost: %s failed in %s: %r", function, name, error)
                    catch = next(iter(state.get("Catch") or []), None)
                    if catch is None:
                        raise
                    document = _with_result(document, catch.get("ResultPath", "$"), {"Error": type(error).__name__})
                    name = catch["Next"]
                    continue
                finally:
                    # The product's time passes while a task runs, as it does deployed
                    # (a wake due a fraction of a second after its Wait ends is reached).
                    clock.advance(time.perf_counter() - started)
                selected = _parameters(state["ResultSelector"], answer) if "ResultSelector" in state else answer
                document = _with_result(document, state.get("ResultPath", "$"), selected)
            elif resource.endswith(":sqs:sendMessage"):
                result.sqs_messages[str(parameters.get("QueueUrl", "")).strip("${}")] += 1
                document = _with_result(document, state.get("ResultPath", "$"), {"MessageId": "cost"})
            else:
                raise UnsupportedStateError(f"the cost run does not know the task resource {resource}")
        elif kind == "Choice":
            name = _choose(state, document)
            continue
        elif kind == "Wait":
            if "TimestampPath" in state:
                stamp = str(_path(document, state["TimestampPath"]))
                moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            elif "SecondsPath" in state:
                moment = clock.timestamp() + float(_path(document, state["SecondsPath"]))
            else:
                raise UnsupportedStateError("the cost run reads Wait states by TimestampPath or SecondsPath")
            if moment > until:
                return result
            clock.advance(max(0.0, moment - clock.timestamp()))
        elif kind == "Pass":
            document = _with_result(document, state.get("ResultPath", "$"), state.get("Result", document))
        else:
            raise UnsupportedStateError(f"the cost run does not know the state type {kind}")
        if state.get("End"):
            return result
        name = state["Next"]
    raise RuntimeError(f"the execution entered {MAX_STATES} states in a month: {dict(result.states)}")
