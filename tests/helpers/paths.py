"""Where the real models, videos and MOT data live, and how a test asks for a real part.

Real parts are found through environment variables with ``../shared`` next to the repository as the
default (``EDGE_SHARED_DIR``, or ``EDGE_MODELS_DIR`` / ``EDGE_DATA_DIR`` for just one of them). A test that
needs one and cannot find it fails under ``CI=true`` and is skipped elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shared_dir() -> Path:
    return Path(os.environ.get("EDGE_SHARED_DIR", REPO_ROOT.parent / "shared"))


def models_dir() -> Path:
    return Path(os.environ.get("EDGE_MODELS_DIR", _shared_dir() / "models"))


def data_dir() -> Path:
    return Path(os.environ.get("EDGE_DATA_DIR", _shared_dir() / "data"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise fail under CI and skip elsewhere."""
    if path.exists():
        return path
    message = f"{what} not found at {path} (set EDGE_SHARED_DIR / EDGE_MODELS_DIR / EDGE_DATA_DIR)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Return the path of an executable; fail under CI and skip elsewhere if it is missing."""
    import shutil

    found = shutil.which(name)
    if found is None:
        message = f"required program {name!r} is not installed (.ci/run installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found
