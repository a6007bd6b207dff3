#!/usr/bin/env python3
"""Choosing the track function's SQS batching window and batch size from
measurements: bench/nurture_bench/windows.py (bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nurture_bench, however this file is run

from nurture_bench.windows import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
