"""The audience membership table: which hashed identity was last sent to which
platform for which lead. It is the `previous` snapshot of mirror mode, so a
reconciliation knows what each platform holds without asking it (the
platforms' APIs cannot list a customer-match audience's members).

Keys (in the leads table):
  AUDIENCE#<audience id> / MEMBER#<platform>#<lead id>   em, ph (SHA-256 hex), at

One partition per audience, so a reconciliation reads what the audiences hold,
never the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from nurture.channels.ad_platforms import HashedIdentity
from nurture.store.repository import batch_get, batch_write, from_item, to_item

Snapshot = dict[str, dict[str, HashedIdentity]]  # platform -> lead id -> identity last sent


class AudienceMembers(Protocol):
    def snapshot(self, audience_id: str) -> Snapshot:
        """Every member of the audience, per platform, as last sent."""

    def held(self, lead_id: str, places: Iterable[tuple[str, str]]) -> dict[tuple[str, str], HashedIdentity]:
        """What each (audience id, platform) holds for the lead, where it holds something."""

    def record(
        self,
        audience_id: str,
        platform: str,
        added: Mapping[str, HashedIdentity],
        removed: Iterable[str],
        now: float,
    ) -> None:
        """Apply a pushed diff: `added` lead ids now hold these identities,
        `removed` lead ids are gone. Idempotent."""


def _key(audience_id: str, platform: str, lead_id: str) -> dict[str, str]:
    return {"pk": f"AUDIENCE#{audience_id}", "sk": f"MEMBER#{platform}#{lead_id}"}


class DynamoAudienceMembers:
    """AudienceMembers in the leads table (Query per audience, BatchWriteItem to the limit)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def snapshot(self, audience_id: str) -> Snapshot:
        members: Snapshot = {}
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :member)",
            "ExpressionAttributeValues": to_item({":pk": f"AUDIENCE#{audience_id}", ":member": "MEMBER#"}),
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**request)
            for raw in response.get("Items", []):
                item = from_item(raw)
                _, platform, lead_id = item["sk"].split("#", 2)
                members.setdefault(platform, {})[lead_id] = HashedIdentity(item.get("em"), item.get("ph"))
            if "LastEvaluatedKey" not in response:
                return members
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def held(self, lead_id: str, places: Iterable[tuple[str, str]]) -> dict[tuple[str, str], HashedIdentity]:
        items = batch_get(self._client, self._table, [_key(a, p, lead_id) for a, p in places], consistent=True)
        found = {}
        for item in items:
            _, platform, _ = item["sk"].split("#", 2)
            found[(item["pk"].split("#", 1)[1], platform)] = HashedIdentity(item.get("em"), item.get("ph"))
        return found

    def record(
        self,
        audience_id: str,
        platform: str,
        added: Mapping[str, HashedIdentity],
        removed: Iterable[str],
        now: float,
    ) -> None:
        requests: dict[tuple[str, str], dict[str, Any]] = {}
        for lead_id in removed:
            key = _key(audience_id, platform, lead_id)
            requests[(key["pk"], key["sk"])] = {"DeleteRequest": {"Key": to_item(key)}}
        for lead_id, identity in added.items():
            key = _key(audience_id, platform, lead_id)
            item = {**key, "at": now, "em": identity.email, "ph": identity.phone}
            item = {name: value for name, value in item.items() if value is not None}
            requests[(key["pk"], key["sk"])] = {"PutRequest": {"Item": to_item(item)}}
        batch_write(self._client, self._table, list(requests.values()))
