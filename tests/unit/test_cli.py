"""`nurture` as a person runs it, on a machine without any AWS configuration:
its version, and each failure it can explain as one line on stderr with exit
status 1, never a traceback. (A report from a table that is there, and one
that is not: tests/integration/test_report_cli.py.)"""

from __future__ import annotations

import socket
from importlib.metadata import version

import pytest

from tests.cli import one_line_error, run_nurture


@pytest.fixture
def home(tmp_path):
    """An empty home: no ~/.aws."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def closed_port():
    """A port on this machine that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_version_prints_the_installed_version(home):
    result = run_nurture("--version", home=home)

    assert result.returncode == 0
    assert result.stdout.strip() == f"nurture {version('nurture')}"


def test_outbox_with_no_stack_running_says_so(home, closed_port):
    # When the outbox is asked of a local stack that is not running
    result = run_nurture("outbox", "--aws-port", str(closed_port), home=home)

    # Then one line says so, and how to start one
    message = one_line_error(result)
    assert message.startswith(f"nurture outbox: no local stack at http://127.0.0.1:{closed_port}")
    assert "make serve" in message


def test_report_on_an_endpoint_nobody_answers_says_which(home, closed_port, tmp_path):
    # When the README's local report runs with no local stack there (and no AWS
    # configuration: the endpoint gets the local stack's region and credentials)
    endpoint = f"http://127.0.0.1:{closed_port}"
    out = tmp_path / "out"
    result = run_nurture(
        "report", "--table", "nurture-local-LeadsTable", "--endpoint", endpoint, "--out", str(out), home=home
    )

    # Then one line names the endpoint it could not reach, and nothing is written
    message = one_line_error(result)
    assert message == f"nurture report: cannot reach {endpoint}: is the local stack running (`make serve`)?"
    assert not out.exists()


def test_report_on_aws_without_a_region_asks_for_one(home):
    result = run_nurture("report", "--table", "LeadsTable", home=home)

    message = one_line_error(result)
    assert message.startswith("nurture report: no AWS region: pass --region")


def test_report_with_an_invalid_configuration_names_the_file(home, tmp_path, closed_port):
    # Given a configuration folder without sources.yaml
    config = tmp_path / "config"
    config.mkdir()

    # When the report runs with it
    endpoint = f"http://127.0.0.1:{closed_port}"
    result = run_nurture("report", "--table", "t", "--endpoint", endpoint, "--config", str(config), home=home)

    # Then it stops before reading the table, naming the file
    message = one_line_error(result)
    assert message == f"nurture report: invalid configuration: sources.yaml: <root>: file not found in {config}"


def test_serve_on_a_port_in_use_says_which(home):
    # Given something already listening where the AWS emulator would
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When the local stack is started there (it used to wait forever)
        result = run_nurture("serve", "--aws-port", str(port), "--port", "0", home=home, timeout=30)

    # Then one line names the port and how to choose another
    message = one_line_error(result)
    assert message.startswith(f"nurture serve: cannot start the local stack: --aws-port {port} in use")
    assert "--aws-port and --port" in message
