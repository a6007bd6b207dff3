"""The track use case: store events once, resolve identity, score, move lifecycle.

Guarantees, for a batch of SQS records each holding TrackingEvents:
- An event (by messageId) changes a lead's scores at most once, whatever the
  redeliveries, client resends, concurrent consumers or crashes: a lead write
  is conditional on its version and is the commit point — it lists the events
  it applied as pending until a later batch sees them stored, so a crash before
  they are written leaves a redelivery that stores them without scoring them.
- Each lead is written once per batch (one conditional PutItem); events, stage
  moves and identity mappings go out after it in BatchWriteItem requests of 25,
  the identity mappings only of leads that were saved.
- Nothing is dropped silently, and nothing good shares a bad neighbour's fate:
  a record that fails is retried alone within the invocation, and one that
  still fails is reported as failed so SQS redelivers it (and, after the
  queue's maxReceiveCount, parks it in the DLQ).
- Lifecycle events are written to the lead's outbox in the same write that
  moves the stage, then published; an unpublished outbox is retried on the
  lead's next batch, so publication is at least once.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nurture.config.loader import Config
from nurture.core.domain import (
    ANONYMOUS,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    MACHINE_ENGAGEMENT,
    MAX_LISTED_ALIASES,
    Lead,
    StoredEvent,
    TrackingEvent,
    lead_event,
    lead_id_for,
)
from nurture.core.errors import ConcurrentUpdateError
from nurture.core.ports import LeadEventPublisher, LeadStore
from nurture.core.profile import apply_profile, profile_updates
from nurture.core.rules import all_match
from nurture.sales.outcomes import OUTCOME_KIND, OutcomeEffect, apply_outcome
from nurture.scoring.scores import (
    _add_decaying,
    consume_content,
    current_buying_stage,
    days_in_stage,
    engagement_at,
    event_subject,
    grade_fit,
    lead_context,
    lifecycle_events,
    merge_caps,
    next_lifecycle,
    score_event,
)
from nurture.store.repository import identity_key

logger = logging.getLogger(__name__)

PUT_EVENTS_LIMIT = 10
MAX_ANONYMOUS_IDS = 20
DEDUPE_ALIASES = 10
EVENTS_PER_SAVE = 100
# Timely responses (acknowledgement, sales alert) one lead's write may ask for: a
# person submits a form or two at a time, and each response rides in the outbox.
RESPONSES_PER_SAVE = 5
SHORT_TEXT = 256
SAVE_ATTEMPTS = 5
# Records an instance remembers having stored (about 150 bytes each).
STORED_HERE = 20_000


@dataclass
class TrackResult:
    failed_records: list[str] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    leads_updated: int = 0
    published: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0  # events of erased people, or outcomes for leads that no longer exist

    def add(self, other: TrackResult) -> None:
        self.failed_records += other.failed_records
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.leads_updated += other.leads_updated
        self.suppressed += other.suppressed
        for name, count in other.published.items():
            self.published[name] = self.published.get(name, 0) + count


def digest(message_id: str) -> str:
    return hashlib.blake2b(message_id.encode(), digest_size=6).hexdigest()


def _identity_keys(event: TrackingEvent) -> list[str]:
    """Keys in order of authority: userId, email, then anonymous ids (none for a
    sales outcome: it names its lead)."""
    keys: list[str] = []
    if event.kind == OUTCOME_KIND:
        return keys
    if event.user_id:
        keys.append(identity_key("user", event.user_id))
    if event.email:
        keys.append(identity_key("email", event.email))
    if event.anonymous_id:
        keys.append(identity_key("anon", event.anonymous_id))
    if event.previous_id:
        keys += [identity_key("anon", event.previous_id), identity_key("user", event.previous_id)]
    return keys


@dataclass
class _Resolution:
    lead_of_event: dict[str, str]
    new_identities: dict[str, str]
    merges: dict[str, str]  # anonymous lead -> lead it merges into


def _resolve(events: Sequence[TrackingEvent], known: dict[str, str]) -> _Resolution:
    resolution = _Resolution({}, {}, {})
    for event in events:
        if event.kind == OUTCOME_KIND:
            resolution.lead_of_event[event.message_id] = str(event.properties["lead_id"])
            continue
        keys = _identity_keys(event)
        person_keys = [k for k in keys if not k.startswith("anon#")]
        mapped = [known[k] for k in keys if k in known]
        person_mapped = [known[k] for k in person_keys if k in known]
        if person_mapped:
            target = person_mapped[0]
        elif mapped:
            target = mapped[0]
        else:
            target = lead_id_for(keys[0])
        for key in keys:
            current = known.get(key)
            if current == target:
                continue
            if current is not None and not key.startswith("anon#"):
                continue  # a person key already belongs to another lead: never steal it
            if current is not None and current.startswith("a"):
                resolution.merges[current] = target
            known[key] = target
            resolution.new_identities[key] = target
        resolution.lead_of_event[event.message_id] = target
    return resolution


class Tracker:
    """Applies batches of tracking events to leads.

    Between batches it keeps one thing: which events and stage moves it has
    itself stored (the newest STORED_HERE of each). A stored record stays
    stored, so that memory is never stale; it spares the next batch reading
    whether the events its lead lists as pending were stored, when the same
    instance stored them — the usual case at a website's pace."""

    def __init__(
        self, store: LeadStore, publisher: LeadEventPublisher, config: Config, retention_seconds: float
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.config = config
        self.retention_seconds = retention_seconds
        self._stored_here: dict[tuple[str, str], None] = {}
        self._moves_stored_here: dict[tuple[str, str], None] = {}

    def process(self, records: Sequence[tuple[str, Sequence[TrackingEvent]]], now: float) -> TrackResult:
        """Apply a batch; the records that still fail are retried one by one, so
        a record that cannot be stored (whatever its content) fails alone and
        its neighbours proceed: only it is redelivered, and dead-lettered."""
        result = self._attempt(records, now)
        if len(records) < 2 or not result.failed_records:
            return result
        failed = set(result.failed_records)
        result.failed_records = []
        for record in records:
            if record[0] in failed:
                result.add(self._attempt([record], now))
        result.failed_records = sorted(set(result.failed_records))
        return result

    def _attempt(self, records: Sequence[tuple[str, Sequence[TrackingEvent]]], now: float) -> TrackResult:
        try:
            return self._process(records, now)
        except Exception:
            logger.exception("batch of %d records not applied; retried", len(records))
            return TrackResult(failed_records=[record_id for record_id, _ in records])

    def _process(self, records: Sequence[tuple[str, Sequence[TrackingEvent]]], now: float) -> TrackResult:
        """One attempt. The order of writes makes a crash anywhere safe to redeliver:
        1. each lead, conditionally on its version: the commit point. It lists the
           events it applied as pending, so the redelivery knows them applied;
        2. the events, stage moves and identity mappings of the leads saved
           (never of a lead whose save failed: its visitor keeps resolving to
           where the retry will put it); a later batch, finding them stored,
           drops them from pending;
        3. the outbox published, then cleared."""
        result = TrackResult()
        record_of: dict[str, set[str]] = {}
        unique: dict[str, TrackingEvent] = {}
        for record_id, events in records:
            for event in events:
                record_of.setdefault(event.message_id, set()).add(record_id)
                if event.message_id in unique:
                    result.duplicates += 1
                else:
                    unique[event.message_id] = event
        ordered = sorted(unique.values(), key=lambda e: e.timestamp)

        all_keys = {key for event in ordered for key in _identity_keys(event)}
        person_keys = {key for key in all_keys if not key.startswith("anon#")}
        # One request: who each identity is, whether the person was erased, and,
        # read ahead, the leads whose ids derive from the identities (a visitor's
        # always; a person's when their first identity created the lead) with
        # the batch's events stored under them. Most batches need no other read.
        derived = {key: lead_id_for(key) for key in all_keys}
        ahead = {
            (derived[key], event.message_id)
            for event in ordered
            for key in _identity_keys(event)
            if (derived[key], event.message_id) not in self._stored_here
        }
        known, erased, prefetched, stored_ahead = self.store.lookup_identities_and_tombstones(
            all_keys, person_keys, set(derived.values()), ahead
        )
        ordered = self._drop_erased(ordered, erased, result)
        resolution = _resolve(ordered, known)
        lead_ids = set(resolution.lead_of_event.values()) | set(resolution.merges)
        leads = {lead_id: lead for lead_id, lead in prefetched.items() if lead_id in lead_ids}
        leads.update(self.store.get_leads(lead_ids - set(derived.values())))
        ordered = self._drop_orphan_outcomes(ordered, leads, resolution, result)
        self._follow_merges(leads, resolution)

        merges_into = self._plan_merges(leads, resolution)
        sources_of = {target: set(sources) for target, sources in merges_into.items()}
        events_by_lead: dict[str, list[TrackingEvent]] = {}
        for event in ordered:
            events_by_lead.setdefault(resolution.lead_of_event[event.message_id], []).append(event)
        candidates = {
            (candidate, event.message_id)
            for lead_id, events in events_by_lead.items()
            for candidate in {lead_id, *self._aliases(leads.get(lead_id)), *sources_of.get(lead_id, ())}
            for event in events
        }
        candidates.update((lid, mid) for lead in leads.values() for lid, mid in lead.pending)
        moves = {(str(move[0]), str(move[1])) for lead in leads.values() for move in lead.pending_moves}
        # What was read ahead, or stored by this instance, needs no read.
        stored = (candidates & stored_ahead) | (candidates & self._stored_here.keys())
        stored_moves = moves & self._moves_stored_here.keys()
        unknown = candidates - ahead - stored
        if unknown or moves - stored_moves:
            more, more_moves = self.store.stored_records(unknown, moves - stored_moves)
            stored |= more
            stored_moves |= more_moves

        # A lead's events are applied EVENTS_PER_SAVE at a time, each slice saved
        # and then stored before the next: what a lead write lists as pending
        # stays bounded, however many events one batch brings for one lead.
        saved: dict[str, Lead] = {}
        unsaved: set[str] = set()
        rounds = max([1, *(-(-len(events) // EVENTS_PER_SAVE) for events in events_by_lead.values())])
        for round_ in range(rounds):
            records_out: list[StoredEvent] = []
            unsure: list[StoredEvent] = []  # applied earlier, maybe never stored
            for lead_id in sorted(events_by_lead.keys() | merges_into.keys()):
                all_events = events_by_lead.get(lead_id, [])
                events = all_events[round_ * EVENTS_PER_SAVE : (round_ + 1) * EVENTS_PER_SAVE]
                if lead_id in unsaved or (round_ and not events):
                    continue
                merge_sources = merges_into.get(lead_id, []) if round_ == 0 else []
                try:
                    lead, new_records, maybe_missing = self._apply_and_save(
                        lead_id,
                        leads.get(lead_id),
                        events,
                        merge_sources,
                        leads,
                        (stored, stored_moves),
                        now,
                        result,
                    )
                except Exception:
                    logger.exception("lead %s not saved; its records will be retried", lead_id)
                    unsaved.update([lead_id, *merge_sources])
                    for event in all_events:
                        result.failed_records.extend(record_of[event.message_id])
                    continue
                records_out.extend(new_records)
                unsure.extend(maybe_missing)
                if lead is not None:
                    saved[lead_id] = lead
                    leads[lead_id] = copy.deepcopy(lead)

            identities = (
                {
                    key: lead_id
                    for key, lead_id in resolution.new_identities.items()
                    if lead_id not in unsaved and not _derivable(key, lead_id)
                }
                if round_ == 0
                else {}
            )
            try:
                self.store.write_records(records_out, identities)
                self.store.put_events_if_absent(unsure)
            except Exception:
                logger.exception("events not stored; the whole batch will be retried")
                return TrackResult(
                    failed_records=sorted({r for rs in record_of.values() for r in rs}), duplicates=result.duplicates
                )
            for record in [*records_out, *unsure]:
                pair = (record.lead_id, record.message_id)
                (stored_moves if _is_move(record) else stored).add(pair)
                _remember(self._moves_stored_here if _is_move(record) else self._stored_here, pair)
        self._publish(saved.values(), result)
        result.failed_records = sorted(set(result.failed_records))
        return result

    @staticmethod
    def _drop_erased(events: list[TrackingEvent], erased: set[str], result: TrackResult) -> list[TrackingEvent]:
        """Events naming a person who was erased (by email or user id) are never
        applied: the person is not re-created, so never mailed again."""
        if not erased:
            return events
        kept = [e for e in events if not erased.intersection(_identity_keys(e))]
        result.suppressed += len(events) - len(kept)
        return kept

    @staticmethod
    def _drop_orphan_outcomes(events, leads: dict[str, Lead], resolution: _Resolution, result: TrackResult):
        """An outcome for a lead that no longer exists (erased meanwhile) creates nothing."""
        kept = []
        for event in events:
            if event.kind == OUTCOME_KIND and resolution.lead_of_event[event.message_id] not in leads:
                logger.warning("sales outcome %s names no stored lead; dropped", event.message_id)
                result.suppressed += 1
                continue
            kept.append(event)
        return kept

    @staticmethod
    def _aliases(lead: Lead | None) -> list[str]:
        """The anonymous leads an event of this lead may have been stored under
        before they were merged: the most recent ones, as a redelivery comes
        within the queue's retention of the merge. Bounded, however many
        devices a lead gathers."""
        return lead.aliases[-DEDUPE_ALIASES:] if lead else []

    @staticmethod
    def _plan_merges(leads: dict[str, Lead], resolution: _Resolution) -> dict[str, list[str]]:
        """Which stored anonymous leads fold into which lead, and point every
        event of this batch that resolved to a folded (or brand-new) anonymous
        lead at the surviving lead instead."""

        def survivor(lead_id: str) -> str:
            seen = set()
            while lead_id in resolution.merges and lead_id not in seen:
                seen.add(lead_id)
                lead_id = resolution.merges[lead_id]
            return lead_id

        merges_into: dict[str, list[str]] = {}
        redirect: dict[str, str] = {}
        for source in resolution.merges:
            target = survivor(source)
            if target == source:
                continue
            stored_source = leads.get(source)
            if stored_source is None:
                redirect[source] = target  # created by this batch: nothing stored to fold in
            elif not stored_source.email and not stored_source.merged_into:
                redirect[source] = target
                merges_into.setdefault(target, []).append(source)
        for message_id, lead_id in resolution.lead_of_event.items():
            resolution.lead_of_event[message_id] = redirect.get(lead_id, lead_id)
        for key, lead_id in resolution.new_identities.items():
            resolution.new_identities[key] = redirect.get(lead_id, lead_id)
        return merges_into

    def _follow_merges(self, leads: dict[str, Lead], resolution: _Resolution) -> None:
        """Point events at the lead an anonymous lead was merged into earlier."""
        redirect = {lead.lead_id: lead.merged_into for lead in leads.values() if lead.merged_into}
        if not redirect:
            return
        missing = set(redirect.values()) - leads.keys()
        leads.update(self.store.get_leads(missing))
        for message_id, lead_id in resolution.lead_of_event.items():
            resolution.lead_of_event[message_id] = redirect.get(lead_id, lead_id)
        for key, lead_id in resolution.new_identities.items():
            resolution.new_identities[key] = redirect.get(lead_id, lead_id)

    def _apply_and_save(self, lead_id, lead, events, merge_sources, leads, stored, now, result):
        for attempt in range(SAVE_ATTEMPTS):
            fresh = lead if lead is not None else Lead(lead_id=lead_id, created_at=now)
            expected_version = fresh.version
            working = copy.deepcopy(fresh)
            sources = [copy.deepcopy(leads[s]) for s in merge_sources]
            # A source the lead already lists was folded in by an attempt that
            # stopped before marking it: only the source is written now.
            folded = all(source.lead_id in fresh.aliases for source in sources)
            new_records, maybe_missing, applied, duplicates = self._apply(working, events, sources, stored, now)
            if not applied and folded:
                # Nothing new for the lead: no write. A lead with an unpublished
                # outbox is still returned so its lifecycle events go out now.
                result.duplicates += duplicates
                try:
                    for source in sources:
                        self.store.save_lead(source, source.version)
                except ConcurrentUpdateError:
                    if attempt == SAVE_ATTEMPTS - 1:
                        raise
                    for source_id in merge_sources:
                        leads.update(self.store.get_leads([source_id], consistent=True))
                    continue
                return (working if working.outbox else None), new_records, maybe_missing
            overflow = working.aliases[:-MAX_LISTED_ALIASES]
            if overflow:  # before the save that stops listing them, so erasure always finds them
                self.store.put_aliases(lead_id, overflow)
                del working.aliases[:-MAX_LISTED_ALIASES]
            try:
                self.store.save_lead(working, expected_version)
                for source in sources:
                    self.store.save_lead(source, source.version)
            except ConcurrentUpdateError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                lead = self.store.get_leads([lead_id], consistent=True).get(lead_id)
                for source_id in merge_sources:
                    leads.update(self.store.get_leads([source_id], consistent=True))
                continue
            result.applied += applied
            result.duplicates += duplicates
            result.leads_updated += 1
            return working, new_records, maybe_missing
        raise AssertionError("unreachable")

    def _apply(self, lead: Lead, events, merge_sources, stored_sets, now):
        config = self.config
        stored, stored_moves = stored_sets
        expires_at = int(now + self.retention_seconds)
        records: list[StoredEvent] = []
        maybe_missing: list[StoredEvent] = []
        applied = duplicates = 0
        for source in merge_sources:
            _merge(lead, source, config)
        # What a crash kept from being stored stays pending; what was stored is done.
        lead.pending = [entry for entry in lead.pending if (entry[0], entry[1]) not in stored]
        lead.pending_moves = [move for move in lead.pending_moves if (move[0], move[1]) not in stored_moves]
        records.extend(_stage_move_record(move) for move in lead.pending_moves)
        rewritten = len(records)
        pending = {(lead_id, message_id) for lead_id, message_id in lead.pending}
        triggered: dict[str, TrackingEvent] = {}  # behaviour-triggered track -> the event that triggered it
        responses: list[TrackingEvent] = []  # form submissions that get a timely response
        profile_changed = bool(merge_sources) or lead.version == 0
        silent_since_woken = lead.woken_at > lead.last_seen_at  # a sweep woke it and it has not stirred since
        dedupe_under = [lead.lead_id, *self._aliases(lead), *(source.lead_id for source in merge_sources)]
        for event in events:
            keys = dedupe_under
            already_stored = any((key, event.message_id) in stored for key in keys)
            applied_under = next((key for key in keys if (key, event.message_id) in pending), None)
            if already_stored or applied_under is not None:
                duplicates += 1
                if not already_stored:
                    # Applied by a concurrent consumer (which stores it) or by an
                    # attempt that stopped before storing it: store only if absent.
                    maybe_missing.append(self._record(applied_under, event, [], [], expires_at))
                continue
            applied += 1
            if event.kind == OUTCOME_KIND:
                effect = apply_outcome(lead, event, config)
                records.extend(self._record_outcome(lead, event, effect, now, expires_at))
                lead.pending.append([lead.lead_id, event.message_id])
                records.append(self._record(lead.lead_id, event, [], [], expires_at))
                continue
            profile_changed |= _identify(lead, event, config)
            hits = score_event(lead, event, config)
            content = consume_content(lead, event, config)
            if not event.name.endswith(MACHINE_ENGAGEMENT):  # a scanner's open is not the lead being seen
                lead.last_seen_at = max(lead.last_seen_at, event.timestamp)
            if event.name in (EMAIL_OPENED, EMAIL_CLICKED):
                lead.email_engaged_at = max(lead.email_engaged_at, event.timestamp)
            if event.name in config.goal_events:
                lead.milestones[event.name] = max(lead.milestones.get(event.name, 0.0), event.timestamp)
            for track_id in _behaviour_triggers(event, lead, config):
                triggered.setdefault(track_id, event)
            form = (
                config.forms.get(str(event.properties.get("form_source"))) if event.name == "form_submitted" else None
            )
            if form is not None and form.responds and len(responses) < RESPONSES_PER_SAVE:
                responses.append(event)
            lead.pending.append([lead.lead_id, event.message_id])
            records.append(self._record(lead.lead_id, event, hits, content, expires_at))
        if silent_since_woken:
            self._reactivated(lead, events, now)
        if profile_changed:
            grade_fit(lead, config)
        if applied or merge_sources:
            records.extend(self._move_lifecycle(lead, now, expires_at))
        lead.pending_moves += [_pending_move(record) for record in records[rewritten:] if _is_move(record)]
        if lead.email:
            for event in responses:
                self._respond(lead, event, now)
        if lead.email and lead.consent == "subscribed":
            for track_id, event in triggered.items():
                if self._may_trigger(lead, track_id, now):
                    self._trigger(lead, track_id, event, now)
        return records, maybe_missing, applied, duplicates

    def _may_trigger(self, lead: Lead, track_id: str, now: float) -> bool:
        """Only as often as the track can re-enroll: a lead browsing pricing
        daily raises one trigger per re-entry window, not one per visit."""
        track = next((t for t in self.config.tracks if t.id == track_id), None)
        last = lead.milestones.get(f"trigger:{track_id}")
        if track is None or (
            last is not None and (track.reentry_after_days is None or now - last < track.reentry_after_days * 86400)
        ):
            return False
        lead.milestones[f"trigger:{track_id}"] = now
        return True

    @staticmethod
    def _reactivated(lead: Lead, events: Sequence[TrackingEvent], now: float) -> None:
        """lead.reactivated: the first thing a woken lead does itself after the wake-up
        (machine opens and clicks of scanners and privacy proxies do not count)."""
        stirred = [e for e in events if e.timestamp >= lead.woken_at and not e.name.endswith(MACHINE_ENGAGEMENT)]
        if not stirred or lead.last_seen_at < lead.woken_at:
            return
        first = min(stirred, key=lambda e: e.timestamp)
        event_id = f"{lead.lead_id}-reactivated-{int(lead.woken_at)}"
        woken_at = datetime.fromtimestamp(lead.woken_at, UTC).isoformat()
        lead.outbox.append(
            lead_event(
                "lead.reactivated",
                event_id,
                lead.lead_id,
                now,
                email=lead.email,
                lifecycle=lead.lifecycle,
                event=first.name,
                woken_at=woken_at,
            )
        )

    @staticmethod
    def _respond(lead: Lead, event: TrackingEvent, now: float) -> None:
        """A form that asks for a timely response (acknowledgement, sales alert)."""
        event_id = f"{lead.lead_id}-form-{event.message_id}"
        lead.outbox.append(
            lead_event(
                "lead.form_submitted",
                event_id,
                lead.lead_id,
                now,
                email=lead.email,
                form_source=_short_text(event.properties.get("form_source")),
                form_id=_short_text(event.properties.get("form_id")),
                asset_id=_short_text(event.properties.get("asset_id")),
                message_id=event.message_id,
                submitted_at=datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
            )
        )

    @staticmethod
    def _trigger(lead: Lead, track_id: str, event: TrackingEvent, now: float) -> None:
        event_id = f"{lead.lead_id}-{lead.version + 1}-{track_id}"
        lead.outbox.append(
            lead_event(
                "lead.behaviour_triggered",
                event_id,
                lead.lead_id,
                now,
                email=lead.email,
                track_id=track_id,
                event=event.name,
                message_id=event.message_id,
            )
        )

    @staticmethod
    def _record(lead_id, event: TrackingEvent, hits, content, expires_at) -> StoredEvent:
        properties = dict(event.properties)
        if event.kind == "identify" and event.traits:
            properties = {k: v for k, v in event.traits.items() if isinstance(v, str | int | float)}
        return StoredEvent(
            lead_id,
            event.message_id,
            event.kind,
            event.name,
            event.timestamp,
            event.source,
            properties,
            hits,
            content,
            expires_at,
        )

    def _record_outcome(
        self, lead: Lead, event: TrackingEvent, effect: OutcomeEffect, now: float, expires_at: int
    ) -> list[StoredEvent]:
        """A sales outcome's events, and its lifecycle move (backwards too), with the reason kept."""
        tag = digest(event.message_id)
        version = lead.version + 1
        context = lead_context(lead, round(engagement_at(lead, now, self.config), 2))
        entries = list(effect.events)
        moved = effect.after != effect.before
        if moved:
            move = {
                "from_stage": effect.before,
                "to_stage": effect.after,
                "reason": effect.reason,
                "days_in_stage": days_in_stage(lead, event.timestamp),
            }
            lead.lifecycle, lead.lifecycle_at, lead.lifecycle_reason = effect.after, event.timestamp, effect.reason
            entries.append(("lead.stage_changed", move))
        for n, (detail_type, extra) in enumerate(entries):
            detail = {**context, **{k: v for k, v in extra.items() if v is not None}}
            lead.outbox.append(
                lead_event(detail_type, f"{lead.lead_id}-{version}-{tag}-{n}", lead.lead_id, now, **detail)
            )
        if not moved:
            return []
        move_record = (effect.before, effect.after, effect.reason)
        return [
            StoredEvent.stage_move(
                lead.lead_id, f"{version:06d}-{tag}", event.timestamp, "sales", move_record, expires_at
            )
        ]

    def _move_lifecycle(self, lead: Lead, now: float, expires_at: int) -> list[StoredEvent]:
        before = lead.lifecycle
        after = next_lifecycle(lead, now, self.config)
        if after == before:
            return []
        score = round(engagement_at(lead, now, self.config), 2)
        reason = f"engagement {score} with fit grade {lead.fit_grade}"
        move = {
            "from_stage": before,
            "to_stage": after,
            **lead_context(lead, score),
            "reason": reason,
            "days_in_stage": days_in_stage(lead, now),
        }
        lead.lifecycle, lead.lifecycle_at, lead.lifecycle_reason = after, now, reason
        version = lead.version + 1
        for n, detail_type in enumerate(lifecycle_events(before, after)):
            lead.outbox.append(lead_event(detail_type, f"{lead.lead_id}-{version}-{n}", lead.lead_id, now, **move))
        return [
            StoredEvent.stage_move(lead.lead_id, f"{version:06d}", now, "nurture", (before, after, reason), expires_at)
        ]

    def _publish(self, leads: Iterable[Lead], result: TrackResult) -> None:
        """Publish the outboxes of the batch's leads, packed into requests of up
        to 10 events; a lead's outbox is cleared only once all of it went out."""
        groups: list[list[Lead]] = [[]]
        for lead in (lead for lead in leads if lead.outbox):
            if groups[-1] and sum(len(g.outbox) for g in groups[-1]) + len(lead.outbox) > PUT_EVENTS_LIMIT:
                groups.append([])
            groups[-1].append(lead)
        for group in groups:
            if not group:
                continue
            try:
                self.publisher.publish([entry for lead in group for entry in lead.outbox])
            except Exception:
                logger.exception("lifecycle events of %d leads not published; retried on their next batch", len(group))
                continue
            for lead in group:
                for entry in lead.outbox:
                    result.published[entry["type"]] = result.published.get(entry["type"], 0) + 1
                try:
                    self.store.clear_outbox(lead)
                except Exception:  # published; a later batch or the due sweep publishes it again (at least once)
                    logger.exception("outbox of lead %s published but not cleared", lead.lead_id)


def _behaviour_triggers(event: TrackingEvent, lead: Lead, config: Config) -> list[str]:
    """Tracks whose behaviour trigger this event matches (e.g. a pricing-page view)."""
    triggers = config.behaviour_triggers.get(event.name)
    if not triggers:
        return []
    subject = event_subject(event, lead)
    return [track_id for track_id, conditions, _ in triggers if all_match(conditions, subject, config.lists)]


def _identify(lead: Lead, event: TrackingEvent, config: Config) -> bool:
    """Fold identity and traits from an event into the lead; True if the profile changed."""
    changed = False
    if event.email and lead.email != event.email and (lead.email is None or event.kind == "identify"):
        lead.email = event.email
        changed = True
    if event.user_id and not lead.user_id:
        lead.user_id = event.user_id
    if event.anonymous_id and event.anonymous_id not in lead.anonymous_ids:
        lead.anonymous_ids.append(event.anonymous_id)
        del lead.anonymous_ids[:-MAX_ANONYMOUS_IDS]
    if event.traits and event.kind in ("identify", "group", "track"):
        updates = profile_updates(event.traits)
        if event.kind == "group":
            updates.pop("email", None)
        changed |= apply_profile(lead.profile, updates, config.lists.get("free_mail_domains", frozenset()))
    if lead.email and "domain" not in lead.profile:
        changed |= apply_profile(
            lead.profile, {"email": lead.email}, config.lists.get("free_mail_domains", frozenset())
        )
    if lead.lifecycle == "visitor" and lead.email:
        changed = True
    return changed


def _merge(lead: Lead, source: Lead, config: Config) -> None:
    """Fold an anonymous lead's history into the identified lead, once: a lead
    that already lists the source among its aliases only marks the source."""
    source.merged_into = lead.lead_id
    source.lifecycle = "merged"
    if source.lead_id in lead.aliases:
        source.outbox = []
        return

    lead.engagement, lead.engagement_at = (
        _add_decaying(
            lead.engagement, lead.engagement_at, source.engagement, source.engagement_at, config.half_life_seconds
        )
        if source.engagement_at
        else (lead.engagement, lead.engagement_at)
    )
    merge_caps(lead, source, config)
    for target, incoming in ((lead.buying, source.buying), (lead.interests, source.interests)):
        for key, (weight, at) in incoming.items():
            mine = target.get(key, [0.0, 0.0])
            target[key] = list(_add_decaying(mine[0], mine[1], weight, at, config.buying_half_life_seconds))
    for content_id in source.consumed:
        if content_id not in lead.consumed:
            lead.consumed.append(content_id)
    for key, value in source.profile.items():
        lead.profile.setdefault(key, value)
    for anonymous_id in source.anonymous_ids:
        if anonymous_id not in lead.anonymous_ids:
            lead.anonymous_ids.append(anonymous_id)
    del lead.anonymous_ids[:-MAX_ANONYMOUS_IDS]  # the newest devices; every one keeps its identity item
    lead.pending += source.pending
    lead.pending_moves += source.pending_moves
    source.pending, source.pending_moves = [], []
    lead.aliases = [a for a in [*lead.aliases, source.lead_id, *source.aliases] if a != lead.lead_id]
    lead.created_at = min(lead.created_at or source.created_at, source.created_at or lead.created_at)
    lead.last_seen_at = max(lead.last_seen_at, source.last_seen_at)
    if source.buying:
        lead.buying_stage = current_buying_stage(lead.buying, lead.last_seen_at, config.buying_half_life_seconds)
    source.outbox = []


def _is_move(record: StoredEvent) -> bool:
    return record.kind == "lifecycle"


def _pending_move(record: StoredEvent) -> list[Any]:
    props = record.properties
    return [
        record.lead_id,
        record.message_id,
        record.timestamp,
        record.source,
        props["from"],
        props["to"],
        props["reason"],
        record.expires_at,
    ]


def _stage_move_record(move: list[Any]) -> StoredEvent:
    lead_id, record_id, at, source, before, after, reason, expires_at = move
    return StoredEvent.stage_move(lead_id, record_id, at, source, (before, after, reason), int(expires_at))


def _short_text(value: Any) -> str | None:
    """A form's source, id or asset as the outbox carries it: text of at most
    SHORT_TEXT characters, else nothing (a property may hold any JSON)."""
    return value if isinstance(value, str) and len(value) <= SHORT_TEXT else None


def _remember(stored_here: dict[tuple[str, str], None], pair: tuple[str, str]) -> None:
    """Add to an instance's memory of stored records, forgetting the oldest half when full."""
    stored_here[pair] = None
    if len(stored_here) > STORED_HERE:
        for old in list(stored_here)[: STORED_HERE // 2]:
            del stored_here[old]


def _derivable(key: str, lead_id: str) -> bool:
    """An anonymous id that points at the lead its id derives from needs no
    identity item: the store finds that lead from the id itself."""
    return key.startswith(ANONYMOUS) and lead_id == lead_id_for(key)
