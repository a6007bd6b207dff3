"""The report (nurture.report.build_report) as a terminal summary and as one
self-contained HTML page: inline CSS and SVG charts, no scripts, no fonts or
libraries fetched from anywhere, so it opens the same offline or attached to
an email."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} d"


def _p(test: dict[str, Any] | None) -> str:
    if not test or test.get("p_value") is None:
        return "n/a"
    method = "z" if test["method"] == "z_test" else "Fisher"
    return f"p={test['p_value']:.3f} ({method})"


def _date(at: float | None) -> str:
    return "–" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _verdict(test: dict[str, Any] | None, alpha: float = 0.05) -> str:
    if not test or test.get("p_value") is None:
        return "not enough data"
    return "significant at 5%" if test["p_value"] < alpha else "not significant at 5%"


# --- terminal ---------------------------------------------------------------------------


def render_text(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = ["NURTURE REPORT"]
    for note in report["notes"]:
        lines.append(f"  ! {note}")
    if report["period"]:
        lines.append(f"  period {_date(report['period']['from'])} – {_date(report['period']['to'])}")
    lines += [
        "",
        f"Leads {t['leads']} ({t['known_by_email']} known by email, {t['enrolled']} enrolled in a track)   "
        f"lifecycle now: " + ", ".join(f"{k} {v}" for k, v in t["lifecycle"].items()),
        f"Email: {t['emails_sent']} sent ({t['marketing_emails']} marketing), {t['human_opens']} human opens, "
        f"{t['human_clicks']} clicks, {t['machine_opens_and_clicks']} machine opens/clicks kept out of scores; "
        "consent now: " + ", ".join(f"{k} {v}" for k, v in t["consent"].items()),
        "",
        "Engagement by track",
        f"  {'track':<28} {'sent':>5} {'opened':>8} {'clicked':>8}",
    ]
    for row in report["engagement"]["track"]:
        lines.append(f"  {row['key'][0]:<28} {row['sent']:>5} {_pct(row['open_rate']):>8} {_pct(row['click_rate']):>8}")
    lines += ["", "Engagement by content", f"  {'content':<28} {'sent':>5} {'opened':>8} {'clicked':>8}"]
    for row in report["engagement"]["content"]:
        lines.append(f"  {row['key'][0]:<28} {row['sent']:>5} {_pct(row['open_rate']):>8} {_pct(row['click_rate']):>8}")
    lines += ["", "A/B tests"]
    if not report["experiments"]:
        lines.append("  none ran")
    for experiment in report["experiments"]:
        lines.append(f"  {experiment['track']}/{experiment['step']}")
        for v in experiment["variants"]:
            tail = ""
            if "open_test" in v:
                tail = f"   opens vs {v['vs']}: {_p(v['open_test'])}, clicks: {_p(v['click_test'])}"
            lines.append(
                f"    {v['variant']:<12} sent {v['sent']:>4}  opened {_pct(v['open_rate']):>6}  clicked {_pct(v['click_rate']):>6}{tail}"
            )
    lines += ["", "Acceleration: days between lifecycle stages (median / 75th percentile, leads)"]
    for row in report["acceleration"]:
        n, h = row["nurtured"], row["holdout"]
        lines.append(
            f"  {row['from']:>11} → {row['to']:<11} nurtured {_days(n['median_days']):>7} / {_days(n['p75_days']):>7} "
            f"(n={n['reached']:<3})  holdout {_days(h['median_days']):>7} / {_days(h['p75_days']):>7} (n={h['reached']})"
        )
    lines += ["", "Holdout lift: share of enrolled leads that became sales-ready (hot or later)"]
    if not report["holdout"]:
        lines.append("  no track held anyone out")
    for row in report["holdout"]:
        ci = row["difference_95ci"]
        lines.append(
            f"  {row['track']:<22} nurtured {_pct(row['nurtured']['rate'])} of {row['nurtured']['leads']}  "
            f"holdout {_pct(row['holdout']['rate'])} of {row['holdout']['leads']}  "
            f"difference {_pct(row['difference'])} (95% CI {_pct(ci[0]) if ci else '–'} to {_pct(ci[1]) if ci else '–'}), "
            f"{_p(row['test'])}: {_verdict(row['test'])}"
        )
    o = report["outcomes"]
    lines += [
        "",
        f"Outcomes: {o['sales_ready']} handed to sales (hot), {o['opportunities']} opportunities, "
        f"{o['customers']} customers, {o['lost']} lost, {o['recycled']} recycled; revenue won "
        f"{o['revenue_won']:,.0f} {o['currency'] or ''}".rstrip(),
    ]
    if o["recorded_outcomes"]:
        lines.append("  sales verdicts recorded: " + ", ".join(f"{k} {v}" for k, v in o["recorded_outcomes"].items()))
    if report["promises"] is not None:
        lines += ["", "Promises (checked on the export)"]
        for promise in report["promises"]:
            mark = "kept  " if promise["kept"] else "BROKEN"
            lines.append(
                f"  [{mark}] {promise['promise']} ({promise['checked']} checked, {promise['violations']} violations)"
            )
            lines += [f"           e.g. {example}" for example in promise["examples"]]
    return "\n".join(lines)


# --- HTML -----------------------------------------------------------------------------


def _bars(rows: list[tuple[str, list[tuple[float, str]]]], legend: list[tuple[str, str]], unit: str = "%") -> str:
    """Horizontal grouped bars as inline SVG: one label per row, one bar per series."""
    if not rows:
        return "<p class='muted'>No data.</p>"
    series = max(len(values) for _, values in rows)
    bar_h, gap, label_w, chart_w = 14, 10, 230, 420
    top = 22
    height = top + len(rows) * (series * bar_h + gap) + 6
    peak = max((value for _, values in rows for value, _ in values), default=0) or 1
    parts = [f'<svg viewBox="0 0 {label_w + chart_w + 80} {height}" role="img" class="chart">']
    x = label_w
    for color, name in legend:
        parts.append(
            f'<rect x="{x}" y="4" width="10" height="10" fill="{color}"/><text x="{x + 14}" y="13" class="lg">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    y = top
    for label, values in rows:
        parts.append(
            f'<text x="{label_w - 8}" y="{y + series * bar_h / 2 + 4}" text-anchor="end" class="lb">{escape(label)}</text>'
        )
        for i, (value, color) in enumerate(values):
            width = chart_w * value / peak
            parts.append(
                f'<rect x="{label_w}" y="{y + i * bar_h}" width="{width:.1f}" height="{bar_h - 2}" fill="{color}" rx="2"/>'
            )
            text = f"{value * 100:.1f}%" if unit == "%" else f"{value:.1f} {unit}"
            parts.append(
                f'<text x="{label_w + width + 4:.1f}" y="{y + i * bar_h + bar_h - 4}" class="vl">{text}</text>'
            )
        y += series * bar_h + gap
    parts.append("</svg>")
    return "".join(parts)


NURTURED, HOLDOUT, OPEN, CLICK = "#2f6fdf", "#c9a227", "#2f6fdf", "#1f9d6b"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    t, o = report["totals"], report["outcomes"]
    source = report["source"]
    title = "Nurture report" + (" — simulated market" if source.get("simulated") else "")
    sections = []
    notes = "".join(f"<div class='note'>{escape(note)}</div>" for note in report["notes"])
    period = (
        f"{_date(report['period']['from'])} – {_date(report['period']['to'])}" if report["period"] else "no activity"
    )
    cards = [
        ("Leads", t["leads"], f"{t['known_by_email']} known by email"),
        ("Enrolled", t["enrolled"], "in a nurture track"),
        ("Emails sent", t["emails_sent"], f"{t['marketing_emails']} marketing"),
        ("Human opens", t["human_opens"], f"{t['machine_opens_and_clicks']} machine opens/clicks excluded"),
        ("Clicks", t["human_clicks"], "human"),
        ("Sales-ready", o["sales_ready"], "handed to sales (hot)"),
        ("Opportunities", o["opportunities"], f"{o['customers']} won as customers"),
        ("Revenue won", f"{o['revenue_won']:,.0f}", o["currency"] or "no revenue recorded"),
    ]
    sections.append(
        "<div class='cards'>"
        + "".join(
            f"<div class='card'><div class='k'>{escape(k)}</div><div class='v'>{escape(str(v))}</div><div class='s'>{escape(str(s))}</div></div>"
            for k, v, s in cards
        )
        + "</div>"
    )
    lifecycle = ", ".join(f"{escape(k)} {v}" for k, v in t["lifecycle"].items())
    consent = ", ".join(f"{escape(k)} {v}" for k, v in t["consent"].items())
    sections.append(f"<p class='muted'>Lifecycle now: {lifecycle}. Consent now: {consent}.</p>")

    # holdout lift
    lift_rows = []
    chart_rows = []
    for row in report["holdout"]:
        ci = row["difference_95ci"]
        lift_rows.append(
            [
                escape(row["track"]),
                f"{_pct(row['nurtured']['rate'])} <span class='muted'>({row['nurtured']['converted']}/{row['nurtured']['leads']})</span>",
                f"{_pct(row['holdout']['rate'])} <span class='muted'>({row['holdout']['converted']}/{row['holdout']['leads']})</span>",
                _pct(row["difference"]) + (f" <span class='muted'>[{_pct(ci[0])}, {_pct(ci[1])}]</span>" if ci else ""),
                "–" if row["lift"] is None else f"{row['lift'] * 100:+.0f}%",
                f"{escape(_p(row['test']))}<br><span class='muted'>{_verdict(row['test'])}</span>",
            ]
        )
        chart_rows.append(
            (row["track"], [(row["nurtured"]["rate"] or 0, NURTURED), (row["holdout"]["rate"] or 0, HOLDOUT)])
        )
    sections.append(
        "<h2>Holdout lift</h2><p>Share of enrolled leads that became sales-ready (hot or later) after enrolling: "
        "nurtured leads against the share of the track held out to receive nothing.</p>"
        + _bars(chart_rows, [(NURTURED, "nurtured"), (HOLDOUT, "holdout")])
        + _table(["track", "nurtured", "holdout", "difference [95% CI]", "relative lift", "test"], lift_rows)
        if report["holdout"]
        else "<h2>Holdout lift</h2><p class='muted'>No track held anyone out.</p>"
    )

    # acceleration
    accel_rows, accel_chart = [], []
    for row in report["acceleration"]:
        n, h = row["nurtured"], row["holdout"]
        accel_rows.append(
            [
                f"{escape(row['from'])} → {escape(row['to'])}",
                f"{_days(n['median_days'])} / {_days(n['p75_days'])} <span class='muted'>(n={n['reached']} of {n['leads_at_start']})</span>",
                f"{_days(h['median_days'])} / {_days(h['p75_days'])} <span class='muted'>(n={h['reached']} of {h['leads_at_start']})</span>",
            ]
        )
        if n["median_days"] is not None or h["median_days"] is not None:
            accel_chart.append(
                (f"{row['from']} → {row['to']}", [(n["median_days"] or 0, NURTURED), (h["median_days"] or 0, HOLDOUT)])
            )
    sections.append(
        "<h2>Acceleration</h2><p>Days from first reaching one lifecycle stage to first reaching the next "
        "(median / 75th percentile; n = leads that made the move, of those that reached the first stage). "
        "Leads held out of any track count with the holdout.</p>"
        + _bars(accel_chart, [(NURTURED, "nurtured, median"), (HOLDOUT, "holdout, median")], unit="d")
        + _table(["move", "nurtured", "holdout"], accel_rows)
    )

    # engagement
    def engagement_table(dimension: str, headers: list[str]) -> str:
        rows = [
            [
                *(escape(str(k)) for k in row["key"]),
                str(row["sent"]),
                _pct(row["open_rate"]),
                _pct(row["click_rate"]),
                str(row["machine_opened"]),
            ]
            for row in report["engagement"][dimension]
        ]
        return _table([*headers, "sent", "opened", "clicked", "machine opens"], rows)

    track_chart = [
        (row["key"][0], [(row["open_rate"] or 0, OPEN), (row["click_rate"] or 0, CLICK)])
        for row in report["engagement"]["track"]
    ]
    content_chart = [
        (row["key"][0], [(row["open_rate"] or 0, OPEN), (row["click_rate"] or 0, CLICK)])
        for row in report["engagement"]["content"]
    ]
    sections.append(
        "<h2>Engagement</h2><p>Share of emails sent that a person opened or clicked. Opens and clicks by "
        "security scanners and privacy proxies are recorded apart and excluded.</p><h3>By track</h3>"
        + _bars(track_chart, [(OPEN, "opened"), (CLICK, "clicked")])
        + engagement_table("track", ["track"])
        + "<h3>By step</h3>"
        + engagement_table("step", ["track", "step"])
        + "<h3>By content</h3>"
        + _bars(content_chart, [(OPEN, "opened"), (CLICK, "clicked")])
        + engagement_table("content", ["content"])
    )

    # experiments
    exp_parts = ["<h2>A/B tests</h2>"]
    if not report["experiments"]:
        exp_parts.append("<p class='muted'>No A/B test ran.</p>")
    for experiment in report["experiments"]:
        rows = []
        for v in experiment["variants"]:
            rows.append(
                [
                    escape(v["variant"]),
                    str(v["sent"]),
                    _pct(v["open_rate"]),
                    _pct(v["click_rate"]),
                    f"{escape(_p(v.get('open_test')))} <span class='muted'>{_verdict(v.get('open_test')) if 'open_test' in v else 'control'}</span>",
                    f"{escape(_p(v.get('click_test')))} <span class='muted'>{_verdict(v.get('click_test')) if 'click_test' in v else 'control'}</span>",
                ]
            )
        exp_parts.append(
            f"<h3>{escape(experiment['track'])} / {escape(experiment['step'])}</h3>"
            + _bars(
                [
                    (v["variant"], [(v["open_rate"] or 0, OPEN), (v["click_rate"] or 0, CLICK)])
                    for v in experiment["variants"]
                ],
                [(OPEN, "opened"), (CLICK, "clicked")],
            )
            + _table(["variant", "sent", "opened", "clicked", "opens vs control", "clicks vs control"], rows)
        )
    exp_parts.append(
        "<p class='muted'>Two-sided two-proportion z-test; Fisher's exact test when an expected count is below 5.</p>"
    )
    sections.append("".join(exp_parts))

    # outcomes
    recorded = ", ".join(f"{escape(k)} {v}" for k, v in o["recorded_outcomes"].items()) or "none recorded"
    sections.append(
        "<h2>Outcomes</h2>"
        + _table(
            ["handed to sales (hot)", "opportunities", "customers", "lost", "recycled", "revenue won"],
            [
                [
                    str(o["sales_ready"]),
                    str(o["opportunities"]),
                    str(o["customers"]),
                    str(o["lost"]),
                    str(o["recycled"]),
                    f"{o['revenue_won']:,.0f} {escape(o['currency'] or '')}",
                ]
            ],
        )
        + f"<p class='muted'>Sales verdicts recorded: {recorded}.</p>"
    )

    if report["promises"] is not None:
        rows = [
            [
                "<span class='ok'>kept</span>" if p["kept"] else "<span class='bad'>broken</span>",
                escape(p["promise"]),
                str(p["checked"]),
                str(p["violations"]) + "".join(f"<br><span class='muted'>{escape(e)}</span>" for e in p["examples"]),
            ]
            for p in report["promises"]
        ]
        sections.append(
            "<h2>Promises</h2><p>Checked on the exported touches, leads and events.</p>"
            + _table(["", "promise", "checked", "violations"], rows)
        )

    meta = ""
    if source.get("simulated"):
        meta = f"seed {source.get('seed')}, {source.get('leads')} simulated leads, {source.get('days')} simulated days"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body{{font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2330;max-width:1020px;margin:28px auto;padding:0 20px;background:#fbfbfd}}
h1{{font-size:26px;margin:0 0 2px}} h2{{font-size:19px;margin:34px 0 6px;border-bottom:1px solid #e3e6ee;padding-bottom:4px}} h3{{font-size:15px;margin:18px 0 4px}}
.muted{{color:#6b7385;font-size:13px}} .note{{background:#fff7e0;border:1px solid #f0d98a;border-radius:6px;padding:8px 12px;margin:10px 0;font-size:14px}}
.cards{{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px;margin:16px 0}}
.card{{background:#fff;border:1px solid #e3e6ee;border-radius:8px;padding:10px 14px}} .card .k{{color:#6b7385;font-size:13px}} .card .v{{font-size:24px;font-weight:600}} .card .s{{color:#6b7385;font-size:12px}}
table{{border-collapse:collapse;width:100%;margin:8px 0 4px;background:#fff;font-size:14px}} th,td{{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef3;vertical-align:top}} th{{background:#f3f5f9;font-weight:600}}
.chart{{width:100%;max-width:760px;height:auto;margin:6px 0}} .chart .lb{{font-size:12px;fill:#1d2330}} .chart .vl{{font-size:11px;fill:#4a5163}} .chart .lg{{font-size:12px;fill:#4a5163}}
.ok{{color:#1f7a4f;font-weight:600}} .bad{{color:#b3261e;font-weight:700}}
</style></head><body>
<h1>{escape(title)}</h1>
<div class="muted">{escape(period)}{" · " + escape(meta) if meta else ""}</div>
{notes}
{"".join(sections)}
<p class="muted" style="margin-top:30px">Generated by <code>nurture {"demo" if source.get("simulated") else "report"}</code>. The same figures are in report.json.</p>
</body></html>
"""
