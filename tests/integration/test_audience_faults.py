"""Audience sync under injected faults: every AWS call and every ad-platform
request of a realistic run fails in turn (before it reaches the service or
platform, and after it succeeded), each trigger retried as the platform does —
SQS redelivers the hand-offs reported failed (and one hand-off twice more),
Lambda retries the asynchronous lead event, the schedule retries the
reconciliation. The end state must be the clean run's: the same members on
every platform, and membership items saying exactly that.

The run: three warm leads handed off to the revenue-teams audience (Meta,
Google, LinkedIn); one unsubscribes and audience sync gets lead.unsubscribed;
another unsubscribes and the event is lost, so the daily reconciliation takes
it out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nurture import wiring
from nurture.channels.audience_sync import AudienceSyncer
from nurture.channels.audiences import sha256_hex
from nurture.config.audiences import load_audiences
from nurture.store.repository import from_item
from tests.conftest import CONFIG_DIR
from tests.fakes import InMemoryCredentials
from tests.faults import MODES, FaultInjector, restore_table, table_items
from tests.integration.conftest import warm_revops_lead
from tests.unit.fake_ad_platforms import direct_opener, revenue_team_platforms

NOW = 1_780_000_000.0
TOKEN = "integration-token"
AUDIENCE = "nurture-revenue-teams"
READS = ("Get", "BatchGet", "Query", "Scan")
LEADS = {"stays": "sam@acme-insure.com", "leaves": "lea@acme-insure.com", "lost": "lou@acme-insure.com"}


class _FaultyOpener:
    """The adapters' HTTP, each request routed through the injector running now."""

    def __init__(self, platform: str, holder: dict[str, FaultInjector | None]) -> None:
        self._opener = direct_opener()
        self._platform = platform
        self._holder = holder

    def open(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        injector = self._holder["injector"]
        if injector is None:
            return self._opener.open(request, *args, **kwargs)
        replies = []

        def send() -> Any:
            replies.append(self._opener.open(request, *args, **kwargs))
            return replies[-1]

        try:
            return injector.outbound(f"http.{self._platform}", send)
        except ConnectionResetError:
            for reply in replies:
                reply.close()
            raise


@pytest.fixture
def platforms():
    with revenue_team_platforms(TOKEN) as fakes:
        yield fakes


@pytest.fixture
def sync(deployed, platforms, monkeypatch):
    """The real function, its syncer pointed at the fake platforms through a faulty network."""
    import audience_sync.app as app

    from nurture.channels.ad_platforms import platform_for

    holder: dict[str, FaultInjector | None] = {"injector": None}
    credentials = InMemoryCredentials(
        {name: {"access_token": TOKEN} for name in ("meta-ads", "google-data-manager", "linkedin-ads")}
    )

    def adapter(destination: Any) -> Any:
        return platform_for(
            destination,
            credentials,
            base_url=platforms[destination.platform].base_url,
            opener=_FaultyOpener(destination.platform, holder),
            sleep=lambda seconds: None,
        )

    audiences = {AUDIENCE: load_audiences(CONFIG_DIR)[AUDIENCE]}
    syncer = AudienceSyncer(wiring.get_store(), audiences, adapter, wiring.get_audience_members(), lambda: NOW)
    monkeypatch.setattr(app, "get_audience_syncer", lambda: syncer)
    return app.handler, holder


def _sqs(handler, records: list[dict[str, Any]]) -> None:
    """SQS: a batch, then the records reported failed again (the whole batch if the function failed)."""
    pending = records
    for _ in range(6):
        try:
            failed = {f["itemIdentifier"] for f in handler({"Records": pending}, None)["batchItemFailures"]}
        except Exception:
            failed = {record["messageId"] for record in pending}
        pending = [record for record in pending if record["messageId"] in failed]
        if not pending:
            return
    pytest.fail(f"hand-offs {sorted(failed)} never succeeded")


def _retried(handler, event: dict[str, Any], attempts: int = 3) -> bool:
    """An asynchronous invocation (the bus, the schedule) retried until it succeeds; False when it never did."""
    for _ in range(attempts):
        try:
            handler(json.loads(json.dumps(event)), None)
            return True
        except Exception:
            continue
    return False


def _items(deployed) -> list[dict[str, Any]]:
    return table_items(deployed.client("dynamodb"), deployed.env["TABLE_NAME"])


def _restore(deployed, snapshot: list[dict[str, Any]]) -> None:
    restore_table(deployed.client("dynamodb"), deployed.env["TABLE_NAME"], snapshot)


def test_every_fault_on_the_audience_paths_ends_in_the_clean_state(deployed, platforms, sync):
    handler, holder = sync
    store = wiring.get_store()
    # Given three warm RevOps leads
    lead_ids = {name: warm_revops_lead(f"u-{name}", email) for name, email in LEADS.items()}
    snapshot = _items(deployed)
    hand_offs = [
        {
            "messageId": f"h-{name}",
            "body": json.dumps({"lead_id": lead_id, "audience": AUDIENCE, "step_id": "retarget-platform"}),
        }
        for name, lead_id in lead_ids.items()
    ]
    unsubscribed = {"detail-type": "lead.unsubscribed", "detail": {"lead_id": lead_ids["leaves"]}}

    def run(injector: FaultInjector) -> dict[str, Any]:
        """Hand-offs (one delivered twice more), an unsubscribe heard, one missed, the reconciliation."""
        holder["injector"] = injector
        with injector.active():
            _sqs(handler, hand_offs)
            _sqs(handler, hand_offs[:1])
        for name in ("leaves", "lost"):  # the consent write is the API's, not under test here
            assert store.set_consent(lead_ids[name], "unsubscribed", NOW)
        with injector.active():
            heard = _retried(handler, unsubscribed)
            reconciled = _retried(handler, {"reconcile": "audiences"})
        holder["injector"] = None
        stored = _items(deployed)
        members = sorted(
            json.dumps(from_item(item), sort_keys=True, default=str)
            for item in stored
            if item["pk"]["S"].startswith("AUDIENCE#")
        )
        state = {
            "platforms": {name: sorted(fake.members) for name, fake in platforms.items()},
            "members": members,
            "settled": (heard, reconciled),
        }
        for fake in platforms.values():
            fake.members.clear()
            fake.calls.clear()
        _restore(deployed, snapshot)
        return state

    # and the clean run's end state and the calls it makes (once warm)
    run(FaultInjector())
    counting = FaultInjector()
    clean = run(counting)
    stays = sha256_hex(LEADS["stays"])
    assert all(
        [member if isinstance(member, str) else member[0] for member in held] == [stays]
        for held in clean["platforms"].values()
    ), clean["platforms"]
    assert len(clean["members"]) == len(platforms) and clean["settled"] == (True, True)
    total = len(counting.calls)

    # When each call in turn fails, before reaching the service or platform, or after succeeding
    tried, differences, missed = 0, [], []
    for mode in MODES:
        for position in range(1, total + 1):
            call = counting.calls[position - 1]
            if mode == "after" and call.split(".")[1].startswith(READS):
                continue
            injector = FaultInjector(fail_at=position, mode=mode)
            state = run(injector)
            if injector.struck is None:
                missed.append((mode, position, call))
                continue
            tried += 1
            for part, value in state.items():
                if value != clean[part]:
                    differences.append((mode, position, injector.struck, part, value))

    # Then every run ends where the clean one did
    requests = sum(1 for call in counting.calls if call.startswith("http."))
    print(f"audience sync: {total} calls ({requests} ad-platform requests), {tried} faults injected")
    writes = sum(1 for call in counting.calls if not call.split(".")[1].startswith(READS))
    assert (tried, missed) == (total + writes, [])
    assert differences == []
