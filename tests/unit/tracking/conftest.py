"""Fixtures of the tracking tests: the plain-Python reference tracker and MOT17 sequences."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "bytetrack_reference.py"


def _load_reference() -> Any:
    name = "bytetrack_reference"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REFERENCE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference() -> Any:
    """The module ``tests/reference/bytetrack_reference.py`` (class ``ReferenceByteTrack``)."""
    return _load_reference()
