#!/usr/bin/env python3
"""Ingest benchmark: a synthetic month of website traffic replayed through the
real track handler (functions/track/app.py), in-process.

    python bench/ingest.py [--events 20000] [--leads 2000] [--batch 100] [--seed 7]

The benchmark itself is the package next to this file, `nurture_bench`
(one module per concern); bench/README.md explains every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nurture_bench, however this file is run

from nurture_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
