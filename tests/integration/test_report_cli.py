"""`nurture report` on a table: what the track function stored, read back with a
paged Scan, reported as JSON and written out as HTML and an export."""

from __future__ import annotations

import json

from nurture_tools.cli import main
from tests.conftest import CONFIG_DIR
from tests.integration.conftest import ingest_record


def _identify(user, email):
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"id-{user}",
        "traits": {"email": email, "title": "VP Revenue Operations", "industry": "Fintech", "employees": 1200},
    }


def test_the_report_reads_a_table_and_writes_html_json_and_the_export(deployed, tmp_path, capsys):
    from track.app import handler

    # Given a table holding two identified leads, one of them warm after a webinar and the ROI calculator
    handler(
        {
            "Records": [
                ingest_record(_identify("u1", "ana@globex.com")),
                ingest_record(_identify("u2", "bo@initech.com")),
                ingest_record(
                    {"type": "track", "userId": "u1", "messageId": "r-1", "event": "ROI Calculator Completed"}
                ),
                ingest_record(
                    {
                        "type": "track",
                        "userId": "u1",
                        "messageId": "w-1",
                        "event": "Webinar Attended",
                        "properties": {"webinar_id": "pipeline-hygiene"},
                    }
                ),
            ]
        },
        None,
    )

    # When the report runs against it
    status = main(
        ["report", "--table", deployed.env["TABLE_NAME"], "--config", str(CONFIG_DIR), "--out", str(tmp_path), "--json"]
    )

    # Then it counts both leads and the warm one, and leaves the page and the export
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["leads"] == 2
    assert report["totals"]["lifecycle"] == {"lead": 1, "warm": 1}
    assert report["source"]["simulated"] is False
    assert all(p["kept"] for p in report["promises"])
    assert {p.name for p in tmp_path.iterdir()} >= {"report.html", "report.json", "leads.jsonl", "events.jsonl"}
    leads = [json.loads(line) for line in (tmp_path / "leads.jsonl").read_text().splitlines()]
    assert sorted(lead["email"] for lead in leads) == ["ana@globex.com", "bo@initech.com"]
