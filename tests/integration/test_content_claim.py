"""What a marketing email claims in DynamoDB before it is sent: its content
for the lead (another track cannot send the same piece; a released claim
frees it), and a place in the lead's marketing-send log (the cap holds
whatever the tracks)."""

from __future__ import annotations

from nurture import wiring
from nurture.core.domain import Touch


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


def _email(track: str, at: float, content: str) -> Touch:
    return Touch("p1", f"{track}-p1-1", track, "s", "email", at, content_id=content)


def test_the_send_log_refuses_a_third_send_within_the_window(deployed):
    store, week = wiring.get_timeline_store(), 7 * 86400.0
    assert store.reserve_marketing_send(_email("a", 1_000_000.0, "x"), 2, week) is True
    assert store.reserve_marketing_send(_email("b", 1_000_100.0, "y"), 2, week) is True
    assert store.reserve_marketing_send(_email("c", 1_000_200.0, "z"), 2, week) is False
    assert store.reserve_marketing_send(_email("c", 1_000_000.0 + week, "z"), 2, week) is True


def test_the_send_log_is_idempotent_per_touch_and_releasable(deployed):
    store, week = wiring.get_timeline_store(), 7 * 86400.0
    first, second = _email("a", 1_000_000.0, "x"), _email("b", 1_000_100.0, "y")
    assert store.reserve_marketing_send(first, 2, week) is True
    assert store.reserve_marketing_send(first, 2, week) is True  # a retry of the same touch
    assert store.reserve_marketing_send(second, 2, week) is True
    store.release_marketing_send(second)
    assert store.reserve_marketing_send(_email("c", 1_000_200.0, "z"), 2, week) is True
