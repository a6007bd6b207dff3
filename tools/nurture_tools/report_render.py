"""The report (nurture_tools.report.build_report) as a terminal summary and as one
self-contained HTML page: inline CSS and SVG charts, no scripts, nothing
fetched from anywhere, so it opens the same offline or attached to an email."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

NURTURED, HOLDOUT, OPENED, CLICKED, FUNNEL = "#2f6fdf", "#d09a1c", "#2f6fdf", "#1f9d6b", "#5b6bd6"
STYLE = """
body{font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  color:#1d2330;max-width:1020px;margin:28px auto;padding:0 20px;background:#fbfbfd}
h1{font-size:26px;margin:0 0 2px} h3{font-size:15px;margin:18px 0 4px}
h2{font-size:19px;margin:36px 0 6px;border-bottom:1px solid #e3e6ee;padding-bottom:4px}
.muted{color:#6b7385;font-size:13px}
.note{background:#fff7e0;border:1px solid #f0d98a;border-radius:6px;padding:8px 12px;margin:10px 0;font-size:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px;margin:16px 0}
.card{background:#fff;border:1px solid #e3e6ee;border-radius:8px;padding:10px 14px}
.card .k{color:#6b7385;font-size:13px} .card .v{font-size:24px;font-weight:600} .card .s{color:#6b7385;font-size:12px}
table{border-collapse:collapse;width:100%;margin:8px 0 4px;background:#fff;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef3;vertical-align:top}
th{background:#f3f5f9;font-weight:600} td.n,th.n{text-align:right}
.chart{width:100%;max-width:760px;height:auto;margin:6px 0}
.chart .lb{font-size:12px;fill:#1d2330} .chart .vl{font-size:11px;fill:#4a5163} .chart .lg{font-size:12px;fill:#4a5163}
.ok{color:#1f7a4f;font-weight:600} .bad{color:#b3261e;font-weight:700}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} d"


def _p(test: dict[str, Any] | None) -> str:
    if not test or test.get("p_value") is None:
        return "n/a"
    method = "z-test" if test["method"] == "z_test" else "Fisher"
    return f"p={test['p_value']:.3f} ({method})"


def _verdict(test: dict[str, Any] | None) -> str:
    if not test or test.get("p_value") is None:
        return "not enough data"
    return "significant at 5%" if test["p_value"] < 0.05 else "not significant at 5%"


def _date(at: float | None) -> str:
    return "–" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _counts(mapping: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in mapping.items()) or "none"


# --- terminal ---------------------------------------------------------------------------


def render_text(report: dict[str, Any]) -> str:
    t, o = report["totals"], report["outcomes"]
    lines = ["NURTURE REPORT"]
    lines += [f"  ! {note}" for note in report["notes"]]
    if report["period"]:
        lines.append(f"  period {_date(report['period']['from'])} – {_date(report['period']['to'])}")
    lines += [
        "",
        f"Leads {t['leads']} ({t['known_by_email']} known by email, {t['enrolled']} enrolled in a track); "
        f"lifecycle now: {_counts(t['lifecycle'])}",
        f"Email: {t['emails_sent']} sent ({t['marketing_emails']} marketing), {t['human_opens']} human opens, "
        f"{t['human_clicks']} clicks ({t['machine_opens_and_clicks']} machine opens/clicks kept out of scores); "
        f"consent now: {_counts(t['consent'])}",
        "",
        "Holdout lift: share of enrolled leads that became sales-ready (hot or later) after enrolling",
    ]
    if not report["holdout"]:
        lines.append("  no track held anyone out")
    for row in report["holdout"]:
        n, h, ci = row["nurtured"], row["holdout"], row["difference_95ci"]
        interval = f"95% CI {_pct(ci[0])} to {_pct(ci[1])}" if ci else "no CI"
        lines.append(
            f"  {row['track']:<20} nurtured {_pct(n['rate'])} of {n['leads']}, holdout {_pct(h['rate'])} of "
            f"{h['leads']}: difference {_pct(row['difference'])} ({interval}), "
            f"{_p(row['test'])}, {_verdict(row['test'])}"
        )
    lines += ["", "Acceleration: days between lifecycle stages, median / 75th percentile (leads that moved)"]
    for row in report["acceleration"]:
        n, h = row["nurtured"], row["holdout"]
        lines.append(
            f"  {row['from']:>11} → {row['to']:<11} nurtured {_days(n['median_days']):>7} / "
            f"{_days(n['p75_days']):>7} (n={n['reached']:<3})  holdout {_days(h['median_days']):>7} / "
            f"{_days(h['p75_days']):>7} (n={h['reached']})"
        )
    for title, dimension in (("track", "track"), ("content", "content")):
        lines += ["", f"Engagement by {title}", f"  {title:<28} {'sent':>5} {'opened':>8} {'clicked':>8}"]
        for row in report["engagement"][dimension]:
            lines.append(
                f"  {row['key'][0]:<28} {row['sent']:>5} {_pct(row['open_rate']):>8} {_pct(row['click_rate']):>8}"
            )
    lines += ["", "A/B tests"]
    if not report["experiments"]:
        lines.append("  none ran")
    for experiment in report["experiments"]:
        lines.append(f"  {experiment['track']}/{experiment['step']}")
        for v in experiment["variants"]:
            tail = ""
            if "open_test" in v:
                tail = f"  vs {v['vs']}: opens {_p(v['open_test'])}, clicks {_p(v['click_test'])}"
            lines.append(
                f"    {v['variant']:<12} sent {v['sent']:>4}  opened {_pct(v['open_rate']):>6}  "
                f"clicked {_pct(v['click_rate']):>6}{tail}"
            )
    currency = f" {o['currency']}" if o["currency"] else ""
    lines += [
        "",
        f"Outcomes: handed to sales (hot) {o['sales_ready']}, opportunities {o['opportunities']}, "
        f"customers {o['customers']}, lost {o['lost']}, recycled {o['recycled']}; "
        f"revenue won {o['revenue_won']:,.0f}{currency}",
        f"  sales verdicts recorded: {_counts(o['recorded_outcomes'])}",
    ]
    if report["promises"] is not None:
        lines += ["", "Promises, checked on the export"]
        for promise in report["promises"]:
            mark = "kept  " if promise["kept"] else "BROKEN"
            lines.append(
                f"  [{mark}] {promise['promise']} ({promise['checked']} checked, {promise['violations']} broken)"
            )
            lines += [f"           e.g. {example}" for example in promise["examples"]]
    return "\n".join(lines)


# --- HTML -----------------------------------------------------------------------------


def _bars(rows: list[tuple[str, list[float]]], legend: list[tuple[str, str]], unit: str = "%") -> str:
    """Grouped horizontal bars as inline SVG: a label per row, a bar per series
    (colours and names from `legend`)."""
    if not rows:
        return "<p class='muted'>No data.</p>"
    bar, gap, label_w, chart_w = 15, 10, 240, 420
    top, series = 24, len(legend)
    height = top + len(rows) * (series * bar + gap)
    peak = max((value for _, values in rows for value in values), default=0) or 1
    svg = [f'<svg viewBox="0 0 {label_w + chart_w + 90} {height}" class="chart" role="img">']
    x = label_w
    for color, name in legend:
        svg.append(f'<rect x="{x}" y="5" width="10" height="10" fill="{color}"/>')
        svg.append(f'<text x="{x + 14}" y="14" class="lg">{escape(name)}</text>')
        x += 30 + 7 * len(name)
    y = top
    for label, values in rows:
        middle = y + series * bar / 2 + 4
        svg.append(f'<text x="{label_w - 8}" y="{middle}" text-anchor="end" class="lb">{escape(label)}</text>')
        for i, value in enumerate(values):
            width = chart_w * value / peak
            svg.append(
                f'<rect x="{label_w}" y="{y + i * bar}" width="{width:.1f}" height="{bar - 3}" '
                f'fill="{legend[i][0]}" rx="2"/>'
            )
            text = f"{value * 100:.1f}%" if unit == "%" else f"{value:,.1f} {unit}".rstrip()
            svg.append(f'<text x="{label_w + width + 4:.1f}" y="{y + i * bar + bar - 5}" class="vl">{text}</text>')
        y += series * bar + gap
    svg.append("</svg>")
    return "".join(svg)


def _table(headers: list[str], rows: list[list[str]], numeric: int = 0) -> str:
    """`numeric`: how many trailing columns hold numbers (right-aligned)."""
    first = len(headers) - numeric

    def cls(i: int) -> str:
        return " class='n'" if i >= first else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _muted(text: str) -> str:
    return f"<span class='muted'>{escape(text)}</span>"


def _cards(report: dict[str, Any]) -> str:
    t, o = report["totals"], report["outcomes"]
    cards = [
        ("Leads", t["leads"], f"{t['known_by_email']} known by email"),
        ("Enrolled in nurture", t["enrolled"], "in at least one track"),
        ("Emails sent", t["emails_sent"], f"{t['marketing_emails']} marketing, the rest replies to forms"),
        ("Human opens", t["human_opens"], f"{t['machine_opens_and_clicks']} machine opens/clicks left out"),
        ("Clicks", t["human_clicks"], "by people"),
        ("Handed to sales", o["sales_ready"], "became hot (sales-ready)"),
        ("Opportunities", o["opportunities"], f"{o['customers']} became customers"),
        ("Revenue won", f"{o['revenue_won']:,.0f}", o["currency"] or "no revenue recorded"),
    ]
    return (
        "<div class='cards'>"
        + "".join(
            f"<div class='card'><div class='k'>{escape(k)}</div><div class='v'>{escape(str(v))}</div>"
            f"<div class='s'>{escape(str(s))}</div></div>"
            for k, v, s in cards
        )
        + "</div>"
    )


def _holdout_section(report: dict[str, Any]) -> str:
    html = ["<h2>Did nurture work? Holdout lift</h2>"]
    if not report["holdout"]:
        return html[0] + "<p class='muted'>No track held anyone out, so there is nothing to compare with.</p>"
    html.append(
        "<p>Each track can hold out a share of the leads it enrolls; they receive nothing from it. The share of "
        "enrolled leads that became sales-ready (hot or later) <em>after enrolling</em>, nurtured against held out:</p>"
    )
    html.append(
        _bars(
            [(row["track"], [row["nurtured"]["rate"] or 0, row["holdout"]["rate"] or 0]) for row in report["holdout"]],
            [(NURTURED, "nurtured"), (HOLDOUT, "holdout")],
        )
    )
    rows = []
    for row in report["holdout"]:
        n, h, ci = row["nurtured"], row["holdout"], row["difference_95ci"]
        rows.append(
            [
                escape(row["track"]),
                f"{_pct(n['rate'])} " + _muted(f"({n['converted']}/{n['leads']})"),
                f"{_pct(h['rate'])} " + _muted(f"({h['converted']}/{h['leads']})"),
                _pct(row["difference"]) + (" " + _muted(f"[{_pct(ci[0])}, {_pct(ci[1])}]") if ci else ""),
                "–" if row["lift"] is None else f"{row['lift'] * 100:+.0f}%",
                f"{escape(_p(row['test']))}<br>{_muted(_verdict(row['test']))}",
            ]
        )
    html.append(_table(["track", "nurtured", "holdout", "difference [95% CI]", "relative lift", "test"], rows))
    html.append(
        "<p class='muted'>A small holdout gives a wide interval: read the confidence interval, not just the "
        "difference. Two-sided two-proportion z-test, or Fisher's exact test when an expected count is below 5.</p>"
    )
    return "".join(html)


def _acceleration_section(report: dict[str, Any]) -> str:
    rows, chart = [], []
    for row in report["acceleration"]:
        n, h = row["nurtured"], row["holdout"]
        move = f"{row['from']} → {row['to']}"
        rows.append(
            [
                escape(move),
                f"{_days(n['median_days'])} / {_days(n['p75_days'])} "
                + _muted(f"(n={n['reached']} of {n['leads_at_start']})"),
                f"{_days(h['median_days'])} / {_days(h['p75_days'])} "
                + _muted(f"(n={h['reached']} of {h['leads_at_start']})"),
            ]
        )
        if n["median_days"] is not None or h["median_days"] is not None:
            chart.append((move, [n["median_days"] or 0, h["median_days"] or 0]))
    return (
        "<h2>Acceleration</h2><p>Days from first reaching one lifecycle stage to first reaching the next: median / "
        "75th percentile; n = leads that made the move, of those that reached the first stage. A lead held out "
        "of any track counts with the holdout.</p>"
        + _bars(chart, [(NURTURED, "nurtured, median"), (HOLDOUT, "holdout, median")], unit="d")
        + _table(["move", "nurtured", "holdout"], rows)
    )


def _engagement_section(report: dict[str, Any]) -> str:
    engagement = report["engagement"]

    def table(dimension: str, headers: list[str]) -> str:
        rows = [
            [
                *(escape(str(k)) for k in row["key"]),
                str(row["sent"]),
                _pct(row["open_rate"]),
                _pct(row["click_rate"]),
                str(row["machine_opened"]),
            ]
            for row in engagement[dimension]
        ]
        return _table([*headers, "sent", "opened", "clicked", "machine-opened"], rows, numeric=4)

    def chart(dimension: str) -> str:
        rows = [
            (" / ".join(row["key"]), [row["open_rate"] or 0, row["click_rate"] or 0]) for row in engagement[dimension]
        ]
        return _bars(rows, [(OPENED, "opened"), (CLICKED, "clicked")])

    return (
        "<h2>Engagement</h2><p>The share of emails sent that a person opened or clicked. Opens and clicks by "
        "security scanners and privacy proxies (Apple Mail Privacy Protection) are recorded apart and left out.</p>"
        + "<h3>By track</h3>"
        + chart("track")
        + table("track", ["track"])
        + "<h3>By step</h3>"
        + table("step", ["track", "step"])
        + "<h3>By content</h3>"
        + chart("content")
        + table("content", ["content"])
        + "<h3>By variant</h3>"
        + table("variant", ["track", "step", "variant"])
    )


def _experiments_section(report: dict[str, Any]) -> str:
    html = ["<h2>A/B tests</h2>"]
    if not report["experiments"]:
        html.append("<p class='muted'>No A/B test ran.</p>")
    for experiment in report["experiments"]:
        rows = []
        for v in experiment["variants"]:
            tested = "open_test" in v
            rows.append(
                [
                    escape(v["variant"]) + ("" if tested else " " + _muted("(control)")),
                    str(v["sent"]),
                    _pct(v["open_rate"]),
                    _pct(v["click_rate"]),
                    f"{escape(_p(v['open_test']))}<br>{_muted(_verdict(v['open_test']))}" if tested else "–",
                    f"{escape(_p(v['click_test']))}<br>{_muted(_verdict(v['click_test']))}" if tested else "–",
                ]
            )
        html.append(f"<h3>{escape(experiment['track'])} / {escape(experiment['step'])}</h3>")
        html.append(
            _bars(
                [(v["variant"], [v["open_rate"] or 0, v["click_rate"] or 0]) for v in experiment["variants"]],
                [(OPENED, "opened"), (CLICKED, "clicked")],
            )
        )
        html.append(_table(["variant", "sent", "opened", "clicked", "opens vs control", "clicks vs control"], rows))
    return "".join(html)


def _outcomes_section(report: dict[str, Any]) -> str:
    t, o = report["totals"], report["outcomes"]
    lifecycle = t["lifecycle"]
    reached_warm = sum(lifecycle.get(s, 0) for s in ("warm",)) + o["sales_ready"]
    funnel = [
        ("leads", t["leads"]),
        ("known by email", t["known_by_email"]),
        ("warm (MQL) or later", reached_warm),
        ("handed to sales (hot)", o["sales_ready"]),
        ("opportunity", o["opportunities"]),
        ("customer", o["customers"]),
    ]
    currency = f" {o['currency']}" if o["currency"] else ""
    return (
        "<h2>Outcomes</h2>"
        + _bars([(name, [float(count)]) for name, count in funnel], [(FUNNEL, "leads")], unit="")
        + _table(
            ["handed to sales", "opportunities", "customers", "lost", "recycled", "revenue won"],
            [
                [
                    str(o["sales_ready"]),
                    str(o["opportunities"]),
                    str(o["customers"]),
                    str(o["lost"]),
                    str(o["recycled"]),
                    f"{o['revenue_won']:,.0f}{escape(currency)}",
                ]
            ],
            numeric=6,
        )
        + f"<p class='muted'>Sales verdicts recorded: {escape(_counts(o['recorded_outcomes']))}. "
        "Warm or later counts leads warm now plus every lead that ever became hot.</p>"
    )


def _promises_section(report: dict[str, Any]) -> str:
    if report["promises"] is None:
        return ""
    rows = [
        [
            "<span class='ok'>kept</span>" if p["kept"] else "<span class='bad'>broken</span>",
            escape(p["promise"]),
            str(p["checked"]),
            str(p["violations"]) + "".join(f"<br>{_muted(example)}" for example in p["examples"]),
        ]
        for p in report["promises"]
    ]
    return "<h2>Promises</h2><p>Checked after the fact on the exported leads, touches and events.</p>" + _table(
        ["", "promise", "checked", "broken"], rows
    )


def render_html(report: dict[str, Any]) -> str:
    source = report["source"]
    simulated = bool(source.get("simulated"))
    title = "Nurture report" + (": simulated market" if simulated else "")
    period = (
        f"{_date(report['period']['from'])} – {_date(report['period']['to'])}" if report["period"] else "no activity"
    )
    if simulated:
        period += (
            f" · seed {source.get('seed')}, {source.get('leads')} simulated people, {source.get('days')} simulated days"
        )
    elif source.get("table"):
        period += f" · table {source['table']}"
    notes = "".join(f"<div class='note'>{escape(note)}</div>" for note in report["notes"])
    t = report["totals"]
    body = [
        _cards(report),
        f"<p class='muted'>Lifecycle now: {escape(_counts(t['lifecycle']))}. "
        f"Consent now: {escape(_counts(t['consent']))}. Fit grades: {escape(_counts(t['fit_grade']))}.</p>",
        _holdout_section(report),
        _acceleration_section(report),
        _engagement_section(report),
        _experiments_section(report),
        _outcomes_section(report),
        _promises_section(report),
    ]
    command = "nurture demo" if simulated else "nurture report"
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><div class='muted'>{escape(period)}</div>{notes}{''.join(body)}"
        f"<p class='muted' style='margin-top:30px'>Generated by <code>{command}</code>; "
        "the same figures are in report.json.</p></body></html>\n"
    )
