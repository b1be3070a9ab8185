"""Benchmarks reachable from the CLI (``edge bench <name>``); each module has ``main(argv) -> int``."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The shared data (``EDGE_DATA_DIR``, ``EDGE_SHARED_DIR``/data, or ``../shared/data`` next to a
    source checkout), as the tests find it."""
    shared = Path(os.environ.get("EDGE_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
    return Path(os.environ.get("EDGE_DATA_DIR", shared / "data"))
