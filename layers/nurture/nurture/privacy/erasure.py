"""Erasure (DELETE /v1/leads/{lead}): forget a person, keep only a hashed tombstone.

Order matters, so a retry after any failure finishes the job:
1. tombstones (SHA-256 of the email and user id) first, so an event arriving
   meanwhile is refused by the track consumer instead of re-creating the lead;
2. the running timelines noted: lead.erased names their executions and the
   enrollment function stops them (a timeline that wakes first finds no
   enrollment and no lead, and exits without a touch);
3. removal from every ad audience queued (hashed identities, computed now,
   before the profile is gone);
4. identity mappings, events, touches, enrollments deleted;
5. lead.erased published (no personal data in it);
6. the profile last, so a request retried after any failure still finds the lead.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from nurture.channels.audiences import hashed_identity
from nurture.config.audiences import PLATFORMS
from nurture.core.domain import lead_event
from nurture.core.ports import AudienceRemovals, LeadEventPublisher
from nurture.store.lookup import find_lead
from nurture.store.repository import PROFILE, identity_key


class SqsAudienceRemovals:
    """Audience removals on the audience-sync queue (its consumer retries, then dead-letters)."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client, self._url = client, queue_url

    def send(self, message: dict[str, Any]) -> None:
        self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps(message, separators=(",", ":")))


class Eraser:
    def __init__(
        self,
        store: Any,
        timelines: Any,
        audiences: AudienceRemovals,
        publisher: LeadEventPublisher,
    ) -> None:
        self.store = store
        self.timelines = timelines
        self.audiences = audiences
        self.publisher = publisher

    def erase(self, reference: str, now: float) -> dict[str, Any]:
        """Erase the lead `reference` (id or email) and every lead merged into it."""
        lead = find_lead(self.store, reference)
        merged = self.store.get_leads([*lead.aliases, *self.store.aliases_of(lead.lead_id)], consistent=True)
        people = [lead, *merged.values()]
        person_keys = {identity_key("email", p.email) for p in people if p.email}
        person_keys |= {identity_key("user", p.user_id) for p in people if p.user_id}
        identity_keys = person_keys | {identity_key("anon", a) for p in people for a in p.anonymous_ids}

        self.store.put_tombstones(person_keys, now)
        running = sorted(
            enrollment.enrollment_id
            for person in people
            for enrollment in self.timelines.enrollments(person.lead_id)
            if enrollment.status == "active"
        )
        identities = {}
        for platform in PLATFORMS:
            identity = hashed_identity(lead, platform)
            if identity is not None:
                identities[platform] = {k: v for k, v in asdict(identity).items() if v}
        if identities:
            self.audiences.send({"remove": {"lead_id": lead.lead_id, "identities": identities}})

        keys = self.store.identity_item_keys(sorted(identity_keys))
        profiles = []
        for person in people:
            for key in self.store.lead_item_keys(person.lead_id):
                (profiles if key[1] == PROFILE else keys).append(key)
        self.store.delete_items(keys)

        event_id = f"{lead.lead_id}-erased"
        # `executions`: the timelines to stop, named after their enrollments
        erased = lead_event("lead.erased", event_id, lead.lead_id, now, merged_leads=sorted(merged), executions=running)
        self.publisher.publish([erased])
        self.store.delete_items(profiles)
        return {
            "lead_id": lead.lead_id,
            "items_deleted": len(keys) + len(profiles),
            "timelines_stopping": len(running),
            "audience_removals_queued": sorted(identities),
        }
