"""A marketing email claims its content for the lead in DynamoDB: another
track cannot send the same piece, a retry of the same touch still can't send
twice, and a released claim frees the piece."""

from __future__ import annotations

from nurture import wiring
from nurture.timeline import Touch


def _guide(enrollment: str, step: str = "guide") -> Touch:
    return Touch("p1", enrollment, enrollment.split("-p1")[0], step, "email", 1_780_000_000.0, content_id="wp-guide")


def test_a_second_track_cannot_claim_the_same_content(deployed):
    store = wiring.get_timeline_store()
    assert store.claim_touch(_guide("mql-revenue-teams-p1-1")) is True
    assert store.claim_touch(_guide("pricing-follow-up-p1-1", "pricing-proof")) is False
    assert [t.track_id for t in store.touches("p1")] == ["mql-revenue-teams"]


def test_the_same_touch_claims_once(deployed):
    store = wiring.get_timeline_store()
    assert store.claim_touch(_guide("mql-revenue-teams-p1-1")) is True
    assert store.claim_touch(_guide("mql-revenue-teams-p1-1")) is False


def test_a_released_claim_frees_the_content_for_another_touch(deployed):
    # Given the guide claimed by one touch whose send SES then rejected
    store = wiring.get_timeline_store()
    first = _guide("mql-revenue-teams-p1-1")
    store.claim_touch(first)
    store.release_touch(first)

    # Then another track may send it
    assert store.claim_touch(_guide("pricing-follow-up-p1-1", "pricing-proof")) is True


def test_transactional_replies_do_not_claim_content(deployed):
    store = wiring.get_timeline_store()
    reply = Touch(
        "p1", "form-1", "responses", "acknowledgement", "email", 1.0, content_id="wp-guide", klass="transactional"
    )
    assert store.claim_touch(reply) is True
    assert store.claim_touch(_guide("mql-revenue-teams-p1-1")) is True
