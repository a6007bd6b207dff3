"""Enrollments, touches, content claims and the marketing-send log in the
single table (`DynamoTimelineStore`), all through the PynamoDB models of
`nurture.store.schema`.

The `*_to_item` / `*_from_item` functions give the plain-document form of an
item (attribute name -> value), which the tests' in-memory fakes keep.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PynamoDBException

from nurture.core.deadline import Lease
from nurture.core.domain import Enrollment, Touch
from nurture.core.errors import ConcurrentUpdateError
from nurture.store.schema import (
    ContentClaimItem,
    EnrollmentItem,
    NurtureItem,
    SendLogItem,
    TouchItem,
    bind,
    lead_partition,
)
from nurture.store.values import from_item, to_item


def _condition_failed(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


_ENROLLMENT_FIELDS = tuple(name for name in EnrollmentItem.get_attributes() if name not in NurtureItem.get_attributes())
_TOUCH_FIELDS = tuple(name for name in TouchItem.get_attributes() if name not in NurtureItem.get_attributes())


def enrollment_key(lead_id: str, track_id: str, seq: int) -> dict[str, str]:
    pk, sk = EnrollmentItem.key(lead_id, track_id, seq)
    return {"pk": pk, "sk": sk}


def _enrollment_model(enrollment: Enrollment, version: int | None) -> EnrollmentItem:
    """The enrollment's item, at `version` (None: a new item, which PynamoDB
    saves as version 1 on condition that no version exists)."""
    item = EnrollmentItem(*EnrollmentItem.key(enrollment.lead_id, enrollment.track_id, enrollment.seq))
    for name in _ENROLLMENT_FIELDS:
        value = getattr(enrollment, name)
        if name != "version" and value not in (None, {}, ""):
            setattr(item, name, value)
    if version is not None:
        item.version = version
    return item


def _enrollment(item: EnrollmentItem) -> Enrollment:
    values = {name: getattr(item, name) for name in _ENROLLMENT_FIELDS}
    return Enrollment(**{name: value for name, value in values.items() if value is not None})


def _touch_model(touch: Touch) -> TouchItem:
    item = TouchItem(*TouchItem.key(touch.lead_id, touch.touch_id))
    for name in _TOUCH_FIELDS:
        value = getattr(touch, name)
        if value not in (None, ""):
            setattr(item, name, value)
    return item


def _touch(item: TouchItem) -> Touch:
    values = {name: getattr(item, name) for name in _TOUCH_FIELDS}
    return Touch(**{name: value for name, value in values.items() if value is not None})


def enrollment_to_item(enrollment: Enrollment) -> dict[str, Any]:
    return from_item(_enrollment_model(enrollment, enrollment.version or None).serialize())


def enrollment_from_item(item: dict[str, Any]) -> Enrollment:
    return _enrollment(EnrollmentItem.from_raw_data(to_item(item)))


def touch_to_item(touch: Touch) -> dict[str, Any]:
    return from_item(_touch_model(touch).serialize())


def touch_from_item(item: dict[str, Any]) -> Touch:
    return _touch(TouchItem.from_raw_data(to_item(item)))


SEND_LOG = SendLogItem.SK
_SEND_LOG_KEEP = 50


def may_log_send(sends: list[list[Any]], touch: Any, max_sends: int, window_seconds: float) -> bool:
    if any(entry[1] == touch.touch_id for entry in sends):
        return True  # this touch's own entry, from an earlier attempt
    near = [entry for entry in sends if abs(float(entry[0]) - touch.at) < window_seconds]
    return len(near) < max_sends


def logged_sends(sends: list[list[Any]], touch: Any, window_seconds: float) -> list[list[Any]]:
    """The send log with the touch entered, [time, touch id], only as far back as the cap looks."""
    entries = sorted([*sends, [touch.at, touch.touch_id]], key=lambda entry: float(entry[0]))
    return [entry for entry in entries if float(entry[0]) > touch.at - 2 * window_seconds][-_SEND_LOG_KEEP:]


def send_log_item(touch: Any, log: dict[str, Any], window_seconds: float) -> dict[str, Any]:
    """LEAD#<id> / SENDLOG as a plain item: the lead's recent marketing sends, for the cap."""
    pk, sk = SendLogItem.key(touch.lead_id)
    return {
        "pk": pk,
        "sk": sk,
        "sends": logged_sends(log["sends"], touch, window_seconds),
        "version": log["version"] + 1,
    }


def claims_content(touch: Any) -> bool:
    return touch.channel == "email" and touch.klass == "marketing" and bool(touch.content_id)


def _content_claim(touch: Any) -> ContentClaimItem:
    return ContentClaimItem(*ContentClaimItem.key(touch.lead_id, touch.content_id), touch=touch.touch_id, at=touch.at)


def content_claim_item(touch: Any) -> dict[str, Any]:
    """LEAD#<id> / CONTENT#<content id> as a plain item: the lead was sent this piece, by this touch."""
    return from_item(_content_claim(touch).serialize())


class DynamoTimelineStore:
    """Enrollments and touches beside their lead (same partition), so a lead's
    whole nurture history is one Query. Every write that must happen once is
    conditional: an enrollment is created once, a touch is claimed once."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _models(self) -> None:
        bind(self._client, self._table)

    def enrollments(self, lead_id: str) -> list[Enrollment]:
        self._models()
        found = EnrollmentItem.query(
            lead_partition(lead_id), EnrollmentItem.sk.startswith(EnrollmentItem.PREFIX), consistent_read=True
        )
        return [_enrollment(item) for item in found]

    def get_enrollment(self, lead_id: str, track_id: str, seq: int) -> Enrollment | None:
        self._models()
        try:
            return _enrollment(EnrollmentItem.get(*EnrollmentItem.key(lead_id, track_id, seq), consistent_read=True))
        except EnrollmentItem.DoesNotExist:
            return None

    def create_enrollment(self, enrollment: Enrollment) -> bool:
        """False if this enrollment already exists (a duplicate trigger)."""
        self._models()
        item = _enrollment_model(enrollment, version=None)
        try:
            item.save()
        except PynamoDBException as exc:
            if _condition_failed(exc):
                return False
            raise
        enrollment.version = 1
        return True

    def save_enrollment(self, enrollment: Enrollment, expected_version: int) -> None:
        self._models()
        # saved as expected + 1, on condition that the stored version is the expected one
        item = _enrollment_model(enrollment, version=expected_version)
        try:
            item.save()
        except PynamoDBException as exc:
            if _condition_failed(exc):
                raise ConcurrentUpdateError(f"enrollment {enrollment.enrollment_id} changed concurrently") from exc
            raise
        enrollment.version = expected_version + 1

    def claim_touch(self, touch: Touch, lease: Lease | None = None) -> bool:
        """Record a touch before acting on it; False if enrollment + step was
        already claimed, so a retried or redelivered step never acts twice.

        With a `lease` (a delivery in progress), the touch holds it and the
        claim also succeeds over a touch still being delivered whose lease
        lapsed before `lease.at`: the invocation that took it died mid-way, and
        this retry takes the delivery over. Only a touch being delivered
        carries a lease (nurture.core.delivery drops it when marking the touch
        sent), so a delivered or recorded touch is never taken over. One
        conditional put decides it: of any number of concurrent claimants,
        exactly one wins.

        A marketing email first claims its content for the lead (kept if the
        claim is this touch's own, from an earlier attempt): two tracks deciding
        for one lead at the same moment (a pricing visit that also makes the
        lead warm) cannot both send the same piece. Two conditional puts, not a
        transaction: a crash between them leaves the content claimed by a touch
        its retry will still send."""
        self._models()
        claims = []
        if claims_content(touch):
            claims.append(
                (
                    _content_claim(touch),
                    ContentClaimItem.pk.does_not_exist() | (ContentClaimItem.touch == touch.touch_id),
                )
            )
        condition = TouchItem.pk.does_not_exist()
        if lease is not None:
            touch.lease_until = lease.until
            # Only a touch being delivered carries a lease (marking it sent drops it).
            condition = condition | (TouchItem.lease_until < lease.at)
        claims.append((_touch_model(touch), condition))
        for item, held in claims:
            try:
                item.save(condition=held)
            except PynamoDBException as exc:
                if _condition_failed(exc):
                    return False
                raise
        return True

    def update_touch(self, touch: Touch) -> None:
        self._models()
        _touch_model(touch).save()

    def release_touch(self, touch: Touch) -> None:
        """Forget a claim whose delivery definitely failed, so a retry may
        deliver — only while the touch still holds this claim's lease (a claim
        taken over since is the new holder's)."""
        self._models()
        item = TouchItem(*TouchItem.key(touch.lead_id, touch.touch_id))
        try:
            if touch.lease_until is None:
                item.delete()
            else:
                item.delete(condition=TouchItem.lease_until == touch.lease_until)
        except PynamoDBException as exc:
            if not _condition_failed(exc):
                raise
            return
        if claims_content(touch):
            try:  # only this touch's own claim
                _content_claim(touch).delete(condition=ContentClaimItem.touch == touch.touch_id)
            except PynamoDBException as exc:
                if not _condition_failed(exc):
                    raise

    def touches(self, lead_id: str) -> list[Touch]:
        self._models()
        found = TouchItem.query(
            lead_partition(lead_id), TouchItem.sk.startswith(TouchItem.PREFIX), consistent_read=True
        )
        return [_touch(item) for item in found]

    def _send_log(self, lead_id: str) -> SendLogItem:
        try:
            return SendLogItem.get(*SendLogItem.key(lead_id), consistent_read=True)
        except SendLogItem.DoesNotExist:
            return SendLogItem(*SendLogItem.key(lead_id), sends=[])

    def reserve_marketing_send(self, touch: Touch, max_sends: int, window_seconds: float) -> bool:
        """Enter the touch in the lead's marketing-send log unless `max_sends`
        sends already lie within `window_seconds` of it (either side: a send
        decided a moment earlier may be logged a moment later). An optimistic
        write on one item per lead (its version attribute), retried on a
        concurrent change, so two tracks sending at once cannot both pass the
        cap. Idempotent per touch."""
        self._models()
        for _ in range(8):
            log = self._send_log(touch.lead_id)
            sends = log.sends or []
            if not may_log_send(sends, touch, max_sends, window_seconds):
                return False
            if any(entry[1] == touch.touch_id for entry in sends):
                return True
            log.sends = logged_sends(sends, touch, window_seconds)
            try:
                log.save()
            except PynamoDBException as exc:
                if _condition_failed(exc):
                    continue
                raise
            return True
        raise ConcurrentUpdateError(f"the marketing-send log of lead {touch.lead_id} kept changing")

    def release_marketing_send(self, touch: Touch) -> None:
        """Take a send that definitely did not happen out of the log (best effort)."""
        self._models()
        log = self._send_log(touch.lead_id)
        if log.version is None:
            return
        log.sends = [entry for entry in log.sends or [] if entry[1] != touch.touch_id]
        try:
            log.save()
        except PynamoDBException as exc:
            if not _condition_failed(exc):
                raise

    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Touch | None:
        self._models()
        try:
            return _touch(TouchItem.get(*TouchItem.key(lead_id, f"{enrollment_id}#{step_id}"), consistent_read=True))
        except TouchItem.DoesNotExist:
            return None
