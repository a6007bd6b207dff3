"""State transitions per enrolled lead-month, counted from what the nurture
timeline does: each configured track's real state machine runs under moto,
through the real handlers, for a lead enrolled on each day of the week, and
its execution history's StateEntered events are counted (Step Functions
bills a Standard execution per state entered).

Waits are not slept: the product clock jumps to each Wait state's timestamp,
so a run is exact (no handler latency moves a touch) and takes seconds.
Executions run one at a time, which that jump needs.

    from nurture_tools.transitions import measure_transitions
    runs = measure_transitions()              # every track in config/, 7 start days
    worst = max(run.per_lead_month for run in runs)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DAY = 86400.0
MONTH_DAYS = 30.0
# A Monday, 15:00 UTC (10:00 in New York, the lead's zone): each run starts
# on one of the seven days from here.
FIRST_START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PREFIX = "transitions"
EXECUTION_TIMEOUT = 60.0  # wall-clock seconds one execution may take before the run gives up


@dataclass(frozen=True)
class TrackRun:
    """One enrollment's execution, from start to its end state."""

    track_id: str
    started_at: float
    status: str  # the execution's: SUCCEEDED, FAILED, ...
    transitions: int  # states entered
    states: dict[str, int]  # states entered, by name
    touches: int  # touches the enrollment recorded
    days: float  # product time from enrollment to the execution's end

    @property
    def per_lead_month(self) -> float:
        """Transitions per enrolled lead-month: a run shorter than a month is
        all of that lead's month; a longer one is prorated to 30 days."""
        return self.transitions * MONTH_DAYS / max(self.days, MONTH_DAYS)

    @property
    def weekday(self) -> str:
        return datetime.fromtimestamp(self.started_at, UTC).strftime("%A")


def measure_transitions(
    project_dir: Path | None = None,
    config_dir: Path | None = None,
    track_ids: list[str] | None = None,
    start_days: int = 7,
) -> list[TrackRun]:
    """Run each track (all configured ones by default) once per start day, a
    fresh lead each time, and count its execution's transitions. The lead is an
    A-fit RevOps director in New York, subscribed and warm; each track is
    entered as its trigger would enter it, without its holdout or audience."""
    import boto3
    from moto import mock_aws

    from nurture import wiring
    from nurture.core.clock import FixedClock, get_clock, set_clock
    from nurture_tools.local import moto_runtime
    from nurture_tools.local.runtime import find_project_dir
    from nurture_tools.local.template import LocalStack

    project = project_dir or find_project_dir()
    config_path = config_dir or project / "config"
    previous_clock = get_clock()
    clock = FixedClock(FIRST_START)
    with mock_aws(config=moto_runtime.MOTO_CONFIG), _environment() as environ:
        session = boto3.session.Session(region_name="us-east-1")
        stack = LocalStack(project, session, prefix=PREFIX)
        stack.provision({"admin": "measure"}, overrides={"NurtureHttpApi": "https://api.nurture.test"})
        environ.update(stack.function_environment())
        environ.update(
            NURTURE_CONFIG_DIR=str(config_path), POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR"
        )
        moto_runtime.route_lambda_invocations()
        for function in stack.functions().values():
            moto_runtime.register_function(f"{PREFIX}-{function.logical_id}", function.load())
        wiring.reset()
        set_clock(clock)
        try:
            with _jumping_waits(clock):
                sfn = session.client("stepfunctions")
                machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
                config = wiring.get_config()
                tracks = [t for t in config.tracks if track_ids is None or t.id in track_ids]
                runs = []
                for day in range(start_days):
                    for track in tracks:
                        clock.set(FIRST_START + timedelta(days=day))
                        runs.append(_run(sfn, machine, track, f"{day}", clock))
                return runs
        finally:
            set_clock(previous_clock)
            moto_runtime.clear_functions()
            wiring.reset()


def _run(sfn: Any, machine: str, track: Any, tag: str, clock: Any) -> TrackRun:
    from nurture import wiring
    from nurture.core.domain import Lead
    from nurture.timelines.use_cases import Enroller

    started = clock.timestamp()
    lead_id = f"measure-{track.id}-{tag}"[:60]
    lead = Lead(
        lead_id,
        email=f"{lead_id}@fintech-measure.com",
        user_id=lead_id,
        profile={
            "timezone": "America/New_York",
            "persona": "revops",
            "industry": "fintech",
            "title": "Director of Revenue Operations",
        },
        fit_grade="A",
        lifecycle="warm",
        buying_stage="solution_exploration",
    )
    store = wiring.get_store()
    store.save_lead(lead, 0)
    trigger = next(iter(track.triggers))
    config = wiring.get_config()
    only = replace(config, tracks=[replace(track, holdout=0.0, audience=(), triggers=(trigger,))])
    enroller = Enroller(store, wiring.get_timeline_store(), wiring.get_enroller().executions, only)
    result = enroller.enroll(lead_id, trigger, started)
    if result.outcome != "enrolled" or result.enrollment_id is None:
        raise RuntimeError(f"{track.id}: the measured lead was not enrolled ({result.outcome}: {result.detail})")
    arn = machine.replace(":stateMachine:", ":execution:") + f":{result.enrollment_id}"
    deadline = time.monotonic() + EXECUTION_TIMEOUT
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            sfn.stop_execution(executionArn=arn)
            raise RuntimeError(f"{track.id}: the execution did not finish")
        time.sleep(0.01)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = Counter(
        event["stateEnteredEventDetails"]["name"] for event in events if event["type"].endswith("StateEntered")
    )
    touches = wiring.get_timeline_store().touches(lead_id)
    return TrackRun(
        track.id,
        started,
        described["status"],
        sum(entered.values()),
        dict(entered),
        len(touches),
        (clock.timestamp() - started) / DAY,
    )


@contextlib.contextmanager
def _environment() -> Iterator[dict[str, str]]:
    """The functions' environment for the run; the process's own restored after."""
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")

    class _Live(dict):
        def update(self, *args: Any, **values: str) -> None:  # type: ignore[override]
            os.environ.update(*args, **values)

    try:
        yield _Live()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _jumping_waits(clock: Any) -> Iterator[None]:
    """Wait states end at once and move the product clock to their timestamp."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp

    from nurture_tools.local import moto_runtime

    moto_runtime.scale_waits(1.0)
    scaled = timestamp.Timestamp._get_wait_seconds

    def jump(self: Any, env: Any) -> float:
        seconds = scaled(self, env)
        if seconds > 0:
            clock.advance(seconds)
        return 0.0

    timestamp.Timestamp._get_wait_seconds = jump
    try:
        yield
    finally:
        timestamp.Timestamp._get_wait_seconds = scaled


def summary(runs: list[TrackRun]) -> dict[str, dict[str, float]]:
    """Per track: the mean and the worst transitions per enrolled lead-month over the start days."""
    by_track: dict[str, list[TrackRun]] = {}
    for run in runs:
        by_track.setdefault(run.track_id, []).append(run)
    return {
        track_id: {
            "mean_per_lead_month": round(sum(r.per_lead_month for r in track_runs) / len(track_runs), 2),
            "max_per_lead_month": round(max(r.per_lead_month for r in track_runs), 2),
            "mean_touches": round(sum(r.touches for r in track_runs) / len(track_runs), 2),
            "mean_days": round(sum(r.days for r in track_runs) / len(track_runs), 2),
        }
        for track_id, track_runs in by_track.items()
    }
