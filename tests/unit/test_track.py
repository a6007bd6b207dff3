"""The track use case: events applied once, identities resolved and merged,
lifecycle events published at least once, failures reported per record."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nurture.ingest.consumer import Tracker
from nurture.ingest.segment import parse_request
from tests.fakes import InMemoryLeadStore
from tests.unit.builders import (
    DAY,
    ICP_TRAITS,
    RETENTION,
    T0,
    RecordingPublisher,
    identify,
    lead_by,
    lead_count,
    load_event,
    page,
    track,
    tracking_events,
)

HOUR = 3600.0


def lead_item(store: InMemoryLeadStore, lead_id: str) -> bytes:
    """The stored lead item, byte for byte."""
    return json.dumps(store.items[(f"LEAD#{lead_id}", "PROFILE")], sort_keys=True).encode()


def ana_becomes_warm(at: float = T0) -> list[tuple[str, list]]:
    """An ideal-customer lead earning 20 points: grade A's warm threshold."""
    return [
        (
            "rec-warm",
            tracking_events(
                identify("ana@globex.com", user_id="u-ana", message_id="ana-identify", at=at, **ICP_TRAITS),
                page("/pricing", user_id="u-ana", message_id="ana-pricing", at=at),
                page("/customers/fintech", user_id="u-ana", message_id="ana-case-study", at=at),
                received_at=at,
            ),
        )
    ]


def ana_becomes_hot(at: float = T0 + HOUR) -> list[tuple[str, list]]:
    """40 more points an hour later: over grade A's hot threshold of 55."""
    return [
        (
            "rec-hot",
            tracking_events(
                track("ROI Calculator Completed", user_id="u-ana", message_id="ana-roi", at=at),
                track("Webinar Attended", user_id="u-ana", message_id="ana-webinar", at=at),
                track("Webinar Registered", user_id="u-ana", message_id="ana-registered", at=at),
                received_at=at,
            ),
        )
    ]


class RacingStore(InMemoryLeadStore):
    """Another consumer writes a lead just before our first save of it."""

    def __init__(self) -> None:
        super().__init__()
        self.race_for: dict[str, object] = {}  # lead id -> what the other writer does

    def save_lead(self, lead, expected_version):
        other_writer = self.race_for.pop(lead.lead_id, None)
        if other_writer is not None:
            other_writer()
        super().save_lead(lead, expected_version)

    def bump_version(self, lead_id: str) -> None:
        self.items[(f"LEAD#{lead_id}", "PROFILE")]["v"] += 1


class CountingStore(InMemoryLeadStore):
    def __init__(self) -> None:
        super().__init__()
        self.saves: Counter[str] = Counter()

    def save_lead(self, lead, expected_version):
        self.saves[lead.lead_id] += 1
        super().save_lead(lead, expected_version)


class BrokenStore(InMemoryLeadStore):
    """Saves of one user's lead always fail, as if its item were throttled."""

    def __init__(self, broken_user: str) -> None:
        super().__init__()
        self.broken_user = broken_user

    def save_lead(self, lead, expected_version):
        if lead.user_id == self.broken_user:
            raise RuntimeError("ProvisionedThroughputExceededException")
        super().save_lead(lead, expected_version)


def test_replaying_a_batch_changes_nothing(tracker, store, publisher):
    # Given a batch that made a lead warm
    records = ana_becomes_warm()
    tracker.process(records, now=T0)
    lead_id = lead_by(store, "user", "u-ana").lead_id
    item_before, published_before = lead_item(store, lead_id), list(publisher.entries)

    # When the same batch is delivered again
    result = tracker.process(records, now=T0 + 60)

    # Then the lead is byte-for-byte unchanged, nothing is published and every event is a duplicate
    assert lead_item(store, lead_id) == item_before
    assert publisher.entries == published_before
    assert (result.applied, result.duplicates, result.failed_records) == (0, 3, [])


def test_same_event_in_two_records_counts_once(tracker, store):
    # Given one pricing view delivered inside two different SQS records
    events = tracking_events(page("/pricing", user_id="u-ana", message_id="pricing-1"))

    # When both records arrive in one batch
    result = tracker.process([("rec-1", events), ("rec-2", events)], now=T0)

    # Then the lead scores it once
    assert lead_by(store, "user", "u-ana").engagement == 15.0
    assert (result.applied, result.duplicates, result.failed_records) == (1, 1, [])


def test_anonymous_views_then_identify_make_one_lead(tracker, store):
    # Given a visitor browsing pricing and product pages anonymously
    tracker.process(
        [
            (
                "rec-1",
                tracking_events(
                    page("/pricing", anonymous_id="anon-ana"), page("/product/forecasting", anonymous_id="anon-ana")
                ),
            )
        ],
        now=T0,
    )

    # When the visitor identifies with an email in the same browser
    tracker.process([("rec-2", tracking_events(identify("ana@globex.com", anonymous_id="anon-ana")))], now=T0)

    # Then there is one lead, known by both identities, carrying the anonymous points
    lead = lead_by(store, "email", "ana@globex.com")
    assert lead_count(store) == 1
    assert lead.lead_id == lead_by(store, "anon", "anon-ana").lead_id
    assert lead.email == "ana@globex.com"
    assert lead.engagement == 15.0 + 3.0


def test_anonymous_lead_merges_into_the_lead_owning_the_email(tracker, store):
    # Given lead B known by email, and an anonymous lead A with its own pricing view
    tracker.process([("rec-b", tracking_events(identify("ana@globex.com", user_id="u-ana", message_id="b-1")))], now=T0)
    tracker.process([("rec-a", tracking_events(page("/pricing", anonymous_id="anon-a", message_id="a-1")))], now=T0)
    lead_a = lead_by(store, "anon", "anon-a")

    # When an identify ties A's anonymous id to B's email
    tracker.process(
        [("rec-id", tracking_events(identify("ana@globex.com", anonymous_id="anon-a", message_id="tie-1")))], now=T0
    )

    # Then A is merged into B: B has A's points, and A points at B
    lead_b = lead_by(store, "email", "ana@globex.com")
    merged_a = store.get_leads([lead_a.lead_id])[lead_a.lead_id]
    assert lead_b.lead_id != lead_a.lead_id
    assert lead_b.engagement == 15.0
    assert merged_a.merged_into == lead_b.lead_id
    assert lead_a.lead_id in lead_b.aliases
    assert "anon-a" in lead_b.anonymous_ids


def test_events_after_a_merge_land_on_the_surviving_lead(tracker, store):
    # Given anonymous lead A merged into lead B
    tracker.process([("rec-b", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    tracker.process([("rec-a", tracking_events(page("/pricing", anonymous_id="anon-a")))], now=T0)
    tracker.process([("rec-id", tracking_events(identify("ana@globex.com", anonymous_id="anon-a")))], now=T0)

    # When the browser sends another event with A's anonymous id
    tracker.process(
        [
            (
                "rec-later",
                tracking_events(track("Webinar Attended", anonymous_id="anon-a", at=T0 + HOUR), received_at=T0 + HOUR),
            )
        ],
        now=T0 + HOUR,
    )

    # Then it scores on B, and no new lead appears
    lead_b = lead_by(store, "email", "ana@globex.com")
    assert lead_by(store, "anon", "anon-a").lead_id == lead_b.lead_id
    assert lead_b.engagement == pytest.approx(15.0 * 0.5 ** (1 / (30 * 24)) + 15.0)
    assert lead_count(store) == 2


def test_new_anonymous_views_in_the_identify_batch_reach_the_known_lead(tracker, store):
    # Given lead B known by email
    tracker.process([("rec-b", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)

    # When one batch from a new browser has a pricing view and then an identify with B's email
    tracker.process(
        [
            (
                "rec-new-device",
                tracking_events(
                    page("/pricing", anonymous_id="anon-new", at=T0 + 10),
                    identify("ana@globex.com", anonymous_id="anon-new", at=T0 + 20),
                    received_at=T0 + 20,
                ),
            )
        ],
        now=T0 + 20,
    )

    # Then the pricing points are B's and no orphan lead holds them
    assert lead_by(store, "email", "ana@globex.com").engagement == pytest.approx(15.0, rel=1e-4)
    assert lead_count(store) == 1


def test_anonymous_lead_with_events_in_the_identify_batch_is_merged_once(tracker, store):
    # Given lead B known by email and anonymous lead A with a pricing view (15 points)
    tracker.process([("rec-b", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    tracker.process([("rec-a", tracking_events(page("/pricing", anonymous_id="anon-a")))], now=T0)

    # When one batch has another A page (3 points) and then the identify tying A to B
    tracker.process(
        [
            (
                "rec-tie",
                tracking_events(
                    page("/product/forecasting", anonymous_id="anon-a", at=T0),
                    identify("ana@globex.com", anonymous_id="anon-a", at=T0 + 1),
                ),
            )
        ],
        now=T0 + 1,
    )

    # Then B holds A's 18 points exactly once
    lead_b = lead_by(store, "email", "ana@globex.com")
    assert lead_b.engagement == pytest.approx(18.0, rel=1e-4)
    assert len(lead_b.aliases) == 1


def test_warm_and_hot_are_each_announced_once(tracker, publisher):
    # Given a lead that becomes warm in one batch and hot in a later one
    warm, hot = ana_becomes_warm(), ana_becomes_hot()

    # When both batches are processed, and each is then redelivered
    tracker.process(warm, now=T0)
    tracker.process(hot, now=T0 + HOUR)
    tracker.process(warm, now=T0 + 2 * HOUR)
    tracker.process(hot, now=T0 + 2 * HOUR)

    # Then exactly one became_warm and one became_hot were published
    counts = Counter(publisher.types())
    assert counts["lead.became_warm"] == 1
    assert counts["lead.became_hot"] == 1
    assert counts["lead.stage_changed"] == 2


def test_lifecycle_event_describes_the_move(tracker, publisher, store):
    # Given an ideal-customer lead
    # When it crosses the warm threshold
    tracker.process(ana_becomes_warm(), now=T0)

    # Then the published became_warm names the lead, the stages and the reason
    (became_warm,) = [entry for entry in publisher.entries if entry["type"] == "lead.became_warm"]
    detail = became_warm["detail"]
    assert detail["lead_id"] == lead_by(store, "user", "u-ana").lead_id
    assert (detail["email"], detail["from_stage"], detail["to_stage"]) == ("ana@globex.com", "visitor", "warm")
    assert (detail["fit_grade"], detail["engagement_score"], detail["persona"]) == ("A", 20.0, "marketing_leader")
    assert detail["account_domain"] == "globex.com"
    assert detail["event_id"] == became_warm["id"]


def test_unpublished_outbox_is_published_with_the_leads_next_batch(store, config):
    # Given a lead whose became_warm could not be published (the bus was down)
    publisher = RecordingPublisher(fail_next=1)
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process(ana_becomes_warm(), now=T0)
    assert publisher.entries == []
    assert lead_by(store, "user", "u-ana").outbox

    # When the lead's next batch arrives
    result = tracker.process(
        [
            (
                "rec-next",
                tracking_events(page("/blog/forecast-misses", user_id="u-ana", at=T0 + HOUR), received_at=T0 + HOUR),
            )
        ],
        now=T0 + HOUR,
    )

    # Then the pending events (the pricing view's follow-up trigger too) are
    # published and the outbox is emptied
    assert publisher.types() == ["lead.became_warm", "lead.stage_changed", "lead.behaviour_triggered"]
    assert result.published == {"lead.became_warm": 1, "lead.stage_changed": 1, "lead.behaviour_triggered": 1}
    assert lead_by(store, "user", "u-ana").outbox == []


def test_unpublished_outbox_is_published_even_by_a_redelivery(store, config):
    # Given a lead whose lifecycle events could not be published
    publisher = RecordingPublisher(fail_next=1)
    tracker = Tracker(store, publisher, config, RETENTION)
    records = ana_becomes_warm()
    tracker.process(records, now=T0)

    # When the same records are redelivered (nothing new to apply)
    tracker.process(records, now=T0 + 60)

    # Then the pending events go out now
    assert publisher.types() == ["lead.became_warm", "lead.stage_changed", "lead.behaviour_triggered"]
    assert lead_by(store, "user", "u-ana").outbox == []


def test_concurrent_write_is_retried_and_applies_each_event_once(config, publisher):
    # Given a known lead, and another writer that updates it just before our save
    store = RacingStore()
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process([("rec-1", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    lead_id = lead_by(store, "user", "u-ana").lead_id
    store.race_for[lead_id] = lambda: store.bump_version(lead_id)

    # When a batch with two page views is processed
    result = tracker.process(
        [("rec-2", tracking_events(page("/pricing", user_id="u-ana"), page("/product/tour", user_id="u-ana")))], now=T0
    )

    # Then the save is retried and each event counted once
    assert lead_by(store, "user", "u-ana").engagement == 15.0 + 3.0
    assert (result.applied, result.failed_records) == (2, [])


def test_concurrent_consumer_of_the_same_record_does_not_double_count(config):
    # Given a known lead, and a second consumer that processes the same record concurrently
    store = RacingStore()
    tracker = Tracker(store, RecordingPublisher(), config, RETENTION)
    other_consumer = Tracker(store, RecordingPublisher(), config, RETENTION)
    tracker.process([("rec-1", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    lead_id = lead_by(store, "user", "u-ana").lead_id
    records = [("rec-2", tracking_events(page("/pricing", user_id="u-ana", message_id="pricing-1")))]
    store.race_for[lead_id] = lambda: other_consumer.process(records, now=T0)

    # When this consumer processes the record too
    result = tracker.process(records, now=T0)

    # Then the pricing view is counted once
    assert lead_by(store, "user", "u-ana").engagement == 15.0
    assert result.failed_records == []


def test_concurrent_consumer_keeps_the_awarded_points_on_the_stored_event(config):
    # Given a second consumer that processes the same record just before this one saves
    store = RacingStore()
    tracker = Tracker(store, RecordingPublisher(), config, RETENTION)
    other_consumer = Tracker(store, RecordingPublisher(), config, RETENTION)
    tracker.process([("rec-1", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    lead_id = lead_by(store, "user", "u-ana").lead_id
    records = [("rec-2", tracking_events(page("/pricing", user_id="u-ana", message_id="pricing-1")))]
    store.race_for[lead_id] = lambda: other_consumer.process(records, now=T0)

    # When this consumer processes the record too
    tracker.process(records, now=T0)

    # Then the stored event still shows the points it earned
    (stored,) = [event for event in store.lead_events(lead_id) if event.message_id == "pricing-1"]
    assert stored.points == [["pricing-page", 15.0]]


def test_merge_retried_after_a_conflict_counts_the_anonymous_lead_once(config, publisher):
    # Given lead B known by email, anonymous lead A with a pricing view, and a writer racing on A
    store = RacingStore()
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process([("rec-b", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    tracker.process([("rec-a", tracking_events(page("/pricing", anonymous_id="anon-a")))], now=T0)
    lead_a = lead_by(store, "anon", "anon-a").lead_id
    store.race_for[lead_a] = lambda: store.bump_version(lead_a)

    # When an identify ties A to B's email
    tracker.process([("rec-tie", tracking_events(identify("ana@globex.com", anonymous_id="anon-a")))], now=T0)

    # Then B holds A's 15 points once
    assert lead_by(store, "email", "ana@globex.com").engagement == 15.0


def test_each_lead_is_saved_once_per_batch(config, publisher):
    # Given a batch of 100 page views spread over 10 leads
    store = CountingStore()
    tracker = Tracker(store, publisher, config, RETENTION)
    calls = [page(f"/blog/post-{n}", user_id=f"u-{n % 10}", at=T0 + n) for n in range(100)]

    # When it is processed
    result = tracker.process([("rec-1", tracking_events(*calls, received_at=T0 + 100))], now=T0 + 100)

    # Then each lead was written exactly once
    assert result.applied == 100
    assert len(store.saves) == 10
    assert set(store.saves.values()) == {1}


def test_a_lead_that_cannot_be_saved_fails_only_its_records(config, publisher):
    # Given a store that cannot save Ana's lead
    store = BrokenStore(broken_user="u-ana")
    tracker = Tracker(store, publisher, config, RETENTION)

    # When a batch holds one record for Ana and one for Bob
    result = tracker.process(
        [
            ("rec-ana", tracking_events(page("/pricing", user_id="u-ana"))),
            ("rec-bob", tracking_events(page("/pricing", user_id="u-bob"))),
        ],
        now=T0,
    )

    # Then only Ana's record is reported for redelivery, and Bob's view is applied
    assert result.failed_records == ["rec-ana"]
    assert lead_by(store, "user", "u-bob").engagement == 15.0
    assert "rec-bob" not in result.failed_records


class LosingRecordsStore(InMemoryLeadStore):
    """Leads save, but the BatchWriteItem of events and identities fails."""

    def write_records(self, events, identities):
        raise RuntimeError("InternalServerError")


def test_failed_event_write_fails_the_whole_batch(config, publisher):
    # Given a store that cannot write events
    tracker = Tracker(LosingRecordsStore(), publisher, config, RETENTION)

    # When a batch with two records is processed
    result = tracker.process(
        [
            ("rec-ana", tracking_events(page("/pricing", user_id="u-ana"))),
            ("rec-bob", tracking_events(page("/pricing", user_id="u-bob"))),
        ],
        now=T0,
    )

    # Then every record is reported for redelivery and nothing is published
    assert result.failed_records == ["rec-ana", "rec-bob"]
    assert publisher.entries == []


def test_events_are_stored_with_their_points_and_expiry(tracker, store):
    # Given a lead
    now = T0 + 30

    # When a pricing view is processed
    tracker.process(
        [("rec-1", tracking_events(page("/pricing", user_id="u-ana", message_id="pricing-1"), received_at=now))],
        now=now,
    )

    # Then the stored event carries its points, content and an expiry one retention period away
    lead_id = lead_by(store, "user", "u-ana").lead_id
    (stored,) = [event for event in store.lead_events(lead_id) if event.message_id == "pricing-1"]
    assert stored.points == [["pricing-page", 15.0]]
    assert stored.content == ["pricing-page"]
    assert stored.properties == {"path": "/pricing"}
    assert stored.expires_at == int(now + RETENTION)


def test_identify_builds_the_profile_and_grades_fit(tracker, store):
    # Given a real analytics.js batch: pricing view, identify with traits, webinar registration
    body = json.dumps(load_event("segment_batch.json")).encode()
    events = parse_request(body, None, "website", T0).events

    # When it is processed
    tracker.process([("rec-1", events)], now=T0)

    # Then one lead holds the profile, the fit grade and all the points
    lead = lead_by(store, "email", "ana.lopez@globex.com")
    assert lead_count(store) == 1
    assert lead.profile["company"] == "Globex" and lead.profile["domain"] == "globex.com"
    assert (lead.fit_grade, lead.profile["persona"]) == ("A", "marketing_leader")
    assert lead.engagement == pytest.approx(15.0 + 5.0, rel=1e-4)


def test_engagement_decays_between_batches(tracker, store):
    # Given a pricing view at T0
    tracker.process([("rec-1", tracking_events(page("/pricing", user_id="u-ana")))], now=T0)

    # When a trial starts 30 days later
    later = T0 + 30 * DAY
    tracker.process(
        [("rec-2", tracking_events(track("Trial Started", user_id="u-ana", at=later), received_at=later))], now=later
    )

    # Then the first 15 points have halved
    lead = lead_by(store, "user", "u-ana")
    assert (lead.engagement, lead.engagement_at) == (pytest.approx(7.5 + 30.0), later)


def test_a_pricing_view_by_a_known_lead_triggers_its_follow_up_once_per_batch(store, config, publisher):
    # Given a known, subscribed lead
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process([("rec-1", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)

    # When it views the pricing page twice in one batch
    views = [page("/pricing", user_id="u-ana", at=T0 + 60), page("/pricing/enterprise", user_id="u-ana", at=T0 + 90)]
    tracker.process([("rec-2", tracking_events(*views, received_at=T0 + 120))], now=T0 + 120)

    # Then one behaviour trigger names the pricing follow-up track
    triggered = [entry for entry in publisher.entries if entry["type"] == "lead.behaviour_triggered"]
    assert [entry["detail"]["track_id"] for entry in triggered] == ["pricing-follow-up"]


def test_an_anonymous_pricing_view_triggers_nothing(store, config, publisher):
    # Given an anonymous visitor
    tracker = Tracker(store, publisher, config, RETENTION)

    # When it views the pricing page
    tracker.process([("rec-1", tracking_events(page("/pricing", anonymous_id="anon-1", at=T0)))], now=T0)

    # Then no follow-up is triggered: there is nobody to email yet
    assert [entry for entry in publisher.entries if entry["type"] == "lead.behaviour_triggered"] == []


def test_a_lead_browsing_pricing_daily_triggers_once_per_reentry_window(store, config, publisher):
    # Given a known lead whose pricing view triggered the follow-up track (re-entry after 30 days)
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process([("rec-1", tracking_events(identify("ana@globex.com", user_id="u-ana")))], now=T0)
    tracker.process([("rec-2", tracking_events(page("/pricing", user_id="u-ana", at=T0)))], now=T0)

    # When it views pricing again the next day, and again 31 days later
    day = 86400
    tracker.process(
        [("rec-3", tracking_events(page("/pricing", user_id="u-ana", at=T0 + day), received_at=T0 + day))], now=T0 + day
    )
    later = T0 + 31 * day
    tracker.process(
        [("rec-4", tracking_events(page("/pricing", user_id="u-ana", at=later), received_at=later))], now=later
    )

    # Then the follow-up was triggered twice: first visit and after the window
    triggered = [entry for entry in publisher.entries if entry["type"] == "lead.behaviour_triggered"]
    assert len(triggered) == 2


def test_merging_devices_keeps_the_newest_twenty_anonymous_ids_on_the_lead(tracker, store):
    # Given a lead known by email, then 25 devices each browsing and identifying in turn
    tracker.process([("rec-0", tracking_events(identify("ana@globex.com", message_id="id-0")))], T0)
    for n in range(25):
        device = f"dev-{n}"
        tracker.process([(f"p-{n}", tracking_events(page("/blog/a", anonymous_id=device, message_id=f"p-{n}")))], T0)
        call = identify("ana@globex.com", anonymous_id=device, message_id=f"id-{device}")
        tracker.process([(f"i-{n}", tracking_events(call))], T0)

    # Then the lead lists the newest twenty, and every device still resolves to it
    lead = lead_by(store, "email", "ana@globex.com")
    assert lead.anonymous_ids == [f"dev-{n}" for n in range(5, 25)]
    assert {lead_by(store, "anon", f"dev-{n}").lead_id for n in range(25)} == {lead.lead_id}


def test_an_anonymous_visitor_needs_no_identity_item(tracker, store):
    # Given an anonymous visitor's first page view
    tracker.process([("r-1", tracking_events(page("/pricing", anonymous_id="anon-9", message_id="a-1")))], T0)

    # Then no identity item was written: the lead's id derives from the anonymous id
    assert [key for key in store.items if key[0].startswith("ID#")] == []

    # ... and the next view, and the lookup, find the same lead
    tracker.process([("r-2", tracking_events(page("/product/x", anonymous_id="anon-9", message_id="a-2")))], T0 + 60)
    lead = lead_by(store, "anon", "anon-9")
    assert lead_count(store) == 1
    assert lead.engagement == pytest.approx(18.0)


class CountingReads(InMemoryLeadStore):
    """The in-memory store, counting the consumer's read requests."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def lookup_identities_and_tombstones(self, *args, **kwargs):
        self.reads.append("lookup")
        return super().lookup_identities_and_tombstones(*args, **kwargs)

    def get_leads(self, lead_ids, consistent=False):
        if lead_ids := list(lead_ids):
            self.reads.append("get_leads")
        return super().get_leads(lead_ids, consistent)

    def stored_records(self, events, moves=()):
        self.reads.append("stored_records")
        return super().stored_records(events, moves)


def test_a_browsers_next_event_takes_one_read_and_a_new_instance_checks_what_is_pending(config, publisher):
    # Given a visitor's first page view, then a person identified by user id
    store = CountingReads()
    tracker = Tracker(store, publisher, config, RETENTION)
    tracker.process([("r1", tracking_events(page("/blog/a", anonymous_id="anon-1", message_id="v1")))], T0)
    known = identify("ivy@initech.com", user_id="u-ivy", message_id="i1", anonymous_id="anon-2")
    tracker.process([("r2", tracking_events(known))], T0)

    # When each sends its next event to the same instance
    store.reads.clear()
    tracker.process([("r3", tracking_events(page("/blog/b", anonymous_id="anon-1", message_id="v2", at=T0 + 9)))], T0)
    tracker.process([("r4", tracking_events(page("/pricing", user_id="u-ivy", message_id="v3", at=T0 + 9)))], T0)

    # Then each takes one read: identities, erasure, the lead and whether the event is stored
    assert store.reads == ["lookup", "lookup"]

    # ... and a new instance (which did not store the lead's pending events) reads them too
    fresh = Tracker(store, publisher, config, RETENTION)
    store.reads.clear()
    fresh.process([("r5", tracking_events(page("/blog/c", anonymous_id="anon-1", message_id="v4", at=T0 + 20)))], T0)
    assert store.reads == ["lookup", "stored_records"]

    # ... while a redelivery to it is still known as stored: nothing is applied twice
    views = lead_by(store, "anon", "anon-1").caps
    fresh.process([("r3", tracking_events(page("/blog/b", anonymous_id="anon-1", message_id="v2", at=T0 + 9)))], T0)
    assert lead_by(store, "anon", "anon-1").caps == views
