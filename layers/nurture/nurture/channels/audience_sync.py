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

from nurture.adapters.aws import SecretsManagerKeys
from nurture.channels.audiences import AudienceSync, MirrorDiff, hashed_identity
from nurture.config.audiences import AudienceDef
from nurture.core.domain import HashedIdentity, Lead, PlatformResult
from nurture.core.ports import AudienceMembers, AudiencePlatform

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


@dataclass(frozen=True)
class Reconciliation:
    """One scheduled reconciliation: per audience and platform, how many hashes
    were added and removed, and the platforms that failed (retried next run)."""

    added: dict[str, int] = field(default_factory=dict)  # "audience/platform" -> count
    removed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # "audience/platform" -> error

    @property
    def total_added(self) -> int:
        return sum(self.added.values())

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())


class AudienceSyncer:
    """Keeps the ad platforms' audiences and the membership table in step.
    Every push is idempotent on the platforms and recorded after it succeeded,
    so the membership table never claims a member a platform was not sent."""

    def __init__(
        self,
        leads: Any,
        audiences: Mapping[str, AudienceDef],
        platforms: Callable[[Any], AudiencePlatform],
        members: AudienceMembers,
        clock: Callable[[], float],
    ) -> None:
        self.leads = leads
        self.audiences = audiences
        self.platforms = platforms
        self.members = members
        self.clock = clock
        self.sync = AudienceSync(audiences, platforms)

    def _lead(self, lead_id: str) -> Lead | None:
        return self.leads.get_leads([lead_id], consistent=True).get(lead_id)

    def hand_off(self, touch: Mapping[str, Any]) -> list[Any]:
        """A timeline's retargeting step: add the lead if it qualifies (raises
        AdPlatformError for the queue to retry). An erased lead's removal,
        queued by the erasure as `{"remove": {lead_id, identities}}`, goes too."""
        if "remove" in touch:
            self.remove_erased(touch["remove"]["lead_id"], touch["remove"]["identities"])
            return []
        lead = self._lead(touch["lead_id"])
        if lead is None:
            return []
        audience_id = touch["audience"]

        def pushed(platform: str, diff: MirrorDiff) -> None:
            self.members.record(audience_id, platform, diff.adds, diff.removes, self.clock())

        _, results = self.sync.hand_off(audience_id, lead, pushed)
        return results

    def on_lead_event(self, detail_type: str, detail: Mapping[str, Any]) -> int:
        """Remove the lead from every audience on every platform when it must
        leave them — its identity now and any other one a platform was sent —
        and from the membership table; returns the number of platform removals."""
        leaving = detail_type in LEAVES_AUDIENCES or (
            detail_type == "lead.stage_changed" and detail.get("to_stage") in LEAVING_STAGES
        )
        lead_id = str(detail.get("lead_id"))
        lead = self._lead(lead_id) if leaving else None
        if lead is None:
            return 0
        return self._remove_everywhere(lead_id, lambda platform: hashed_identity(lead, platform))

    def remove_erased(self, lead_id: str, identities: Mapping[str, Mapping[str, str]]) -> int:
        """Take an erased lead out of every audience on every platform — under
        the hashed identities the erasure kept for the purpose (platform ->
        {email, phone}) and any other one a platform was sent — and out of the
        membership table. Idempotent; raises for the queue to retry."""
        return self._remove_everywhere(
            lead_id, lambda platform: HashedIdentity(**identities[platform]) if platform in identities else None
        )

    def _remove_everywhere(self, lead_id: str, current: Callable[[str], HashedIdentity | None]) -> int:
        """Remove the lead from every audience on every platform under its
        `current(platform)` identity and whatever identity the platform was sent,
        and from the membership table; returns the number of platform removals."""
        places = [(a.id, name) for a in self.audiences.values() for name in a.platforms]
        held = self.members.held(lead_id, places)
        removals = 0
        for audience_id, name in places:
            identities = {current(name), held.get((audience_id, name))} - {None}
            if identities:
                self.platforms(self.audiences[audience_id].platforms[name]).remove(list(identities))
                removals += 1
            if (audience_id, name) in held:
                self.members.record(audience_id, name, {}, [lead_id], self.clock())
        return removals

    def reconcile(self) -> Reconciliation:
        """The scheduled full reconciliation: every audience's recorded members
        are checked against their leads now; anyone who no longer belongs
        (unsubscribed, handed to sales, erased, an event that never arrived) is
        removed and a changed email replaced. Reads the membership partitions
        and those leads only. A platform that fails keeps its snapshot, so the
        next run retries it."""
        result = Reconciliation()
        for audience_id in self.audiences:
            previous = self.members.snapshot(audience_id)
            lead_ids = {lead_id for held in previous.values() for lead_id in held}
            leads = self.leads.get_leads(lead_ids).values() if lead_ids else []
            for platform, outcome in self.sync.mirror(audience_id, previous, leads).items():
                place = f"{audience_id}/{platform}"
                if outcome.error is not None:
                    result.failed[place] = str(outcome.error)
                    continue
                if outcome.diff.empty:
                    continue
                self.members.record(audience_id, platform, outcome.diff.adds, outcome.diff.removes, self.clock())
                result.added[place] = len(outcome.diff.adds)
                result.removed[place] = len(outcome.diff.removes)
        return result
