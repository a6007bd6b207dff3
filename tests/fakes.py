"""In-memory stand-ins for the store, the audience membership table and the
ad-platform credentials: what the unit tests and the CPU benchmark run the use
cases against. They keep the real implementations' contracts (conditional
writes, versions, claims), not their I/O."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from nurture.core.deadline import Deadline, running
from nurture.core.domain import ANONYMOUS, CONSENTS, HashedIdentity, Lead, StoredEvent, lead_id_for
from nurture.core.errors import ConcurrentUpdateError
from nurture.core.ports import Snapshot
from nurture.store.repository import (
    PROFILE,
    DueFunction,
    due_bound,
    event_from_item,
    event_key,
    event_to_item,
    identity_item_key,
    lead_from_item,
    lead_of_partition,
    lead_to_item,
    tombstone_key,
)
from nurture.store.timelines import (
    SEND_LOG,
    claims_content,
    content_claim_item,
    enrollment_from_item,
    enrollment_key,
    enrollment_to_item,
    may_log_send,
    send_log_item,
    touch_from_item,
    touch_to_item,
)


class InMemoryLeadStore:
    """The LeadStore contract in memory, for unit tests and the benchmark's baseline."""

    def __init__(self, due: DueFunction | None = None) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self._due = due
        self.sweep_reads = {"capacity_units": 0.0, "index_items": 0, "leads": 0}

    def lookup_identities(self, keys: Iterable[str]) -> dict[str, str]:
        return self.lookup_identities_and_tombstones(keys, ())[0]

    def get_leads(self, lead_ids: Iterable[str], consistent: bool = False) -> dict[str, Lead]:
        found = {}
        for lead_id in lead_ids:
            item = self.items.get((f"LEAD#{lead_id}", PROFILE))
            if item is not None:
                found[lead_id] = lead_from_item(json.loads(json.dumps(item)))
        return found

    def stored_records(
        self, events: Iterable[tuple[str, str]], moves: Iterable[tuple[str, str]] = ()
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        return (
            {(lid, mid) for lid, mid in events if event_key(lid, mid) in self.items},
            {(lid, mid) for lid, mid in moves if event_key(lid, mid, lifecycle=True) in self.items},
        )

    def save_lead(self, lead: Lead, expected_version: int) -> None:
        current = self.items.get((f"LEAD#{lead.lead_id}", PROFILE))
        if (current or {}).get("v", 0) != expected_version:
            raise ConcurrentUpdateError(f"lead {lead.lead_id} changed concurrently")
        lead.version = expected_version + 1
        self.items[(f"LEAD#{lead.lead_id}", PROFILE)] = json.loads(json.dumps(lead_to_item(lead, self._due)))

    def write_records(self, events: Sequence[StoredEvent], identities: dict[str, str]) -> None:
        for event in events:
            item = event_to_item(event)
            self.items[(item["pk"], item["sk"])] = item
        for key, lead_id in identities.items():
            self.items[(f"ID#{key}", "ID")] = {"pk": f"ID#{key}", "sk": "ID", "lid": lead_id}

    def put_events_if_absent(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            item = event_to_item(event)
            self.items.setdefault((item["pk"], item["sk"]), item)

    def put_aliases(self, lead_id: str, aliases: Sequence[str]) -> None:
        for alias in aliases:
            self.items[(f"LEAD#{lead_id}", f"ALIAS#{alias}")] = {"pk": f"LEAD#{lead_id}", "sk": f"ALIAS#{alias}"}

    def aliases_of(self, lead_id: str) -> list[str]:
        return [sk[len("ALIAS#") :] for pk, sk in self.items if pk == f"LEAD#{lead_id}" and sk.startswith("ALIAS#")]

    def clear_outbox(self, lead: Lead) -> None:
        item = self.items.get((f"LEAD#{lead.lead_id}", PROFILE))
        if item is not None and item.get("v") == lead.version:
            item.pop("ob", None)
            if "gdue" in item:
                item["gsi2sk"] = item["gdue"]
            else:
                item.pop("gsi2pk", None)
                item.pop("gsi2sk", None)

    def set_consent(self, lead_id: str, consent: str, now: float) -> bool:
        item = self.items.get((f"LEAD#{lead_id}", PROFILE))
        if item is None:
            return False
        if "cs" in item and item["cs"] in CONSENTS[CONSENTS.index(consent) :]:
            return True  # already at least as strict
        item.update(cs=consent, csat=now, v=item.get("v", 0) + 1)
        if consent != "subscribed":
            for name in ("gsi2pk", "gsi2sk", "gdue"):
                item.pop(name, None)
        return True

    def set_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> bool:
        item = self.items.get((f"LEAD#{lead_id}", PROFILE))
        if item is None:
            return False
        item.update(pref=dict(preferences), prefat=now, v=item.get("v", 0) + 1)
        return True

    def increment_transient_bounces(
        self, lead_id: str, message_id: str, bounced_at: float, window_seconds: float
    ) -> int:
        item = self.items.setdefault((f"LEAD#{lead_id}", "SOFTBOUNCE"), {"tb": {}})
        item["tb"].setdefault(message_id, bounced_at)
        return sum(1 for at in item["tb"].values() if at >= bounced_at - window_seconds)

    def lead_events(self, lead_id: str) -> list[StoredEvent]:
        prefix = f"LEAD#{lead_id}"
        return [
            event_from_item(item)
            for (pk, sk), item in self.items.items()
            if pk == prefix and sk.startswith(("EVT#", "STAGE#"))
        ]

    def due_leads(self, now: float, limit: int, after: Any = None) -> tuple[list[tuple[Lead, str | None]], Any]:
        bound = due_bound(now)
        due = sorted(
            (item["gsi2pk"], item["gsi2sk"], lead_of_partition(item["pk"]))
            for item in self.items.values()
            if "gsi2pk" in item
            and item["gsi2sk"] <= bound
            and (after is None or (item["gsi2pk"], item["gsi2sk"]) > after)
        )[:limit]
        self.sweep_reads["index_items"] += len(due)
        self.sweep_reads["leads"] += len(due)
        leads = self.get_leads([lead_id for _, _, lead_id in due])
        cursor = due[-1][:2] if len(due) == limit else None
        return [(leads[lead_id], key) for _, key, lead_id in due if lead_id in leads], cursor

    def read_capacity(self) -> float:
        return self.sweep_reads["capacity_units"]

    def spend_budget(self, day: str, count: int, budget: int) -> int:
        item = self.items.setdefault(("SWEEP#budget", day), {"spent": 0})
        granted = count if count < 0 else max(0, min(count, budget - item["spent"]))
        item["spent"] += granted
        return granted

    def account_leads(self, domain: str, limit: int = 200) -> list[Lead]:
        key = f"ACCOUNT#{domain}"
        return [lead_from_item(item) for item in self.items.values() if item.get("gsi1pk") == key][:limit]

    def lookup_identities_and_tombstones(
        self,
        keys: Iterable[str],
        person_keys: Iterable[str],
        leads: Iterable[str] = (),
        records: Iterable[tuple[str, str]] = (),
    ) -> tuple[dict[str, str], set[str], dict[str, Lead], set[tuple[str, str]]]:
        keys = list(keys)
        known = {key: self.items[(f"ID#{key}", "ID")]["lid"] for key in keys if (f"ID#{key}", "ID") in self.items}
        # (the one read of a real store: not through the other methods, which tests count)
        found = InMemoryLeadStore.get_leads(self, {*(lead_id_for(k) for k in keys if k.startswith(ANONYMOUS)), *leads})
        for key in keys:
            if key.startswith(ANONYMOUS) and key not in known and lead_id_for(key) in found:
                known[key] = lead_id_for(key)
        erased = {key for key in person_keys if tombstone_key(key) in self.items}
        return known, erased, found, InMemoryLeadStore.stored_records(self, records)[0]

    def put_tombstones(self, keys: Iterable[str], now: float) -> None:
        for key in keys:
            pk, sk = tombstone_key(key)
            self.items[(pk, sk)] = {"pk": pk, "sk": sk, "erased_at": now}

    def lead_item_keys(self, lead_id: str) -> list[tuple[str, str]]:
        return [key for key in self.items if key[0] == f"LEAD#{lead_id}"]

    def identity_item_keys(self, identity_keys: Iterable[str]) -> list[tuple[str, str]]:
        return [identity_item_key(key) for key in identity_keys]

    def delete_items(self, keys: Sequence[tuple[str, str]]) -> None:
        for key in keys:
            self.items.pop(key, None)


class WallClock:
    """The wall clock claims' leases are taken and compared on, moved by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Stopped(BaseException):
    """Lambda stopping an invocation where it stands (a timeout, the process
    killed): no `except Exception`, no clean-up runs."""


@contextlib.contextmanager
def invocation(wall: WallClock, seconds: float = 30.0) -> Iterator[Deadline]:
    """One Lambda invocation with `seconds` to run, its time read on `wall`."""
    started = wall()
    with running(Deadline(lambda: seconds - (wall() - started), wall_clock=wall)) as deadline:
        yield deadline


class InMemoryTimelineStore:
    """The timeline store contract in memory (unit tests)."""

    def __init__(self, items: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.items = items if items is not None else {}

    def _prefixed(self, lead_id: str, prefix: str) -> list[dict[str, Any]]:
        return [
            json.loads(json.dumps(item))
            for (pk, sk), item in sorted(self.items.items())
            if pk == f"LEAD#{lead_id}" and sk.startswith(prefix)
        ]

    def enrollments(self, lead_id: str) -> list[Any]:
        return [enrollment_from_item(item) for item in self._prefixed(lead_id, "ENR#")]

    def get_enrollment(self, lead_id: str, track_id: str, seq: int) -> Any | None:
        key = enrollment_key(lead_id, track_id, seq)
        item = self.items.get((key["pk"], key["sk"]))
        return enrollment_from_item(json.loads(json.dumps(item))) if item else None

    def create_enrollment(self, enrollment: Any) -> bool:
        item = enrollment_to_item(enrollment)
        if (item["pk"], item["sk"]) in self.items:
            return False
        enrollment.version = 1
        self.items[(item["pk"], item["sk"])] = json.loads(json.dumps(enrollment_to_item(enrollment)))
        return True

    def save_enrollment(self, enrollment: Any, expected_version: int) -> None:
        key = enrollment_key(enrollment.lead_id, enrollment.track_id, enrollment.seq)
        current = self.items.get((key["pk"], key["sk"]))
        if current is None or current.get("version") != expected_version:
            raise ConcurrentUpdateError(f"enrollment {enrollment.enrollment_id} changed concurrently")
        enrollment.version = expected_version + 1
        self.items[(key["pk"], key["sk"])] = json.loads(json.dumps(enrollment_to_item(enrollment)))

    def claim_touch(self, touch: Any, lease: Any = None) -> bool:
        if lease is not None:
            touch.lease_until = lease.until
        if claims_content(touch):
            claim = content_claim_item(touch)
            held = self.items.get((claim["pk"], claim["sk"]))
            if held is not None and held["touch"] != touch.touch_id:
                return False
            self.items[(claim["pk"], claim["sk"])] = claim
        item = touch_to_item(touch)
        held = self.items.get((item["pk"], item["sk"]))
        if held is not None:
            lapsed = lease is not None and "lease" in held and held["lease"] < lease.at
            if not lapsed:
                return False
        self.items[(item["pk"], item["sk"])] = item
        return True

    def update_touch(self, touch: Any) -> None:
        item = touch_to_item(touch)
        self.items[(item["pk"], item["sk"])] = item

    def release_touch(self, touch: Any) -> None:
        key = (f"LEAD#{touch.lead_id}", f"TOUCH#{touch.touch_id}")
        held = self.items.get(key)
        if held is None or (touch.lease_until is not None and held.get("lease") != touch.lease_until):
            return
        del self.items[key]
        claim = content_claim_item(touch)
        if claims_content(touch) and self.items.get((claim["pk"], claim["sk"]), {}).get("touch") == touch.touch_id:
            del self.items[(claim["pk"], claim["sk"])]

    def touches(self, lead_id: str) -> list[Any]:
        return [touch_from_item(item) for item in self._prefixed(lead_id, "TOUCH#")]

    def reserve_marketing_send(self, touch: Any, max_sends: int, window_seconds: float) -> bool:
        key = (f"LEAD#{touch.lead_id}", SEND_LOG)
        log = json.loads(json.dumps(self.items.get(key) or {"sends": [], "version": 0}))
        if not may_log_send(log["sends"], touch, max_sends, window_seconds):
            return False
        if not any(entry[1] == touch.touch_id for entry in log["sends"]):
            self.items[key] = send_log_item(touch, log, window_seconds)
        return True

    def release_marketing_send(self, touch: Any) -> None:
        log = self.items.get((f"LEAD#{touch.lead_id}", SEND_LOG))
        if log is not None:
            log["sends"] = [entry for entry in log["sends"] if entry[1] != touch.touch_id]

    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Any | None:
        item = self.items.get((f"LEAD#{lead_id}", f"TOUCH#{enrollment_id}#{step_id}"))
        return touch_from_item(json.loads(json.dumps(item))) if item else None


class InMemoryAudienceMembers:
    def __init__(self) -> None:
        self.members: dict[str, Snapshot] = {}

    def snapshot(self, audience_id: str) -> Snapshot:
        return {platform: dict(held) for platform, held in self.members.get(audience_id, {}).items()}

    def held(self, lead_id: str, places: Iterable[tuple[str, str]]) -> dict[tuple[str, str], HashedIdentity]:
        found = {}
        for audience_id, platform in places:
            identity = self.members.get(audience_id, {}).get(platform, {}).get(lead_id)
            if identity is not None:
                found[(audience_id, platform)] = identity
        return found

    def record(
        self,
        audience_id: str,
        platform: str,
        added: Mapping[str, HashedIdentity],
        removed: Iterable[str],
        now: float,
    ) -> None:
        held = self.members.setdefault(audience_id, {}).setdefault(platform, {})
        for lead_id in removed:
            held.pop(lead_id, None)
        held.update(added)


class InMemoryCredentials:
    """Credentials held in a dict: for tests and local runs."""

    def __init__(self, credentials: Mapping[str, Mapping[str, str]]) -> None:
        self._credentials = {name: dict(values) for name, values in credentials.items()}
        self.invalidated: list[str] = []

    def credential(self, name: str) -> Mapping[str, str]:
        if name not in self._credentials:
            raise KeyError(f"no credential named {name!r}")
        return dict(self._credentials[name])

    def invalidate(self, name: str) -> None:
        self.invalidated.append(name)

    def put(self, name: str, values: Mapping[str, str]) -> None:
        self._credentials[name] = dict(values)
