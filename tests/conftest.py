"""Shared fixtures: where the real models, videos and MOT data live.

Real parts are found through environment variables with ``../shared`` next to the repository as the
default (``EDGE_SHARED_DIR``, or ``EDGE_MODELS_DIR`` / ``EDGE_DATA_DIR`` for just one of them). A test that
needs one and cannot find it fails under ``CI=true`` and is skipped elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
def yolov8n_path() -> Path:
    return require(models_dir() / "yolov8n.onnx", "yolov8n.onnx")


@pytest.fixture(scope="session")
def yolo11n_320_path() -> Path:
    return require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")


@pytest.fixture(scope="session")
def video_dir() -> Path:
    return require(data_dir() / "video", "shared videos")


@pytest.fixture(scope="session")
def mot17_dir() -> Path:
    return require(data_dir() / "mot17", "MOT17 data")
