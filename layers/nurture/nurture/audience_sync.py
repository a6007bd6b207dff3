"""The audience-sync use cases behind the AudienceSync function: timeline
retargeting hand-offs add the lead to the step's audience on every platform;
a lead that unsubscribes, becomes hot or a customer, or is lost to sales
leaves every nurture audience at once (removing a hash a platform never had is
harmless, so removal needs no record of past pushes)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nurture.ad_platforms import AudiencePlatform, PlatformResult
from nurture.adapters import SecretsManagerKeys
from nurture.audiences import AudienceDef, AudienceSync, hashed_identity
from nurture.domain import Lead

logger = logging.getLogger(__name__)

# Lead events that take a lead out of the nurture audiences.
LEAVES_AUDIENCES = {"lead.unsubscribed", "lead.became_hot"}
LEAVING_STAGES = {"hot", "opportunity", "customer", "disqualified"}


class SecretsManagerCredentials:
    """Ad-platform credentials from one JSON secret ({"meta-ads": {"access_token": ...}, ...}),
    through the same five-minute cache as the API keys; `invalidate` drops it
    after a platform rejected a token."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self._secret = SecretsManagerKeys(client, secret_id)

    def credential(self, name: str) -> Mapping[str, str]:
        document = self._secret.document()
        if name not in document:
            raise KeyError(f"the ad-platform secret has no credential named {name!r}")
        return dict(document[name])

    def invalidate(self, name: str) -> None:
        self._secret.invalidate()


@dataclass
class RecordingPlatform:
    """Stands in for every ad platform on the local stack (no network there):
    logs and keeps what would have been sent."""

    platform: str = "local"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def add(self, identities: Any) -> PlatformResult:
        hashes = [identity.email or identity.phone for identity in identities]
        self.added += hashes
        logger.info("audience add (local): %s", hashes)
        return PlatformResult(requests=1, sent=len(hashes), accepted=len(hashes))

    def remove(self, identities: Any) -> PlatformResult:
        hashes = [identity.email or identity.phone for identity in identities]
        self.removed += hashes
        logger.info("audience remove (local): %s", hashes)
        return PlatformResult(requests=1, sent=len(hashes), accepted=len(hashes))


class AudienceSyncer:
    def __init__(
        self, leads: Any, audiences: Mapping[str, AudienceDef], platforms: Callable[[Any], AudiencePlatform]
    ) -> None:
        self.leads = leads
        self.audiences = audiences
        self.platforms = platforms
        self.sync = AudienceSync(audiences, platforms)

    def _lead(self, lead_id: str) -> Lead | None:
        return self.leads.get_leads([lead_id], consistent=True).get(lead_id)

    def hand_off(self, touch: Mapping[str, Any]) -> list[Any]:
        """A timeline's retargeting step: add the lead if it qualifies (raises
        AdPlatformError for the queue to retry)."""
        lead = self._lead(touch["lead_id"])
        if lead is None:
            return []
        _, results = self.sync.hand_off(touch["audience"], lead)
        return results

    def on_lead_event(self, detail_type: str, detail: Mapping[str, Any]) -> int:
        """Remove the lead from every audience on every platform when it must
        leave them; returns the number of platform removals made."""
        leaving = detail_type in LEAVES_AUDIENCES or (
            detail_type == "lead.stage_changed" and detail.get("to_stage") in LEAVING_STAGES
        )
        lead = self._lead(str(detail.get("lead_id"))) if leaving else None
        if lead is None:
            return 0
        removals = 0
        for audience in self.audiences.values():
            for name, destination in audience.platforms.items():
                identity = hashed_identity(lead, name)
                if identity is not None:
                    self.platforms(destination).remove([identity])
                    removals += 1
        return removals
