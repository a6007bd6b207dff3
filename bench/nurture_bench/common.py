"""What every part of the benchmark shares: the project's paths, the region,
the progress log (stderr; stdout carries the report only) and loading a handler."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TRACK_APP = ROOT / "functions" / "track" / "app.py"
API_APP = ROOT / "functions" / "api" / "app.py"
CONFIG_DIR = ROOT / "config"
REGION = "us-east-1"

# Powertools prints EMF metrics on stdout; stdout is reserved for the report.
# (With POWERTOOLS_METRICS_DISABLED=true, flush_metrics keeps the values, so they
# pile up across invocations and add_metric prints them every 100 values.)
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_handler(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
