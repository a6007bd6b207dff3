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

from nurture.store.repository import event_from_item, from_item

_LEAD_ATTRIBUTES = {
    "lid": "lead_id",
    "em": "email",
    "lc": "lifecycle",
    "lcat": "lifecycle_at",
    "cs": "consent",
    "csat": "consent_at",
    "fg": "fit_grade",
    "fs": "fit_score",
    "bs": "buying_stage",
    "cat": "created_at",
    "lsa": "last_seen_at",
    "mi": "merged_into",
}
_PROFILE_FIELDS = ("persona", "seniority", "industry", "country", "timezone", "employees", "domain", "title")


@dataclass
class Records:
    leads: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def records_from_items(items: Iterable[dict[str, Any]]) -> Records:
    """Records from table items (already converted with `from_item`)."""
    leads: dict[str, dict[str, Any]] = {}
    enrollments: dict[str, list[dict[str, Any]]] = {}
    records = Records()
    for item in items:
        sk = item.get("sk", "")
        if not item.get("pk", "").startswith("LEAD#"):
            continue
        lead_id = item["pk"][5:]
        if sk == "PROFILE":
            lead = {name: item[attribute] for attribute, name in _LEAD_ATTRIBUTES.items() if attribute in item}
            lead.setdefault("lifecycle", "visitor")
            lead.setdefault("consent", "subscribed")
            profile = item.get("prof") or {}
            lead.update({name: profile[name] for name in _PROFILE_FIELDS if name in profile})
            leads[lead_id] = lead
        elif sk.startswith("ENR#"):
            enrollment = {k: v for k, v in item.items() if k not in ("pk", "sk", "last_decision", "pending")}
            enrollments.setdefault(lead_id, []).append(enrollment)
        elif sk.startswith("TOUCH#"):
            records.touches.append({k: v for k, v in item.items() if k not in ("pk", "sk")})
        elif sk.startswith(("EVT#", "STAGE#")):
            event = event_from_item(item)
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


def read_table(client: Any, table: str) -> Records:
    """Every lead, touch and event in `table` (a paged Scan)."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table}
    while True:
        response = client.scan(**request)
        items.extend(from_item(item) for item in response["Items"])
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
