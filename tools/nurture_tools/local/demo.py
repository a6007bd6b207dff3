"""`nurture demo`: a synthetic market through the real pipeline on the local
stack in accelerated time, then the report and an export."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

DAY = 86400.0
# A Monday at midnight UTC: the simulated calendar is the same on every run.
SIMULATED_START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
PROCESSING_SECONDS = 2.0  # wall-clock time the pipeline may take to commit a move it has dated
SIMULATED_MARKET_NOTE = (
    "The market in this report is simulated: accounts, people and their behaviour are drawn from a model "
    "(nurture_tools/local/market.py and simulation.py), in which relevant email raises a person's intent. The "
    "pipeline that scored, enrolled, emailed and recorded them is the real one, on the embedded local stack."
)


@dataclass
class DemoOptions:
    leads: int = 200
    days: int = 45
    seed: int = 7
    seconds_per_day: float = 2.5
    out: Path | None = None
    drain_seconds: float = 10.0


@dataclass
class DemoResult:
    folder: Path
    report: dict[str, Any]
    wall_seconds: float


def run_demo(options: DemoOptions, stream: TextIO = sys.stdout) -> DemoResult:
    from nurture_tools.export import write_export
    from nurture_tools.local.runtime import LocalKeys, LocalRuntime, find_project_dir
    from nurture_tools.promises import check_promises
    from nurture_tools.report import build_report
    from nurture_tools.report_render import render_html, render_text

    began = time.monotonic()
    project = find_project_dir()
    folder = options.out or project / "out" / f"demo-{options.seed}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    scale = DAY / options.seconds_per_day
    say = _Printer(stream)
    say.line(
        f"Nurture demo: {options.leads} simulated leads over {options.days} simulated days "
        f"(seed {options.seed}, a day every {options.seconds_per_day:g} s)"
    )
    folder.mkdir(parents=True, exist_ok=True)
    # The functions' own output (errors, metrics, warnings) goes to a file, not over the progress line.
    pipeline_log = (folder / "pipeline.log").open("w", buffering=1)
    runtime = LocalRuntime(
        project, aws_port=0, api_port=0, keys=LocalKeys.from_environment()[0], time_scale=scale, log_level="ERROR"
    )
    say.line("Starting the local stack (AWS emulator, template resources, API, pollers)…")
    with contextlib.redirect_stdout(pipeline_log), contextlib.redirect_stderr(pipeline_log):
        records, stats, finished_at, config = _simulate(runtime, options, scale, say)
    notes = [SIMULATED_MARKET_NOTE]
    if stats.outcome_endpoint != "available":
        notes.append(
            "Sales outcomes not recorded: this build's API has no POST /v1/leads/{lead}/outcome, so the "
            f"{sum(stats.outcomes_refused.values())} verdicts the simulated sales team reached were not applied; "
            "opportunity, customer and revenue figures stay empty."
        )
    if stats.errors:
        notes.append(
            "Simulator requests that failed: " + ", ".join(f"{k} x{v}" for k, v in sorted(stats.errors.items()))
        )
    promises = check_promises(
        records.leads, records.touches, records.events, config.policy, handoff_grace_seconds(scale)
    )
    report = build_report(
        records.leads,
        records.touches,
        records.events,
        source={
            "kind": "nurture demo",
            "simulated": True,
            "seed": options.seed,
            "leads": options.leads,
            "days": options.days,
            "seconds_per_day": options.seconds_per_day,
            "simulated_start": SIMULATED_START,
            "simulated_end": finished_at,
            "simulator": {
                "sessions": stats.sessions,
                "segment_calls": stats.segment_calls,
                "forms": stats.forms,
                "emails_received": stats.emails_seen,
                "ses_records": dict(stats.ses_records),
                "unsubscribes": stats.unsubscribes,
                "leads_sales_worked": stats.hot,
                "outcomes_applied": dict(stats.outcomes),
                "outcomes_not_recorded": dict(stats.outcomes_refused),
            },
        },
        notes=notes,
        promises=promises,
    )
    paths = write_export(records, folder)
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / "report.html").write_text(render_html(report))
    wall = time.monotonic() - began
    pipeline_log.flush()  # left open: function loggers created during the run keep writing to it
    say.line("")
    say.line(render_text(report))
    say.line("")
    say.line(f"Done in {wall:.0f} s. Output in {folder}/")
    for name in ("report.html", "report.json", *(p.name for p in paths.values())):
        say.line(f"  {folder / name}")
    return DemoResult(folder, report, wall)


def handoff_grace_seconds(scale: float) -> float:
    """How far a lifecycle move's timestamp may precede its commit: a couple of
    wall-clock seconds of processing under load, in simulated time."""
    return 60 + PROCESSING_SECONDS * scale


def _simulate(runtime: Any, options: DemoOptions, scale: float, say: _Printer) -> tuple[Any, Any, float, Any]:
    """Start the stack, run the market through it, read the table back, stop."""
    import boto3

    from nurture.config.loader import load_config
    from nurture.core.clock import ScaledClock, get_clock, set_clock
    from nurture_tools.export import read_table
    from nurture_tools.local.market import build_market
    from nurture_tools.local.simulation import Simulation

    runtime.start()
    try:
        config = load_config(runtime.config_dir)
        market = build_market(options.seed, options.leads, SIMULATED_START, options.days)
        say.line(
            f"Market: {len(market.accounts)} accounts, {len(market.people)} people "
            f"({sum(a.in_market for a in market.accounts)} accounts in market)"
        )
        set_clock(ScaledClock(scale, start=SIMULATED_START))  # the same calendar on every run
        simulation = Simulation(market, runtime, config, SIMULATED_START)
        simulation.run(SIMULATED_START + options.days * DAY, progress=say.progress(options.days))
        say.done()
        say.line("Letting the pipeline finish what is in flight…")
        _drain(runtime, options.drain_seconds)
        say.line("Reading the table back…")
        client = boto3.client("dynamodb", endpoint_url=runtime.endpoint, region_name="us-east-1")
        records = read_table(client, runtime.environment["TABLE_NAME"])
        return records, simulation.stats, get_clock().timestamp(), config
    finally:
        runtime.stop()


def _drain(runtime: Any, timeout: float) -> None:
    """Until the ingest queue and the rule queues hold nothing (or `timeout`)."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=runtime.endpoint, region_name="us-east-1")
    urls = [
        runtime.environment["INGEST_QUEUE_URL"],
        *(url for f in runtime.stack.functions().values() for url in f.rule_queues),
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for url in urls:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            busy = (
                busy
                or attributes["ApproximateNumberOfMessages"] != "0"
                or attributes["ApproximateNumberOfMessagesNotVisible"] != "0"
            )
        if not busy:
            return
        time.sleep(0.2)


class _Printer:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._last_day = -1

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def progress(self, days: int):
        from nurture_tools.local.demo import SIMULATED_START

        def show(now: float, stats: Any) -> None:
            day = min(days, int((now - SIMULATED_START) / DAY))
            text = (
                f"  day {day:>3}/{days}  visits {stats.sessions:>5}  calls {stats.segment_calls:>6}  "
                f"forms {stats.forms:>4}  emails {stats.emails_seen:>5}  hand-offs {stats.hot:>4}  "
                f"outcomes {sum(stats.outcomes.values()):>4}"
            )
            if self.live:
                print("\r" + text, end="", file=self.stream, flush=True)
            elif day // 5 != self._last_day // 5 or day == days and self._last_day != days:
                print(text, file=self.stream, flush=True)
            self._last_day = day

        return show

    def done(self) -> None:
        if self.live:
            print(file=self.stream, flush=True)
