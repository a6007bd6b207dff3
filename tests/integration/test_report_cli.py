"""`nurture report` on a table: what the track function stored, read back with a
paged Scan, reported as JSON and written out as HTML and an export; and the
README's local command in its own process, on a machine without any AWS
configuration, against a DynamoDB emulator like the local stack's."""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest

from nurture_tools.cli import main
from tests.cli import one_line_error, run_nurture
from tests.conftest import CONFIG_DIR
from tests.integration.conftest import ingest_record

TABLE = "nurture-local-LeadsTable"


@pytest.fixture
def emulator():
    """moto's server on a free port of this machine, as `nurture serve` runs it; its endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    yield endpoint
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    server.stop()


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


def test_the_readme_local_report_needs_no_aws_configuration(emulator, tmp_path):
    # Given the local stack's table (empty) in the emulator's us-east-1
    boto3.client("dynamodb", endpoint_url=emulator, region_name="us-east-1").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )

    # When the README's command runs where no AWS region or credentials are configured
    out = tmp_path / "out"
    result = run_nurture("report", "--table", TABLE, "--endpoint", emulator, "--out", str(out), home=tmp_path)

    # Then it reports, and leaves the page, the figures and the export
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert {p.name for p in out.iterdir()} >= {"report.html", "report.json", "leads.jsonl"}
    assert json.loads((out / "report.json").read_text())["totals"]["leads"] == 0


def test_a_table_that_is_not_there_is_one_line(emulator, tmp_path):
    # When the report is asked of a table the emulator does not hold
    result = run_nurture("report", "--table", TABLE, "--endpoint", emulator, home=tmp_path)

    # Then one line names the table, the endpoint and the region it looked in
    message = one_line_error(result)
    assert message == f"nurture report: no table {TABLE} at {emulator} (region us-east-1)"


def test_tag_items_upgrades_a_table_written_before_items_carried_their_kind(emulator, tmp_path):
    from nurture.store.schema import table_definition

    # Given a table with an enrollment written before the kind attribute
    client = boto3.client("dynamodb", endpoint_url=emulator, region_name="us-east-1")
    client.create_table(**table_definition("old-leads"))
    old = {"pk": "LEAD#L1", "sk": "ENR#welcome#001", "enrollment_id": "E1", "lead_id": "L1", "track_id": "welcome"}
    client.put_item(TableName="old-leads", Item={k: {"S": v} for k, v in old.items()} | {"seq": {"N": "1"}})

    # When the command runs twice, with no AWS configuration but the endpoint
    first = run_nurture("tag-items", "--table", "old-leads", "--endpoint", emulator, home=tmp_path)
    second = run_nurture("tag-items", "--table", "old-leads", "--endpoint", emulator, home=tmp_path)

    # Then the first tags the enrollment and the second finds nothing to do
    assert (first.returncode, first.stdout.strip()) == (0, "old-leads: 1 enrollment"), first.stderr
    assert (second.returncode, second.stdout.strip()) == (0, "old-leads: nothing to tag"), second.stderr
    item = client.get_item(TableName="old-leads", Key={"pk": {"S": "LEAD#L1"}, "sk": {"S": "ENR#welcome#001"}})
    assert item["Item"]["t"] == {"S": "enrollment"}


def test_tag_items_against_no_table_is_one_line(emulator, tmp_path):
    result = run_nurture("tag-items", "--table", "missing", "--endpoint", emulator, home=tmp_path)
    assert result.returncode == 1
    assert one_line_error(result) == f"nurture tag-items: no table missing at {emulator} (region us-east-1)"
