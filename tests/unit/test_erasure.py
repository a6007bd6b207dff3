"""Erasure over the in-memory table: nothing of the person is left but a
hashed tombstone, their timelines stop, audiences are told, and a re-import
of the same address is refused."""

from __future__ import annotations

import hashlib

import pytest

from nurture.core.domain import Enrollment, Touch
from nurture.core.errors import NotFoundError
from nurture.privacy.erasure import Eraser
from nurture.timelines.use_cases import Enroller
from tests.unit.builders import T0, identify, lead_count, page, tracking_events
from tests.unit.sales_builders import HOT_AT, make_hot

ERASED_AT = HOT_AT + 86400.0


class RecordingQueue:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def send(self, message: dict) -> None:
        self.messages.append(message)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def eraser(store, timelines, queue, publisher) -> Eraser:
    return Eraser(store, timelines, queue, publisher)


@pytest.fixture
def ana(tracker, timelines) -> str:
    """A lead with an anonymous history merged in, events, a running enrollment and a touch."""
    tracker.process([("r0", tracking_events(page("/blog/x", anonymous_id="anon-ana", message_id="anon-1")))], T0)
    tracker.process(
        [
            (
                "r1",
                tracking_events(
                    identify("ana@globex.com", user_id="u-ana", anonymous_id="anon-ana", phone="+14155550100")
                ),
            )
        ],
        T0,
    )
    lead_id = make_hot(tracker)
    timelines.create_enrollment(Enrollment("mql-revenue-teams-ana-1", lead_id, "mql-revenue-teams", 1, started_at=T0))
    timelines.claim_touch(Touch(lead_id, "mql-revenue-teams-ana-1", "mql-revenue-teams", "guide", "email", T0))
    return lead_id


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_erasure_leaves_nothing_but_the_hashed_tombstones(eraser, store, ana):
    # Given a lead with a merged anonymous history, events, an enrollment and a touch
    assert len(store.items) > 10

    # When it is erased by email
    eraser.erase("ana@globex.com", ERASED_AT)

    # Then the table holds only tombstones: the SHA-256 of the email and user id, and when
    assert sorted(store.items) == sorted(
        [(f"ERASED#{sha('email#ana@globex.com')}", "TOMBSTONE"), (f"ERASED#{sha('user#u-ana')}", "TOMBSTONE")]
    )
    assert all(set(item) == {"pk", "sk", "erased_at"} for item in store.items.values())


def test_erasure_stops_running_timelines(eraser, store, timelines, executions, publisher, config, ana):
    # Given the lead erased, its enrollments gone with it
    eraser.erase(ana, ERASED_AT)
    (erased,) = [entry["detail"] for entry in publisher.entries if entry["type"] == "lead.erased"]

    # When the enrollment function gets lead.erased
    Enroller(store, timelines, executions, config).on_event("lead.erased", erased, ERASED_AT)

    # Then the running timeline is stopped by name
    assert executions.stopped == {"mql-revenue-teams-ana-1": "lead erased"}


def test_erasure_queues_removal_from_every_audience_platform(eraser, queue, ana):
    # When the lead is erased
    eraser.erase(ana, ERASED_AT)

    # Then one removal is queued with the platforms' hashed identities only
    ((message),) = queue.messages
    identities = message["remove"]["identities"]
    assert set(identities) == {"meta", "google", "linkedin"}
    assert identities["google"] == {"email": sha("ana@globex.com"), "phone": sha("+14155550100")}
    assert "ana@globex.com" not in str(message)


def test_erasure_is_published_without_personal_data(eraser, publisher, ana):
    eraser.erase(ana, ERASED_AT)

    (erased,) = [entry for entry in publisher.entries if entry["type"] == "lead.erased"]
    assert erased["detail"]["lead_id"] == ana
    assert "ana@globex.com" not in str(erased)


def test_an_erased_person_is_not_re_imported(eraser, tracker, store, ana):
    # Given an erased lead
    eraser.erase(ana, ERASED_AT)

    # When their address arrives again (a list import, a form)
    events = tracking_events(identify("ana@globex.com", user_id="crm-import-1", message_id="import-1"))
    tracker.process([("r-import", events)], ERASED_AT + 60)

    # Then no lead is created for them
    assert lead_count(store) == 0


def test_erasing_an_unknown_lead_is_not_found(eraser):
    with pytest.raises(NotFoundError):
        eraser.erase("nobody@globex.com", ERASED_AT)
