#!/usr/bin/env python3
"""Where a browser event's write units could go, modelled on a real replay:
bench/nurture_bench/storage.py (bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nurture_bench, however this file is run

from nurture_bench.storage import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
