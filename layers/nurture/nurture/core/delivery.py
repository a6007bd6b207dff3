"""Delivering once: claim the touch, deliver it, mark it sent, or release the
claim so the caller's retry delivers it."""

from __future__ import annotations

from collections.abc import Callable

from nurture.core.domain import Touch
from nurture.core.ports import TouchClaims


def deliver_once(claims: TouchClaims, claim: Touch, deliver: Callable[[], str]) -> bool:
    """Claim the touch, `deliver` it (returning the channel's message id) and mark it sent.

    False, delivering nothing, when it was claimed before: a redelivered event
    or message never delivers twice. If `deliver` raises, the claim is released
    and the error re-raised, so the caller's retry (queue, rule, schedule, then
    its dead-letter queue) delivers it: at least once, never lost."""
    if not claims.claim_touch(claim):
        return False
    try:
        claim.message_id = deliver()
    except Exception:
        claims.release_touch(claim)
        raise
    claim.status = "sent"
    claims.update_touch(claim)
    return True
