"""What a timeline costs an enrolled lead in a month: the state machine of
`infra/statemachines/nurture_timeline.asl.json` walked with the decisions the
configured tracks make.

`month_of_decisions` says what Advance decides for a lead enrolled in a
track, over the track's first month: a first wait until the first step is
due (the steps are due at a time of day, so an enrollment never falls on it),
one touch per step due within the month, and an exit if the track ends
within it. `walk` runs those decisions through the definition, state by
state, and counts the transitions Step Functions bills (every state entered)
and the tasks run. Both are plain functions of the definition and the
configuration, so a change to either is picked up as it is; a timeline whose
decisions are made differently swaps `month_of_decisions`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAYS_PER_MONTH = 30
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
