"""Cold start: each handler module's import time versus `import boto3`, in fresh
subprocesses with the Lambda's environment, and the import followed by what the
first invocation builds before its first AWS call."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .common import API_APP, REGION, ROOT, TRACK_APP, log

_IMPORT_SNIPPET = """
import sys, time
started = time.perf_counter()
{body}
print((time.perf_counter() - started) * 1000)
"""
_IMPORT_MODULE = """
import importlib.util
sys.path.insert(0, {folder!r})
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
"""


def _import_env(lambda_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_"))}
    env.update(lambda_env)
    env.update({"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "PYTHONDONTWRITEBYTECODE": ""})
    env.pop("PYTHONDONTWRITEBYTECODE")
    return env


def _import_ms(body: str, cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    code = _IMPORT_SNIPPET.format(body=body)
    times = []
    for i in range(runs + 1):  # the first run warms the bytecode cache and is dropped
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        if out.returncode:
            raise RuntimeError(f"import failed:\n{out.stderr}")
        if i:
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def _import_breakdown(body: str, cwd: Path, env: dict[str, str], top: int = 6) -> dict[str, float]:
    """Top-level packages by cumulative import time (python -X importtime)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", body], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    totals: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if match and len(match.group(3)) == 1:  # first level below the script
            totals[match.group(4).split(".")[0]] += int(match.group(2))
    return {name: round(us / 1000, 1) for name, us in totals.most_common(top)}


def measure_imports(lambda_env: dict[str, str], runs: int) -> dict[str, Any]:
    env = _import_env(lambda_env)
    results: dict[str, Any] = {"handler_import_ms": {}, "import_ratio": {}, "import_breakdown_ms": {}}
    boto = _import_ms("import boto3", ROOT, env, runs)
    results["boto3_import_ms"] = round(statistics.median(boto), 1)
    results["import_breakdown_ms"]["boto3"] = _import_breakdown("import boto3", ROOT, env)
    for name, path in (("track", TRACK_APP), ("api", API_APP)):
        body = _IMPORT_MODULE.format(folder=str(path.parent), path=str(path))
        times = _import_ms(body, path.parent, env, runs)
        median = statistics.median(times)
        results["handler_import_ms"][name] = round(median, 1)
        results["import_ratio"][name] = round(median / results["boto3_import_ms"], 2)
        results["import_breakdown_ms"][name] = _import_breakdown("import sys\n" + body, path.parent, env)
        log(
            f"import {name}: {median:.1f} ms (runs {', '.join(f'{t:.0f}' for t in times)}); "
            f"boto3 {results['boto3_import_ms']:.1f} ms"
        )
    # The whole cold start up to the first AWS call: the import, then what the
    # first invocation builds (config, boto3 and its clients). No AWS call is made.
    results["cold_start_to_first_call_ms"] = {}
    for name, path, factory in (("track", TRACK_APP, "get_tracker"), ("api", API_APP, "get_ingestor")):
        body = _IMPORT_MODULE.format(folder=str(path.parent), path=str(path))
        body += f"from nurture.wiring import {factory}\n{factory}()\n"
        results["cold_start_to_first_call_ms"][name] = round(
            statistics.median(_import_ms(body, path.parent, env, runs)), 1
        )
    log(f"cold start up to the first AWS call: {results['cold_start_to_first_call_ms']}")
    return results
