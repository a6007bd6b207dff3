"""The store as plain records, for reports and exports: leads (with their
enrollments and when their consent last changed), touches, and events (the
stored behaviour and the lifecycle history).

Reads a whole table with a paged Scan: right for a report or an export run
now and then, not for a request path. One Scan pass reads every item once
(about 1 read unit per 8 KB with eventually consistent reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nurture.store.repository import event_from_model
from nurture.store.schema import (
    EnrollmentItem,
    EventItem,
    LeadItem,
    NurtureItem,
    TouchItem,
    lead_of_partition,
    model_of,
    read,
)

_LEAD_FIELDS = (
    "lead_id",
    "email",
    "lifecycle",
    "lifecycle_at",
    "consent",
    "consent_at",
    "fit_grade",
    "fit_score",
    "buying_stage",
    "created_at",
    "last_seen_at",
    "merged_into",
)
_PROFILE_FIELDS = ("persona", "seniority", "industry", "country", "timezone", "employees", "domain", "title")


@dataclass
class Records:
    leads: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def item_fields(item: NurtureItem, model: type[NurtureItem], leave: tuple[str, ...] = ()) -> dict[str, Any]:
    """The item's own attributes (not its keys or kind), by their names in the model."""
    names = [name for name in model.get_attributes() if name not in NurtureItem.get_attributes() and name not in leave]
    return {name: getattr(item, name) for name in names if getattr(item, name) is not None}


def records_from_items(items: Iterable[NurtureItem]) -> Records:
    """Records from the table's items, each read as its model."""
    leads: dict[str, dict[str, Any]] = {}
    enrollments: dict[str, list[dict[str, Any]]] = {}
    records = Records()
    for item in items:
        lead_id = lead_of_partition(item.pk)
        if lead_id is None:
            continue
        if isinstance(item, LeadItem):
            lead = {name: getattr(item, name) for name in _LEAD_FIELDS if getattr(item, name) is not None}
            lead.setdefault("lifecycle", "visitor")
            lead.setdefault("consent", "subscribed")
            profile = item.profile or {}
            lead.update({name: profile[name] for name in _PROFILE_FIELDS if name in profile})
            leads[lead_id] = lead
        elif isinstance(item, EnrollmentItem):
            enrollment = item_fields(item, EnrollmentItem, leave=("last_decision", "pending"))
            enrollments.setdefault(lead_id, []).append(enrollment)
        elif isinstance(item, TouchItem):
            records.touches.append(item_fields(item, TouchItem))
        elif isinstance(item, EventItem):
            event = event_from_model(item)
            records.events.append(
                {
                    "lead_id": event.lead_id,
                    "id": event.message_id,
                    "kind": event.kind,
                    "name": event.name,
                    "at": event.timestamp,
                    "source": event.source,
                    "properties": event.properties,
                    "content": event.content,
                }
            )
    for lead_id, lead in leads.items():
        lead["enrollments"] = sorted(enrollments.get(lead_id, []), key=lambda e: (e["track_id"], e["seq"]))
    records.leads = sorted(leads.values(), key=lambda lead: lead["lead_id"])
    records.touches.sort(key=lambda t: (t["at"], t["lead_id"], t.get("step_id", "")))
    records.events.sort(key=lambda e: (e["at"], e["lead_id"], e["id"]))
    return records


def _known(item: dict[str, Any]) -> bool:
    """Whether the item is one of the table's models (a table shared with anything else is read past)."""
    try:
        return NurtureItem.kind.attr_name in item or model_of(item["pk"]["S"], item["sk"]["S"]) is not None
    except ValueError:
        return False


def read_table(client: Any, table: str) -> Records:
    """Every lead, touch and event in `table` (a paged Scan; each item read
    by its kind, or by its key if it predates the kind attribute)."""
    items: list[NurtureItem] = []
    request: dict[str, Any] = {"TableName": table}
    while True:
        response = client.scan(**request)
        items.extend(read(item) for item in response["Items"] if _known(item))
        if "LastEvaluatedKey" not in response:
            return records_from_items(items)
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def write_export(records: Records, folder: Path) -> dict[str, Path]:
    """leads.jsonl, touches.jsonl and events.jsonl in `folder`, one record a line."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in (("leads", records.leads), ("touches", records.touches), ("events", records.events)):
        path = folder / f"{name}.jsonl"
        with path.open("w") as out:
            for row in rows:
                out.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        paths[name] = path
    return paths


def read_export(folder: Path) -> Records:
    def rows(name: str) -> list[dict[str, Any]]:
        path = folder / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    return Records(rows("leads"), rows("touches"), rows("events"))
