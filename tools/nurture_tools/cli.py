"""The `nurture` command. A failure it can explain (no stack running, no
region, an invalid configuration, an endpoint it cannot reach, a table that
is not there) is one line on stderr and exit status 1, not a traceback."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

# What the local stack runs with (nurture_tools.local.runtime): the emulator
# keeps its resources in one region and takes any credentials.
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class CliError(Exception):
    """A failure the command explains in one line; main prints it and exits 1."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nurture")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _is_loopback(endpoint: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(endpoint).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _dynamodb(endpoint: str | None, region: str | None) -> Any:
    """A DynamoDB client. Without an endpoint: AWS as the environment configures
    it. With one (the local stack, DynamoDB Local): the region and credentials the
    environment sets, or else the local stack's, so that no AWS configuration is
    needed; credentials are looked for where a person puts them (variables,
    profiles), never asked of an instance metadata service."""
    import boto3
    import botocore.session
    from botocore.config import Config

    if endpoint is None:
        return boto3.client("dynamodb", region_name=region)
    core = botocore.session.get_session()
    resolver = core.get_component("credential_provider")
    for provider in ("container-role", "iam-role"):
        resolver.remove(provider)
    return boto3.session.Session(botocore_session=core).client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region or core.get_config_variable("region") or LOCAL_REGION,
        # An emulator on this machine answers at once or not at all: no retries.
        config=Config(retries={"total_max_attempts": 1}) if _is_loopback(endpoint) else None,
        **({} if core.get_credentials() else LOCAL_CREDENTIALS),
    )


@contextlib.contextmanager
def _reading(table: str, client: Any, unreachable: str) -> Iterator[None]:
    """DynamoDB's answers that mean the table cannot be read, as CliErrors."""
    from botocore.exceptions import ClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except BotoConnectionError:
        raise CliError(unreachable) from None
    except ClientError as error:
        code, message = error.response["Error"].get("Code"), error.response["Error"].get("Message")
        if code == "ResourceNotFoundException":
            raise CliError(
                f"no table {table} at {client.meta.endpoint_url} (region {client.meta.region_name})"
            ) from None
        raise CliError(f"DynamoDB refused to read {table}: {code}: {message}") from None


def _one_line(error: BaseException) -> str | None:
    """What to print for an error the user can act on; None for a bug (a traceback then)."""
    from nurture.core.errors import ConfigError

    botocore = sys.modules.get("botocore.exceptions")
    if isinstance(error, CliError):
        text = str(error)
    elif isinstance(error, ConfigError):
        text = f"invalid configuration: {error.message}"
    elif botocore is not None and isinstance(error, botocore.NoRegionError):
        text = "no AWS region: pass --region, or set AWS_REGION or a region in your AWS profile"
    elif botocore is not None and isinstance(error, botocore.NoCredentialsError):
        text = "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif isinstance(error, OSError) or (
        botocore is not None and isinstance(error, botocore.BotoCoreError | botocore.ClientError)
    ):
        text = str(error)
    else:
        return None
    return " ".join(text.split())


def _in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` (0 picks a free one: never)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _serve(args: argparse.Namespace) -> int:
    from nurture_tools.local.runtime import LocalKeys, LocalRuntime

    keys, defaults = LocalKeys.from_environment()
    runtime = LocalRuntime(
        aws_port=args.aws_port,
        api_port=args.port,
        keys=keys,
        config_dir=args.config,
        quiet=not args.verbose,
        time_scale=args.time_scale,
    )
    # Checked first: on a port in use, the emulator's server thread exits and
    # leaves the start waiting forever.
    busy = [f"{name} {port}" for name, port in (("--aws-port", args.aws_port), ("--port", args.port)) if _in_use(port)]
    if busy:
        raise CliError(
            f"cannot start the local stack: {' and '.join(busy)} in use (another `nurture serve`?); "
            "choose free ports with --aws-port and --port"
        )
    try:
        runtime.start()
    except BaseException:
        with contextlib.suppress(Exception):
            runtime.stop()
        raise
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may be ignored when started in the background
        signal.signal(signum, lambda *_: stop.set())
    env = runtime.environment
    print(
        f"""Nurture local stack is up.
  API             {runtime.api_url}
  AWS emulator    {runtime.endpoint}   (aws --endpoint-url {runtime.endpoint} ...)
  table           {env["TABLE_NAME"]}
  ingest queue    {env["INGEST_QUEUE_URL"]}
  event bus       {env["EVENT_BUS_NAME"]}   (every event is copied to {runtime.bus_tap_url})
  config          {runtime.config_dir}
  time            {_describe_scale(args.time_scale)}
  write key       {keys.write_key}{"   (development default; set NURTURE_WRITE_KEY)" if defaults else ""}
  admin key       {keys.admin_key}{"   (development default; set NURTURE_ADMIN_KEY)" if defaults else ""}

Try:
  curl -u {keys.write_key}: -H 'Content-Type: application/json' {runtime.api_url}/v1/identify \\
    -d '{{"userId":"u-1","traits":{{"email":"dana@example.com","title":"VP Marketing"}}}}'
  curl -H 'Authorization: Bearer {keys.admin_key}' {runtime.api_url}/v1/leads/dana@example.com

Ctrl-C stops it.""",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        print("\nStopping…", flush=True)
        runtime.stop()
    return 0


def _describe_scale(scale: float) -> str:
    if scale == 1:
        return "real time"
    return f"x{scale:g} (one simulated day every {86400 / scale:.2g} s)"


def _outbox(args: argparse.Namespace) -> int:
    """The email touches the local stack sent, oldest first."""
    from datetime import datetime

    import boto3
    from botocore.config import Config

    from nurture.store.schema import TouchItem, read
    from nurture_tools.export import item_fields

    endpoint = f"http://127.0.0.1:{args.aws_port}"
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        config=Config(retries={"total_max_attempts": 1}),
        **LOCAL_CREDENTIALS,
    )
    touches, request = (
        [],
        {
            "TableName": args.table,
            "FilterExpression": "begins_with(sk, :t)",
            "ExpressionAttributeValues": {":t": {"S": TouchItem.PREFIX}},
        },
    )
    unreachable = f"no local stack at {endpoint}: start one with `make serve` (or pass the --aws-port it runs on)"
    with _reading(args.table, client, unreachable):
        while True:
            response = client.scan(**request)
            touches += [item_fields(read(item, TouchItem), TouchItem) for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    touches.sort(key=lambda t: t["at"])
    if not args.all:
        touches = [t for t in touches if t["channel"] == "email"]
    if args.json:
        import json

        print(json.dumps(touches, indent=2, default=str))
        return 0
    print(f"{'simulated time (UTC)':<20}  {'channel':<11}  {'status':<10}  {'to':<32}  {'track/step':<36}  subject")
    for t in touches:
        when = datetime.utcfromtimestamp(t["at"]).strftime("%Y-%m-%d %H:%M")
        print(
            f"{when:<20}  {t['channel']:<11}  {t['status']:<10}  {t.get('recipient') or t['lead_id']:<32}  "
            f"{t['track_id'] + '/' + t['step_id']:<36}  {t.get('subject') or ''}"
        )
    print(f"{len(touches)} touches")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nurture_tools.local.demo import DemoOptions, run_demo

    options = DemoOptions(
        leads=args.leads,
        days=args.days,
        seed=args.seed,
        seconds_per_day=args.seconds_per_day,
        out=Path(args.out).resolve() if args.out else None,
    )
    result = run_demo(options)
    promises = result.report["promises"] or []
    return 0 if all(p["kept"] for p in promises) else 1


def _report(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from nurture.config.loader import load_config
    from nurture_tools.export import read_table, write_export
    from nurture_tools.promises import check_promises
    from nurture_tools.report import build_report
    from nurture_tools.report_render import render_html, render_text

    policy = load_config(args.config).policy  # before a long scan, not after
    client = _dynamodb(args.endpoint, args.region)
    if args.endpoint is None:
        unreachable = f"cannot reach DynamoDB in {client.meta.region_name}"
    elif _is_loopback(args.endpoint):
        unreachable = f"cannot reach {args.endpoint}: is the local stack running (`make serve`)?"
    else:
        unreachable = f"cannot reach {args.endpoint}"
    with _reading(args.table, client, unreachable):
        records = read_table(client, args.table)
    report = build_report(
        records.leads,
        records.touches,
        records.events,
        source={"kind": "nurture report", "simulated": False, "table": args.table, "endpoint": args.endpoint},
        promises=check_promises(records.leads, records.touches, records.events, policy),
    )
    if args.out:
        folder = Path(args.out)
        write_export(records, folder)
        (folder / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (folder / "report.html").write_text(render_html(report))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_text(report))
        if args.out:
            print(
                f"\nreport.html, report.json, leads.jsonl, touches.jsonl, events.jsonl in {Path(args.out).resolve()}/"
            )
    return 0


def _tag_items(args: argparse.Namespace) -> int:
    from nurture.store.schema import tag_untyped_items

    client = _dynamodb(args.endpoint, args.region)
    with _reading(args.table, client, f"cannot reach {args.endpoint or 'DynamoDB'}"):
        tagged = tag_untyped_items(client, args.table)
    unknown = tagged.pop("unknown", 0)
    done = ", ".join(f"{count} {kind}" for kind, count in sorted(tagged.items())) or "nothing to tag"
    print(f"{args.table}: {done}" + (f"; {unknown} items of no known kind left alone" if unknown else ""))
    return 0


def _cost(args: argparse.Namespace) -> int:
    import json
    import logging

    from nurture_tools.cost import DEFAULT_LEADS, render, run
    from nurture_tools.local.runtime import find_project_dir

    leads = args.leads or list(DEFAULT_LEADS)
    if any(count < 1 for count in leads) or args.sample_leads < 1:
        raise CliError("--leads and --sample-leads must be at least 1")
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    logging.getLogger("nurture_tools.cost").addHandler(progress)
    logging.getLogger("nurture_tools.cost").setLevel(logging.INFO)
    bills, report, prices = run(find_project_dir(), leads, args.sample_leads, args.seed)
    print(json.dumps(report, indent=2) if args.json else render(bills, prices))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nurture", description="Serverless lead nurturing on AWS.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the pipeline on the embedded local AWS stack")
    serve.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    serve.add_argument("--aws-port", type=int, default=4566, help="AWS emulator port (default 4566)")
    serve.add_argument("--config", default=None, help="configuration folder (default ./config)")
    serve.add_argument("--verbose", action="store_true", help="show function logs and metrics")
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run simulated time this many times faster (86400: a day per second); timelines, "
        "score decay, caps and quiet hours all follow it",
    )
    outbox = commands.add_parser("outbox", help="list the email a running local stack sent")
    outbox.add_argument("--aws-port", type=int, default=4566)
    outbox.add_argument("--table", default="nurture-local-LeadsTable")
    outbox.add_argument("--all", action="store_true", help="retargeting and sales-call hand-offs too")
    outbox.add_argument("--json", action="store_true")
    demo = commands.add_parser(
        "demo",
        help="run a simulated B2B market through the pipeline on the local stack, then report",
        description="Builds a synthetic market (accounts, buying committees, personas, time zones, behaviour), "
        "drives it through the real pipeline on the embedded local stack in accelerated time, and writes "
        "report.html, report.json and an export (leads/touches/events.jsonl) to an output folder.",
    )
    demo.add_argument("--leads", type=int, default=200, help="simulated people (default 200)")
    demo.add_argument("--days", type=int, default=45, help="simulated days (default 45)")
    demo.add_argument("--seed", type=int, default=7, help="the same seed builds the same market and behaviour")
    demo.add_argument("--out", default=None, help="output folder (default out/demo-<seed>-<timestamp>/)")
    demo.add_argument(
        "--seconds-per-day", type=float, default=2.5, help="wall-clock seconds per simulated day (default 2.5)"
    )
    report = commands.add_parser("report", help="report on a Nurture table (deployed or local)")
    report.add_argument("--table", required=True, help="the LeadsTable name (stack output or nurture serve's banner)")
    report.add_argument(
        "--endpoint",
        default=None,
        help="DynamoDB endpoint, e.g. http://127.0.0.1:4566 for nurture serve (no AWS configuration needed)",
    )
    report.add_argument(
        "--region",
        default=None,
        help=f"AWS region (default: the environment's; with --endpoint, {LOCAL_REGION} if the environment sets none)",
    )
    report.add_argument("--config", default="config", help="configuration folder (the contact policy to check)")
    report.add_argument("--out", default=None, help="also write report.html, report.json and the export here")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    tag = commands.add_parser(
        "tag-items", help="upgrade a table written before items carried their kind (run once, safe to repeat)"
    )
    tag.add_argument("--table", required=True, help="the LeadsTable name")
    tag.add_argument("--endpoint", default=None, help="DynamoDB endpoint (default: AWS's)")
    tag.add_argument("--region", default=None, help="AWS region (default: the environment's)")
    check = commands.add_parser("check-config", help="validate a configuration folder")
    check.add_argument("folder", nargs="?", default="config")
    cost = commands.add_parser(
        "cost",
        help="the monthly AWS bill at list prices, fixed and per lead, measured by replaying a month of traffic",
        description="Replays a sample of leads' month of browser traffic through the real handlers (on the "
        "embedded emulator), counts every billable request, item, transition, metric series, alarm, secret and "
        "log byte, and prints the bill term by term at the list prices of tools/nurture_tools/prices.json.",
    )
    cost.add_argument(
        "--leads", type=int, action="append", help="active leads to bill for, repeatable (default 10000 and 1000000)"
    )
    cost.add_argument("--sample-leads", type=int, default=200, help="leads replayed per bill (default 200)")
    cost.add_argument("--seed", type=int, default=7, help="the traffic is a pure function of the seed (default 7)")
    cost.add_argument("--json", action="store_true", help="print the bills and what was measured as JSON")
    commands.add_parser(
        "dashboard", help="regenerate infra/dashboards/nurture.json and template.yaml's dashboard and alarms"
    )
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        message = _one_line(error)
        if message is None:
            raise
        print(f"nurture {args.command}: {message}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from pathlib import Path

        args.config = Path(args.config).resolve() if args.config else None
        return _serve(args)
    if args.command == "outbox":
        return _outbox(args)
    if args.command == "dashboard":
        from pathlib import Path

        from nurture_tools.dashboard import write

        changed = write(Path.cwd())
        print("\n".join(f"updated {path}" for path in changed) or "dashboard and alarms already up to date")
        return 0
    if args.command == "demo":
        return _demo(args)
    if args.command == "report":
        return _report(args)
    if args.command == "tag-items":
        return _tag_items(args)
    if args.command == "cost":
        return _cost(args)
    if args.command == "check-config":
        from nurture.config.loader import load_config
        from nurture.core.errors import ConfigError

        try:
            config = load_config(args.folder)
        except ConfigError as error:
            print(f"invalid: {error.message}", file=sys.stderr)
            return 1
        print(
            f"ok: {len(config.segment_sources)} Segment sources, {len(config.forms)} forms, "
            f"{len(config.fit.rules)} fit rules, {len(config.engagement_rules)} behaviour rules, "
            f"{len(config.content)} content tags"
        )
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
