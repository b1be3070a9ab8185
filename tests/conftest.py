"""Shared fixtures: the real models, videos and MOT data (see ``helpers/paths.py`` for the lookup rules).

Tests import helpers from ``helpers.*`` modules, never from ``conftest`` (nested conftest files would
shadow that name).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import data_dir, models_dir, require


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
