"""Touch claims under leases in DynamoDB (the store's conditional writes under
moto): a claim in progress is refused while its lease holds and taken over
once it lapsed; a former holder cannot release a claim taken over; a touch
delivered, or recorded as handed to a channel, is never taken over."""

from __future__ import annotations

from nurture import wiring
from nurture.core.deadline import Lease
from nurture.core.delivery import mark_sent
from nurture.core.domain import Touch

AT = 1_780_000_000.0


def _alert(status: str = "sending", at: float = AT) -> Touch:
    return Touch("p1", "form-s1", "responses", "sales-alert", "sales_alert", at, klass="transactional", status=status)


def test_a_claim_is_refused_while_its_lease_holds(deployed):
    store = wiring.get_timeline_store()
    assert store.claim_touch(_alert(), Lease(AT, AT + 32)) is True

    assert store.claim_touch(_alert(), Lease(AT + 20, AT + 52)) is False
    assert store.find_touch("p1", "form-s1", "sales-alert").lease_until == AT + 32


def test_a_lapsed_claim_still_sending_is_taken_over(deployed):
    store = wiring.get_timeline_store()
    store.claim_touch(_alert(), Lease(AT, AT + 32))

    assert store.claim_touch(_alert(), Lease(AT + 60, AT + 92)) is True
    held = store.find_touch("p1", "form-s1", "sales-alert")
    assert (held.status, held.lease_until) == ("sending", AT + 92)


def test_a_sent_touch_is_never_taken_over(deployed):
    store = wiring.get_timeline_store()
    touch = _alert()
    store.claim_touch(touch, Lease(AT, AT + 32))
    mark_sent(store, touch, "sns-1")

    assert store.claim_touch(_alert(), Lease(AT + 3600, AT + 3632)) is False
    assert store.find_touch("p1", "form-s1", "sales-alert").message_id == "sns-1"


def test_a_former_holder_cannot_release_a_claim_taken_over(deployed):
    store = wiring.get_timeline_store()
    stale = _alert()
    store.claim_touch(stale, Lease(AT, AT + 32))
    store.claim_touch(_alert(), Lease(AT + 60, AT + 92))

    store.release_touch(stale)

    assert store.find_touch("p1", "form-s1", "sales-alert").lease_until == AT + 92


def test_the_holder_releases_its_own_claim_and_its_content(deployed):
    store = wiring.get_timeline_store()
    guide = Touch("p1", "mql-p1-1", "mql", "guide", "email", AT, content_id="wp-guide", status="sending")
    store.claim_touch(guide, Lease(AT, AT + 32))

    store.release_touch(guide)

    assert store.touches("p1") == []
    other = Touch("p1", "pricing-p1-1", "pricing", "proof", "email", AT, content_id="wp-guide", status="sending")
    assert store.claim_touch(other, Lease(AT + 1, AT + 33)) is True


def test_records_of_hand_offs_to_a_channel_are_never_taken_over(deployed):
    store = wiring.get_timeline_store()
    store.claim_touch(_alert(status="handed_off"))

    assert store.claim_touch(_alert(), Lease(AT + 86400, AT + 86432)) is False
