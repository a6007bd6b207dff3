"""The track use case when a write fails: a poison record fails alone, and a
crash between the lead write and the writes after it leaves nothing that the
redelivery would score twice, lose or orphan."""

from __future__ import annotations

import itertools

import pytest

from nurture.ingest.consumer import Tracker
from nurture.scoring.scores import engagement_at
from nurture.store.repository import event_from_item
from tests.fakes import InMemoryLeadStore
from tests.unit.builders import DAY, ICP_TRAITS, RETENTION, T0, identify, lead_by, page, tracking_events


class PoisonStore(InMemoryLeadStore):
    """Refuses to write any batch holding an event whose id starts with "poison",
    as DynamoDB refuses an item it cannot store: the whole request fails."""

    def write_records(self, events, identities):
        self._refuse_poison(events)
        super().write_records(events, identities)

    def put_events_if_absent(self, events):
        self._refuse_poison(events)
        super().put_events_if_absent(events)

    @staticmethod
    def _refuse_poison(events):
        if any(event.message_id.startswith("poison") for event in events):
            raise RuntimeError("ValidationException: item cannot be stored")


class CrashingStore(InMemoryLeadStore):
    """Fails the next `crashes` writes of events and identities, after the leads were saved."""

    def __init__(self, crashes: int = 1) -> None:
        super().__init__()
        self.crashes = crashes

    def write_records(self, events, identities):
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("the function timed out")
        super().write_records(events, identities)


class FailingSaveStore(InMemoryLeadStore):
    """Fails the next save of the lead that holds `email`."""

    def __init__(self, email: str) -> None:
        super().__init__()
        self.email = email

    def save_lead(self, lead, expected_version):
        if lead.email == self.email:
            self.email = ""
            raise RuntimeError("ProvisionedThroughputExceededException")
        super().save_lead(lead, expected_version)


def _stored_event_ids(store: InMemoryLeadStore) -> set[str]:
    return {sk.split("#", 1)[1] for _, sk in store.items if sk.startswith("EVT#")}


def test_one_poison_record_among_ten_fails_alone(config, publisher):
    # Given a batch of ten records, one holding an event the table refuses
    store = PoisonStore()
    tracker = Tracker(store, publisher, config, RETENTION)
    records = [
        (f"rec-{n}", tracking_events(page("/pricing", user_id=f"u-{n}", message_id=f"ok-{n}"))) for n in range(9)
    ]
    records.insert(4, ("rec-poison", tracking_events(page("/pricing", user_id="u-p", message_id="poison-1"))))

    # When the batch is processed
    result = tracker.process(records, now=T0)

    # Then the nine good records are stored and scored, and only the poison one is reported
    assert result.failed_records == ["rec-poison"]
    assert _stored_event_ids(store) == {f"ok-{n}" for n in range(9)}
    assert all(lead_by(store, "user", f"u-{n}").engagement == 15.0 for n in range(9))


def test_a_crash_between_the_lead_and_its_events_never_scores_twice(config, publisher):
    # Given a record of 50 blog visits over ten weeks (5 count per week: 50 points when applied once)
    calls = [page(f"/blog/{n}", user_id="u-ana", message_id=f"blog-{n}", at=T0 + n * 1.4 * DAY) for n in range(50)]
    now = T0 + 70 * DAY
    clean = InMemoryLeadStore()
    Tracker(clean, publisher, config, RETENTION).process([("rec", tracking_events(*calls, received_at=now))], now)

    # When the first attempt saves the lead and crashes before its events are written, and SQS redelivers
    store = CrashingStore(crashes=1)
    tracker = Tracker(store, publisher, config, RETENTION)
    first = tracker.process([("rec", tracking_events(*calls, received_at=now))], now)
    again = tracker.process([("rec", tracking_events(*calls, received_at=now))], now)

    # Then the redelivery stores every event and scores none of them again
    assert first.failed_records == ["rec"] and again.failed_records == []
    assert (again.applied, again.duplicates) == (0, 50)
    assert _stored_event_ids(store) == _stored_event_ids(clean)
    assert lead_by(store, "user", "u-ana").engagement == pytest.approx(lead_by(clean, "user", "u-ana").engagement)


def test_events_stay_pending_until_a_later_batch_sees_them_stored(config, publisher, store):
    # Given a lead whose first batch was applied and stored
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process([("rec-1", tracking_events(page("/pricing", user_id="u-ana", message_id="p-1")))], T0)
    assert lead_by(store, "user", "u-ana").pending == [[lead_by(store, "user", "u-ana").lead_id, "p-1"]]

    # When its next batch comes
    tracker.process([("rec-2", tracking_events(page("/product/x", user_id="u-ana", message_id="p-2")))], T0 + 1)

    # Then the lead keeps only the newest batch's events as pending
    lead = lead_by(store, "user", "u-ana")
    assert lead.pending == [[lead.lead_id, "p-2"]]


def test_a_stage_move_lost_in_a_crash_is_written_by_the_redelivery(config, publisher):
    # Given an ideal-customer lead crossing to warm, whose first attempt crashes after the lead write
    store = CrashingStore(crashes=1)
    tracker = Tracker(store, publisher, config, RETENTION)
    calls = [
        identify("ana@globex.com", user_id="u-ana", message_id="id-1", **ICP_TRAITS),
        page("/pricing", user_id="u-ana", message_id="p-1"),
        page("/customers/fintech", user_id="u-ana", message_id="c-1"),
    ]
    tracker.process([("rec", tracking_events(*calls))], T0)

    # When SQS redelivers the record
    tracker.process([("rec", tracking_events(*calls))], T0 + 60)

    # Then the history holds the move to warm, and a later batch drops it from the lead
    lead = lead_by(store, "user", "u-ana")
    assert lead.lifecycle == "warm"
    moves = [item for (_, sk), item in store.items.items() if sk.startswith("STAGE#")]
    assert [event_from_item(move).properties["to"] for move in moves] == ["warm"]
    tracker.process([("rec-2", tracking_events(page("/blog/a", user_id="u-ana", message_id="b-1")))], T0 + 120)
    assert lead_by(store, "user", "u-ana").pending_moves == []


def test_identity_mappings_wait_for_their_lead(config, publisher):
    # Given Ana, known by her email, browsing anonymously on a second device
    store = FailingSaveStore("")
    tracker = Tracker(store, publisher, config, RETENTION)
    known = identify("ana@globex.com", anonymous_id="anon-0", message_id="id-0", **ICP_TRAITS)
    tracker.process([("rec-0", tracking_events(known))], T0)
    tracker.process([("rec-1", tracking_events(page("/pricing", anonymous_id="anon-1", message_id="p-1")))], T0)
    visitor = lead_by(store, "anon", "anon-1").lead_id

    # When she identifies on that device, and the first save of her lead fails
    store.email = "ana@globex.com"
    call = identify("ana@globex.com", anonymous_id="anon-1", message_id="id-1", at=T0 + 60)
    first = tracker.process([("rec-2", tracking_events(call, received_at=T0 + 60))], T0 + 60)

    # Then the device still points at its own history, and the redelivery merges it into hers
    assert first.failed_records == ["rec-2"]
    assert lead_by(store, "anon", "anon-1").lead_id == visitor
    assert tracker.process([("rec-2", tracking_events(call, received_at=T0 + 60))], T0 + 60).failed_records == []
    lead = lead_by(store, "email", "ana@globex.com")
    assert lead_by(store, "anon", "anon-1").lead_id == lead.lead_id
    assert lead.aliases == [visitor]
    assert lead.engagement == pytest.approx(15.0)


@pytest.mark.parametrize("order", list(itertools.permutations([0, 3, 8])))
def test_pricing_views_score_the_same_whatever_batch_brings_them_first(config, publisher, store, order):
    # Given pricing views on days 0, 3 and 8, each in its own batch, arriving in `order`
    tracker = Tracker(store, publisher, config, RETENTION)
    for day in order:
        call = page("/pricing", user_id="u-ana", message_id=f"p-{day}", at=T0 + day * DAY)
        tracker.process([(f"rec-{day}", tracking_events(call, received_at=T0 + 9 * DAY))], T0 + 9 * DAY)

    # Then the lead's score is the in-order one
    expected = 15 * 0.5 ** (9 / 30) + 15 * 0.5 ** (1 / 30)
    assert engagement_at(lead_by(store, "user", "u-ana"), T0 + 9 * DAY, config) == pytest.approx(expected)


class CrashOnSecondWriteStore(InMemoryLeadStore):
    """The second write of events fails once, after the first slice was saved and stored."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write_records(self, events, identities):
        self.writes += 1
        if self.writes == 2:
            raise RuntimeError("the function timed out")
        super().write_records(events, identities)


def test_one_leads_many_events_are_saved_in_slices_with_a_bounded_pending_list(config, publisher):
    # Given one record with 250 blog visits of one lead, over ten weeks
    calls = [page(f"/blog/{n}", user_id="u-ana", message_id=f"b-{n}", at=T0 + n * 0.28 * DAY) for n in range(250)]
    now = T0 + 71 * DAY
    clean = InMemoryLeadStore()
    Tracker(clean, publisher, config, RETENTION).process([("rec", tracking_events(*calls, received_at=now))], now)

    # When it is processed with the second slice's write failing, and SQS redelivers it
    store = CrashOnSecondWriteStore()
    tracker = Tracker(store, publisher, config, RETENTION)
    first = tracker.process([("rec", tracking_events(*calls, received_at=now))], now)
    pending_after_crash = len(lead_by(store, "user", "u-ana").pending)
    again = tracker.process([("rec", tracking_events(*calls, received_at=now))], now)

    # Then no lead write ever listed more than one slice, and the end state is the clean run's
    assert first.failed_records == ["rec"] and again.failed_records == []
    assert pending_after_crash == 100
    assert len(lead_by(store, "user", "u-ana").pending) <= 100
    assert _stored_event_ids(store) == _stored_event_ids(clean) == {f"b-{n}" for n in range(250)}
    assert lead_by(store, "user", "u-ana").engagement == pytest.approx(lead_by(clean, "user", "u-ana").engagement)
