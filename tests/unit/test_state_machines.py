"""Every ASL file under infra/statemachines is well formed: each StartAt, Next,
Default and Catch target names a state that exists, every state is reachable,
and every Task retries and catches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ASL_FILES = sorted((Path(__file__).resolve().parents[2] / "infra" / "statemachines").glob("*.asl.json"))


def _targets(state: dict) -> list[str]:
    targets = [state[key] for key in ("Next", "Default") if key in state]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def _machines(definition: dict):
    yield definition
    for state in definition["States"].values():
        for branch in state.get("Branches", []):
            yield from _machines(branch)
        if "Iterator" in state:
            yield from _machines(state["Iterator"])
        if "ItemProcessor" in state:
            yield from _machines(state["ItemProcessor"])


def test_there_are_state_machines():
    assert [path.name for path in ASL_FILES] == ["nurture_timeline.asl.json"]


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_transition_points_at_an_existing_state(path):
    for machine in _machines(json.loads(path.read_text())):
        states = machine["States"]
        assert machine["StartAt"] in states
        for name, state in states.items():
            for target in _targets(state):
                assert target in states, f"{name} -> {target}"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_state_is_reachable(path):
    for machine in _machines(json.loads(path.read_text())):
        seen, frontier = set(), [machine["StartAt"]]
        while frontier:
            name = frontier.pop()
            if name not in seen:
                seen.add(name)
                frontier += _targets(machine["States"][name])
        assert seen == set(machine["States"])


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_task_retries_and_catches(path):
    for machine in _machines(json.loads(path.read_text())):
        for name, state in machine["States"].items():
            if state["Type"] == "Task":
                assert state.get("Retry"), name
                assert state.get("Catch"), name


def test_the_timeline_uses_jsonpath_not_jsonata():
    text = (ASL_FILES[0]).read_text()
    assert "QueryLanguage" not in text and "{%" not in text
