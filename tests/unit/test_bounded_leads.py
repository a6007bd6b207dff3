"""A lead stays bounded however many devices it gathers: 2,000 browsers
identifying as one person still have every event stored, a lead item under
its budget, and a lead view that answers in a bounded number of reads."""

from __future__ import annotations

import json

from nurture.core.domain import MAX_LISTED_ALIASES
from nurture.ingest.consumer import Tracker
from nurture.leads.view import describe_lead
from nurture.privacy.erasure import Eraser
from nurture.store.repository import lead_to_item
from nurture.store.values import to_item
from tests.conftest import PROJECT_DIR
from tests.fakes import InMemoryLeadStore
from tests.unit.builders import (
    DAY,
    ICP_TRAITS,
    RETENTION,
    T0,
    RecordingPublisher,
    identify,
    lead_by,
    page,
    track,
    tracking_events,
)

DEVICES = 2_000
LEAD_ITEM_BUDGET = 16 * 1024  # docs/ARCHITECTURE.md, "The table"


def _merge_devices(tracker: Tracker, count: int) -> None:
    tracker.process([("rec-0", tracking_events(identify("ana@globex.com", user_id="u-ana", message_id="id-0")))], T0)
    for n in range(count):
        device, at = f"device-{n:04d}", T0 + n
        visit = page("/blog/forecasting", anonymous_id=device, message_id=f"visit-{n}", at=at)
        known = identify("ana@globex.com", anonymous_id=device, message_id=f"identify-{n}", at=at)
        tracker.process([(f"v-{n}", tracking_events(visit, received_at=at))], at)
        tracker.process([(f"i-{n}", tracking_events(known, received_at=at))], at)


def test_two_thousand_devices_keep_the_lead_bounded(config):
    # Given one person identifying on 2,000 devices, each after one visit
    store = InMemoryLeadStore()
    tracker = Tracker(store, RecordingPublisher(), config, RETENTION)
    _merge_devices(tracker, DEVICES)

    # Then every visit is stored, and every device resolves to her lead
    lead = lead_by(store, "email", "ana@globex.com")
    visits = {sk for _, sk in store.items if sk.startswith("EVT#visit-")}
    assert len(visits) == DEVICES
    assert lead_by(store, "anon", "device-0000").lead_id == lead.lead_id

    # ... her item lists the newest devices and stays under its budget; the rest are items of their own
    assert len(lead.aliases) == MAX_LISTED_ALIASES
    assert len(json.dumps(lead_to_item(lead)).encode()) < LEAD_ITEM_BUDGET
    assert len(lead.aliases) + len(store.aliases_of(lead.lead_id)) == DEVICES

    # ... and the lead view answers from a bounded number of reads, counting every device
    reads = []
    lead_events = store.lead_events
    store.lead_events = lambda lead_id: reads.append(lead_id) or lead_events(lead_id)
    view = describe_lead(store, config, "ana@globex.com", T0 + DEVICES + DAY)
    assert view["merged_devices"] == {"total": DEVICES, "history_shown": 20}
    assert len(reads) == 21


def test_erasure_finds_devices_the_lead_no_longer_lists(config):
    # Given a person whose 60 devices were merged in: more than the lead item lists
    store = InMemoryLeadStore()
    publisher = RecordingPublisher()
    _merge_devices(Tracker(store, publisher, config, RETENTION), 60)

    # When she is erased
    Eraser(store, _NoTimelines(), _NoAudiences(), publisher).erase("ana@globex.com", T0 + DAY)

    # Then no device's history or identity is left, only tombstones
    left = {pk for pk, _ in store.items if not pk.startswith("ERASED#")}
    assert left == set()


class _NoTimelines:
    def enrollments(self, lead_id):
        return []


class _NoAudiences:
    def send(self, message):
        pass


def test_a_typical_identified_lead_is_one_write_unit(config, monkeypatch):
    # Given a person who identified with a full profile on a browser of the usual
    # shape, read six blog posts, then the pricing page and the ROI calculator
    # (which warms her: a stage move in the same batch, still pending)
    store = InMemoryLeadStore()
    tracker = Tracker(store, RecordingPublisher(), config, RETENTION)
    device = "3f1c9a2e-8d4b-4f6a-9c1e-2b7d5e8a0f13"
    ids = (f"ajs-next-{n:08x}-5f60-4718-92a3-b4c5d6e7f809" for n in range(100))
    known = identify("bo@initech.com", user_id="u-bo", anonymous_id=device, message_id=next(ids), **ICP_TRAITS)
    tracker.process([("r-id", tracking_events(known))], T0)
    for n in range(6):
        at = T0 + n * 600
        visit = page(f"/blog/post-{n}", user_id="u-bo", anonymous_id=device, message_id=next(ids), at=at)
        tracker.process([(f"r-{n}", tracking_events(visit, received_at=at))], at)
    at = T0 + 4000
    pricing = page("/pricing", user_id="u-bo", anonymous_id=device, message_id=next(ids), at=at)
    roi = track("ROI Calculator Completed", user_id="u-bo", anonymous_id=device, message_id=next(ids), at=at)
    tracker.process([("r-roi", tracking_events(pricing, roi, received_at=at))], at)
    lead = lead_by(store, "email", "bo@initech.com")
    assert lead.lifecycle == "warm" and lead.pending and lead.pending_moves

    # Then her item, sized by DynamoDB's rules, is under 1 KB: each save is one write unit
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    from nurture_bench.capacity import item_size

    assert item_size(to_item(lead_to_item(lead))) < 1024
