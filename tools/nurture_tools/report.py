"""What nurture did and whether it worked: pure functions over the store's
records (leads with their enrollments, touches, events with the lifecycle
history), so every figure can be checked against a hand-made set of records.

- engagement per track, step, content and variant: emails sent, leads who
  opened or clicked (human opens and clicks only; machine ones are counted apart);
- acceleration: median and 75th-percentile days between lifecycle stages,
  nurtured leads against the holdout;
- outcomes: hand-offs, sales verdicts, opportunities, wins, revenue;
- A/B results: each variant's open and click rates, with a two-sided
  two-proportion z-test (Fisher's exact test when a cell is small);
- holdout lift: how much more often nurtured leads became sales-ready than
  held-out ones, with a 95% confidence interval for the difference.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

DAY = 86400.0
OPENED, CLICKED = "Email Opened", "Email Link Clicked"
MACHINE_SUFFIX = " (machine)"
# The ladder a lead climbs; "reached X" means X or any stage past it.
LADDER = ("lead", "warm", "hot", "opportunity", "customer")
# Nurture starts at warm (MQL), so the moves it can speed up start there.
ACCELERATION_PAIRS = (("warm", "hot"), ("hot", "opportunity"), ("opportunity", "customer"), ("warm", "customer"))
SALES_READY = ("hot", "opportunity", "customer")
_Z95 = NormalDist().inv_cdf(0.975)


# --- statistics --------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test on [[k1, n1-k1], [k2, n2-k2]]:
    the probability, with the margins fixed, of a table no more likely than this one."""
    total, successes = n1 + n2, k1 + k2

    def probability(a: int) -> float:
        return math.comb(n1, a) * math.comb(n2, successes - a) / math.comb(total, successes)

    observed = probability(k1)
    low, high = max(0, successes - n2), min(n1, successes)
    return min(1.0, sum(p for a in range(low, high + 1) if (p := probability(a)) <= observed * (1 + 1e-9)))


def compare_proportions(k1: int, n1: int, k2: int, n2: int) -> dict[str, Any]:
    """Is k1/n1 different from k2/n2? Two-sided two-proportion z-test with the
    pooled standard error; Fisher's exact test when an expected cell count is
    below 5 (the z-test's normal approximation is poor there)."""
    if n1 == 0 or n2 == 0:
        return {"method": None, "p_value": None, "z": None}
    pooled = (k1 + k2) / (n1 + n2)
    expected = (n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
    if min(expected) < 5:
        return {"method": "fisher_exact", "p_value": round(fisher_exact(k1, n1, k2, n2), 4), "z": None}
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (k1 / n1 - k2 / n2) / se
    return {"method": "z_test", "p_value": round(2 * (1 - NormalDist().cdf(abs(z))), 4), "z": round(z, 3)}


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for k/n."""
    p, z2 = k / n, _Z95 * _Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """95% interval for k1/n1 - k2/n2: Newcombe's hybrid score interval (from the
    Wilson intervals of each share). Unlike the Wald interval it stays honest for
    small groups and shares near 0 or 1 — a holdout of a handful of leads — and so
    agrees with the significance test beside it."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    (low1, high1), (low2, high2) = wilson_interval(k1, n1), wilson_interval(k2, n2)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2)
    high = difference + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2)
    return (round(low, 4), round(high, 4))


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


# --- who is who ------------------------------------------------------------------------


def stage_times(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """lead id -> ladder stage -> the first time the lead reached it (or a stage
    past it: a lead that jumps from lead to hot has reached warm then too)."""
    reached: dict[str, dict[str, float]] = defaultdict(dict)
    for event in sorted((e for e in events if e["kind"] == "lifecycle"), key=lambda e: e["at"]):
        to = event["properties"].get("to")
        if to not in LADDER:
            continue
        for stage in LADDER[: LADDER.index(to) + 1]:
            reached[event["lead_id"]].setdefault(stage, event["at"])
    return reached


def groups(leads: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """track id -> lead id -> "nurtured" | "holdout", for every enrollment a lead had."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for lead in leads:
        for enrollment in lead.get("enrollments", []):
            group = "holdout" if enrollment["status"] == "holdout" else "nurtured"
            found[enrollment["track_id"]].setdefault(lead["lead_id"], group)
    return found


def _enrollment_starts(leads: Iterable[dict[str, Any]], track_id: str) -> dict[str, float]:
    return {
        lead["lead_id"]: min(e["started_at"] for e in lead["enrollments"] if e["track_id"] == track_id)
        for lead in leads
        if any(e["track_id"] == track_id for e in lead.get("enrollments", []))
    }


# --- the sections ---------------------------------------------------------------------


def _touch_id(touch: dict[str, Any]) -> str:
    return f"{touch['enrollment_id']}#{touch['step_id']}"


def engagement(touches: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Emails sent and the share opened and clicked, by track, step, content and
    variant. An email counts as opened when a person opened or clicked it
    (a click without a recorded open is still a read email)."""
    opened, clicked, machine = set(), set(), set()
    for event in events:
        name, props = event["name"], event.get("properties") or {}
        key = props.get("touch") or (
            f"{props['enrollment']}#{props['step']}" if props.get("enrollment") and props.get("step") else None
        )
        if key is None:
            continue
        if name == OPENED:
            opened.add(key)
        elif name == CLICKED:
            clicked.add(key)
            opened.add(key)
        elif name.endswith(MACHINE_SUFFIX):
            machine.add(key)
    emails = [t for t in touches if t.get("channel") == "email" and t.get("status") == "sent"]
    dimensions = {
        "track": lambda t: (t["track_id"],),
        "step": lambda t: (t["track_id"], t["step_id"]),
        "content": lambda t: (t.get("content_id") or "-",),
        "variant": lambda t: (t["track_id"], t["step_id"], t.get("variant") or "-"),
    }
    result: dict[str, list[dict[str, Any]]] = {}
    for dimension, key_of in dimensions.items():
        counts: dict[tuple, Counter] = defaultdict(Counter)
        for touch in emails:
            if dimension == "variant" and not touch.get("variant"):
                continue
            tid = _touch_id(touch)
            row = counts[key_of(touch)]
            row["sent"] += 1
            row["opened"] += tid in opened
            row["clicked"] += tid in clicked
            row["machine_opened"] += tid in machine
        result[dimension] = [
            {
                "key": list(key),
                "sent": row["sent"],
                "opened": row["opened"],
                "clicked": row["clicked"],
                "machine_opened": row["machine_opened"],
                "open_rate": _rate(row["opened"], row["sent"]),
                "click_rate": _rate(row["clicked"], row["sent"]),
            }
            for key, row in sorted(counts.items(), key=lambda kv: (-kv[1]["sent"], kv[0]))
        ]
    return result


def acceleration(leads: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Days from first reaching one stage to first reaching the next, for
    leads nurtured by a track against leads held out of one."""
    reached = stage_times(events)
    membership: dict[str, str] = {}
    for track_groups in groups(leads).values():
        for lead_id, group in track_groups.items():
            if membership.get(lead_id) != "holdout":  # held out anywhere: counted with the holdout
                membership[lead_id] = group
    rows = []
    for start, end in ACCELERATION_PAIRS:
        row: dict[str, Any] = {"from": start, "to": end}
        for group in ("nurtured", "holdout"):
            days = [
                (times[end] - times[start]) / DAY
                for lead_id, times in reached.items()
                if membership.get(lead_id) == group and start in times and end in times
            ]
            started = sum(1 for lid, t in reached.items() if membership.get(lid) == group and start in t)
            row[group] = {
                "leads_at_start": started,
                "reached": len(days),
                "median_days": _round(percentile(days, 0.5)),
                "p75_days": _round(percentile(days, 0.75)),
            }
        rows.append(row)
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def holdout_lift(leads: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per track with a holdout: the share of enrolled leads that became
    sales-ready (hot or later) after enrolling, nurtured against held out."""
    reached = stage_times(events)
    rows = []
    for track_id, members in sorted(groups(leads).items()):
        if "holdout" not in members.values():
            continue
        starts = _enrollment_starts(leads, track_id)
        counts = {"nurtured": [0, 0], "holdout": [0, 0]}
        for lead_id, group in members.items():
            counts[group][1] += 1
            times = reached.get(lead_id, {})
            if any(times.get(stage, -1) >= starts[lead_id] for stage in SALES_READY):
                counts[group][0] += 1
        (kn, nn), (kh, nh) = counts["nurtured"], counts["holdout"]
        rate_n, rate_h = _rate(kn, nn), _rate(kh, nh)
        rows.append(
            {
                "track": track_id,
                "outcome": "became sales-ready (hot or later) after enrolling",
                "nurtured": {"leads": nn, "converted": kn, "rate": rate_n},
                "holdout": {"leads": nh, "converted": kh, "rate": rate_h},
                "lift": round(rate_n / rate_h - 1, 4) if rate_n is not None and rate_h else None,
                "difference": round(rate_n - rate_h, 4) if rate_n is not None and rate_h is not None else None,
                "difference_95ci": difference_interval(kn, nn, kh, nh),
                "test": compare_proportions(kn, nn, kh, nh),
            }
        )
    return rows


def experiments(touches: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each A/B-tested step: its variants' open and click rates, every variant
    tested against the first (by name) on both."""
    by_step: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in engagement(touches, events)["variant"]:
        track, step, variant = row["key"]
        by_step[(track, step)].append({"variant": variant, **{k: v for k, v in row.items() if k != "key"}})
    results = []
    for (track, step), variants in sorted(by_step.items()):
        variants.sort(key=lambda v: v["variant"])
        if len(variants) < 2:
            continue
        control = variants[0]
        for variant in variants[1:]:
            variant["vs"] = control["variant"]
            variant["open_test"] = compare_proportions(
                variant["opened"], variant["sent"], control["opened"], control["sent"]
            )
            variant["click_test"] = compare_proportions(
                variant["clicked"], variant["sent"], control["clicked"], control["sent"]
            )
        results.append({"track": track, "step": step, "variants": variants})
    return results


def outcomes(leads: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Hand-offs and what sales made of them, from the lifecycle history and
    the sales outcomes recorded as events."""
    reached = stage_times(events)
    moved_to: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["kind"] == "lifecycle":
            moved_to[event["properties"].get("to")].add(event["lead_id"])
    recorded: Counter = Counter()
    revenue = 0.0
    currencies: set[str] = set()
    for event in events:
        props = event.get("properties") or {}
        outcome = props.get("outcome")
        if event["kind"] == "lifecycle" or not outcome:
            continue
        recorded[str(outcome)] += 1
        if outcome == "won" and isinstance(props.get("revenue"), int | float):
            revenue += float(props["revenue"])
            currencies.add(str(props.get("currency") or ""))
    return {
        "sales_ready": sum(1 for times in reached.values() if "hot" in times),
        "opportunities": sum(1 for times in reached.values() if "opportunity" in times),
        "customers": len(moved_to.get("customer", set())),
        "lost": len(moved_to.get("lost", set())),
        "recycled": len(moved_to.get("recycled", set())),
        "disqualified": len(moved_to.get("disqualified", set())),
        "recorded_outcomes": dict(sorted(recorded.items())),
        "revenue_won": round(revenue, 2),
        "currency": ", ".join(sorted(c for c in currencies if c)) or None,
    }


def totals(
    leads: Sequence[dict[str, Any]], touches: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    live = [lead for lead in leads if not lead.get("merged_into")]
    emails = [t for t in touches if t.get("channel") == "email" and t.get("status") == "sent"]
    names = Counter(event["name"] for event in events)
    return {
        "leads": len(live),
        "known_by_email": sum(1 for lead in live if lead.get("email")),
        "lifecycle": dict(sorted(Counter(lead["lifecycle"] for lead in live).items())),
        "consent": dict(sorted(Counter(lead["consent"] for lead in live).items())),
        "fit_grade": dict(sorted(Counter(lead.get("fit_grade", "D") for lead in live).items())),
        "enrolled": sum(1 for lead in live if lead.get("enrollments")),
        "emails_sent": len(emails),
        "marketing_emails": sum(1 for t in emails if t.get("klass", "marketing") == "marketing"),
        "other_touches": dict(sorted(Counter(t["channel"] for t in touches if t.get("channel") != "email").items())),
        "events": len([e for e in events if e["kind"] != "lifecycle"]),
        "human_opens": names[OPENED],
        "human_clicks": names[CLICKED],
        "machine_opens_and_clicks": sum(n for name, n in names.items() if name.endswith(MACHINE_SUFFIX)),
    }


def build_report(
    leads: Sequence[dict[str, Any]],
    touches: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    *,
    source: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    promises: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole report as one JSON-serialisable document."""
    times = [e["at"] for e in events] + [t["at"] for t in touches]
    return {
        "source": source or {},
        "notes": list(notes),
        "period": {"from": min(times), "to": max(times)} if times else None,
        "totals": totals(leads, touches, events),
        "engagement": engagement(touches, events),
        "acceleration": acceleration(leads, events),
        "outcomes": outcomes(leads, events),
        "experiments": experiments(touches, events),
        "holdout": holdout_lift(leads, events),
        "promises": list(promises) if promises is not None else None,
    }
