"""The audience-sync use cases over the membership table, against fake
platform servers: hand-offs are recorded, lead events remove whatever a
platform was sent, and the scheduled reconciliation repairs what events missed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nurture.channels.ad_platforms import RetryPolicy
from nurture.channels.audience_sync import AudienceSyncer
from nurture.config.audiences import load_audiences
from nurture.privacy.erasure import Eraser
from tests.conftest import CONFIG_DIR
from tests.fakes import InMemoryAudienceMembers, InMemoryLeadStore, InMemoryTimelineStore
from tests.unit.builders import RecordingPublisher
from tests.unit.fake_ad_platforms import adapters_to, revenue_team_platforms
from tests.unit.test_audiences import lead, sha

TOKEN = "token-current"
AUDIENCE = "nurture-revenue-teams"
NOW = 1_790_000_000.0


@pytest.fixture
def platforms() -> Iterator[dict[str, Any]]:
    with revenue_team_platforms(TOKEN) as fakes:
        yield fakes


@pytest.fixture
def leads() -> InMemoryLeadStore:
    return InMemoryLeadStore()


@pytest.fixture
def members() -> InMemoryAudienceMembers:
    return InMemoryAudienceMembers()


@pytest.fixture
def syncer(platforms, leads, members) -> AudienceSyncer:
    audiences = {AUDIENCE: load_audiences(CONFIG_DIR)[AUDIENCE]}
    return AudienceSyncer(leads, audiences, adapters_to(platforms, TOKEN), members, lambda: NOW)


def _handed_off(syncer: AudienceSyncer, leads: InMemoryLeadStore, *people: Any) -> None:
    for person in people:
        leads.save_lead(person, 0)
        syncer.hand_off({"lead_id": person.lead_id, "audience": AUDIENCE})


def _update(leads: InMemoryLeadStore, lead_id: str, **fields: Any) -> None:
    stored = leads.get_leads([lead_id])[lead_id]
    for name, value in fields.items():
        setattr(stored, name, value)
    leads.save_lead(stored, stored.version)


def test_a_hand_off_is_recorded_per_platform(syncer, leads, members):
    # When a qualifying lead is handed off to the audience
    _handed_off(syncer, leads, lead("ana"))

    # Then the membership table says what each platform was sent
    snapshot = members.snapshot(AUDIENCE)
    assert set(snapshot) == {"meta", "google", "linkedin"}
    assert all(held["ana"].email == sha("ana@example.com") for held in snapshot.values())


def test_reconciliation_removes_a_member_whose_unsubscribe_event_never_arrived(syncer, leads, members, platforms):
    # Given two members on every platform, and Ben unsubscribed with no event reaching audience sync
    _handed_off(syncer, leads, lead("ana"), lead("ben"))
    _update(leads, "ben", consent="unsubscribed")

    # When the scheduled reconciliation runs
    result = syncer.reconcile()

    # Then Ben is gone from every platform and from the membership table; Ana stays
    assert platforms["linkedin"].members == {sha("ana@example.com")}
    assert {row[0] for row in platforms["meta"].members} == {sha("ana@example.com")}
    assert {row[0] for row in platforms["google"].members} == {sha("ana@example.com")}
    assert all(set(held) == {"ana"} for held in members.snapshot(AUDIENCE).values())
    assert result.total_removed == 3 and result.total_added == 0 and not result.failed


def test_reconciliation_removes_a_lead_that_no_longer_exists(syncer, leads, members, platforms):
    # Given a member whose lead was erased from the store
    _handed_off(syncer, leads, lead("ana"))
    del leads.items[("LEAD#ana", "PROFILE")]

    # When the audiences are reconciled
    syncer.reconcile()

    # Then no platform holds its hash any more
    assert platforms["linkedin"].members == set() and platforms["meta"].members == set()
    assert members.snapshot(AUDIENCE) == {"meta": {}, "google": {}, "linkedin": {}}


def test_reconciliation_replaces_a_changed_email(syncer, leads, members, platforms):
    # Given a member who changed its email after the hand-off
    _handed_off(syncer, leads, lead("ana"))
    _update(leads, "ana", email="ana@newco.com")

    # When the audiences are reconciled
    syncer.reconcile()

    # Then the platforms hold the new hash only
    assert platforms["linkedin"].members == {sha("ana@newco.com")}
    assert members.snapshot(AUDIENCE)["linkedin"]["ana"].email == sha("ana@newco.com")


def test_reconciliation_with_nothing_to_change_calls_no_platform(syncer, leads, platforms):
    # Given a member that still belongs
    _handed_off(syncer, leads, lead("ana"))
    calls_before = {name: len(fake.calls) for name, fake in platforms.items()}

    # When the audiences are reconciled
    result = syncer.reconcile()

    # Then no platform was called
    assert {name: len(fake.calls) for name, fake in platforms.items()} == calls_before
    assert result.total_added == result.total_removed == 0


def test_a_failing_platform_keeps_its_members_for_the_next_reconciliation(syncer, leads, members, platforms):
    # Given a member that became a customer, and LinkedIn failing for as long as the adapter retries
    _handed_off(syncer, leads, lead("ana"))
    _update(leads, "ana", lifecycle="customer")
    platforms["linkedin"].fail_next(RetryPolicy().max_attempts, 503)

    # When the audiences are reconciled
    result = syncer.reconcile()

    # Then the others were updated and LinkedIn still counts Ana, so the next run removes her there
    assert list(result.failed) == [f"{AUDIENCE}/linkedin"]
    assert "ana" in members.snapshot(AUDIENCE)["linkedin"]
    assert members.snapshot(AUDIENCE)["meta"] == {}
    syncer.reconcile()
    assert platforms["linkedin"].members == set() and members.snapshot(AUDIENCE)["linkedin"] == {}


def test_leaving_removes_the_identity_a_platform_was_sent_even_after_an_email_change(syncer, leads, platforms):
    # Given a member who changed its email after the hand-off
    _handed_off(syncer, leads, lead("ana"))
    _update(leads, "ana", email="ana@newco.com", consent="unsubscribed")

    # When its unsubscribe reaches audience sync
    syncer.on_lead_event("lead.unsubscribed", {"lead_id": "ana"})

    # Then the hash the platforms hold is removed too
    assert platforms["linkedin"].members == set() and platforms["meta"].members == set()


class QueuedRemovals:
    """The audience queue as the erasure writes to it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


def test_an_erased_lead_leaves_every_platform_and_the_membership_table(syncer, leads, members, platforms):
    # Given a member whose lead is erased (the erasure queues its hashed identities)
    _handed_off(syncer, leads, lead("ana"))
    queue = QueuedRemovals()
    Eraser(leads, InMemoryTimelineStore(leads.items), queue, RecordingPublisher()).erase("ana", NOW)

    # When audience sync consumes the queued removal
    (removal,) = queue.messages
    syncer.hand_off(removal)

    # Then no platform holds its hash, and the membership table forgot it
    assert platforms["linkedin"].members == set()
    assert platforms["meta"].members == set() and platforms["google"].members == set()
    assert members.snapshot(AUDIENCE) == {"meta": {}, "google": {}, "linkedin": {}}
