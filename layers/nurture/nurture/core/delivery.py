"""Delivering once: claim the touch under a lease, deliver it, mark it sent at
once, then publish the event that announces it and mark that too.

The claim is a conditional write: it succeeds when the touch was never
claimed, or when it is still being delivered ("sending": only then does a
touch carry a lease) and its lease has lapsed — the invocation that took it
died mid-way (timeout, crash), since a lease lasts no longer than that
invocation can run (nurture.core.deadline). So:

- no two deliveries of one touch run at once: while a lease holds, the claim
  is refused and the caller is told to come back (DeliveryInProgressError);
- a delivery is never lost: a claim left behind by a crash lapses, and the
  caller's retry (queue, rule, schedule, then its dead-letter queue) takes it
  over and delivers;
- the write that marks a touch sent is retried in place while the
  invocation has time (a failed write would otherwise leave the touch
  "sending", and the retry after the lease deliver it again);
- what cannot be made exactly-once is said here: a delivery the channel
  accepted whose invocation then died before marking it sent (the few
  milliseconds between the channel's answer and the touch's write, a write
  that kept failing until the deadline, or the channel's answer lost on the
  way back) is delivered again by the retry after the lease — at most once
  more per lapsed lease. Channels with an idempotency key (the CRM webhook's
  `id`) dedupe that repeat; SNS and SES have none.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nurture.core.deadline import Deadline, Lease, current
from nurture.core.domain import Touch
from nurture.core.errors import DeliveryInProgressError
from nurture.core.ports import TouchClaims

SENDING = "sending"
SENT = "sent"
# Pauses between attempts at marking a delivered touch sent: the write is
# retried while the invocation has time for it (then the error propagates).
MARK_SENT_PAUSES = (0.05, 0.2, 0.5, 1.0)


def claim_delivery(claims: TouchClaims, touch: Touch, lease: Lease) -> Touch | None:
    """Claim `touch` ("sending") under `lease`. None when this call holds it now;
    otherwise the touch as it was delivered (or recorded) before — or, when no
    such touch exists, `touch` itself, unchanged: its claim was refused for
    what it carries (a marketing email's content, claimed by another touch).

    Raises DeliveryInProgressError while another invocation's lease holds. (A
    touch left "sending" by a claim from before leases existed counts as done,
    as it always did: nobody knows whether it was delivered.)"""
    touch.status = SENDING
    for _ in range(2):
        if claims.claim_touch(touch, lease):
            return None
        held = claims.find_touch(touch.lead_id, touch.enrollment_id, touch.step_id)
        if held is None:
            continue  # released since its delivery failed (claim again), or refused for its content
        if held.status == SENDING and held.lease_until is not None:
            raise DeliveryInProgressError(
                f"touch {touch.touch_id} is being delivered under a lease until {held.lease_until}; retry later"
            )
        return held
    return touch


def mark_sent(
    claims: TouchClaims,
    touch: Touch,
    message_id: str,
    deadline: Deadline | None = None,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Record the channel's message id as soon as the channel answered: the
    shorter this gap, the smaller the window for a repeat (module docstring).
    The write is an idempotent put, retried while the invocation (`deadline`,
    by default the running one's) has time left for it: a touch left
    "sending" by a failed write would be delivered again after its lease."""
    touch.status, touch.message_id, touch.lease_until = SENT, message_id, None  # delivered: nothing to take over
    deadline = deadline or current()
    for delay in (*MARK_SENT_PAUSES, None):
        try:
            claims.update_touch(touch)
            return
        except Exception:
            if delay is None or not deadline.allows_wait(delay):
                raise
            pause(delay)


def deliver_once(
    claims: TouchClaims,
    touch: Touch,
    deliver: Callable[[], str],
    publish: Callable[[Touch], None] | None = None,
    deadline: Deadline | None = None,
) -> bool:
    """Claim the touch, `deliver` it (returning the channel's message id), mark
    it sent, then `publish(touch)` the event that announces it (if any) and
    mark it published.

    True when this call delivered. False, delivering nothing, when the touch
    was delivered before — but if its announcement was not published yet (the
    publish failed and the caller is retrying), it is published now. So a
    failed publish is retried with the work, until it succeeds or the work
    reaches its dead-letter queue; consumers dedupe the event on its id.

    If `deliver` raises, the claim is released and the error re-raised, so the
    caller's retry delivers: at least once, never lost. The lease comes from
    `deadline` (by default the running invocation's)."""
    lease = (deadline or current()).lease()
    delivered = claim_delivery(claims, touch, lease)
    if delivered is not None:
        if publish is not None and delivered.status == SENT and delivered.published_at is None:
            _publish(claims, delivered, publish, lease)
        return False
    try:
        message_id = deliver()
    except Exception:
        claims.release_touch(touch)
        raise
    mark_sent(claims, touch, message_id, deadline)
    if publish is not None:
        _publish(claims, touch, publish, lease)
    return True


def _publish(claims: TouchClaims, touch: Touch, publish: Callable[[Touch], None], lease: Lease) -> None:
    publish(touch)
    touch.published_at = lease.at
    claims.update_touch(touch)
