"""The `nurture` command as a person runs it: its own process, in an environment
with no AWS configuration at all (no AWS_* variables, a HOME without ~/.aws)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_DIR

NURTURE = Path(sys.executable).with_name("nurture")  # the console script pyproject.toml declares


def run_nurture(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env["HOME"] = str(home)
    return subprocess.run(
        [str(NURTURE), *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed, checked to be one line on stderr and no traceback."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{result.stderr}"
    return lines[0]
