"""The audience membership: which hashed identity was last sent to which
platform for which lead. It is the `previous` snapshot of mirror mode, so a
reconciliation knows what each platform holds without asking it (the
platforms' APIs cannot list a customer-match audience's members).

Items: `AudienceMemberItem` (AUDIENCE#<audience id> / MEMBER#<platform>#<lead id>),
one partition per audience, so a reconciliation reads what the audiences hold,
never the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nurture.core.domain import HashedIdentity
from nurture.core.ports import Snapshot
from nurture.store.schema import AudienceMemberItem, bind


def _identity(item: AudienceMemberItem) -> HashedIdentity:
    return HashedIdentity(item.email, item.phone)


class DynamoAudienceMembers:
    """AudienceMembers in the leads table (Query per audience, BatchWriteItem to the limit)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def snapshot(self, audience_id: str) -> Snapshot:
        bind(self._client, self._table)
        members: Snapshot = {}
        found = AudienceMemberItem.query(
            AudienceMemberItem.partition(audience_id),
            AudienceMemberItem.sk.startswith(AudienceMemberItem.MEMBER),
            consistent_read=True,
        )
        for item in found:
            _, platform, lead_id = item.place()
            members.setdefault(platform, {})[lead_id] = _identity(item)
        return members

    def held(self, lead_id: str, places: Iterable[tuple[str, str]]) -> dict[tuple[str, str], HashedIdentity]:
        bind(self._client, self._table)
        keys = [AudienceMemberItem.key(audience_id, platform, lead_id) for audience_id, platform in places]
        found = {}
        for item in AudienceMemberItem.batch_get(keys, consistent_read=True):
            audience_id, platform, _ = item.place()
            found[(audience_id, platform)] = _identity(item)
        return found

    def record(
        self,
        audience_id: str,
        platform: str,
        added: Mapping[str, HashedIdentity],
        removed: Iterable[str],
        now: float,
    ) -> None:
        bind(self._client, self._table)
        writes: dict[tuple[str, str], tuple[str, AudienceMemberItem]] = {}  # the last word on each key
        for lead_id in removed:
            key = AudienceMemberItem.key(audience_id, platform, lead_id)
            writes[key] = ("delete", AudienceMemberItem(*key))
        for lead_id, identity in added.items():
            key = AudienceMemberItem.key(audience_id, platform, lead_id)
            writes[key] = ("save", AudienceMemberItem(*key, at=now, email=identity.email, phone=identity.phone))
        with AudienceMemberItem.batch_write() as batch:
            for action, item in writes.values():
                batch.save(item) if action == "save" else batch.delete(item)
