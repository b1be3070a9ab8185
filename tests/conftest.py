"""Shared fixtures: the real models, videos and MOT data (see ``helpers/paths.py`` for the lookup rules).

Tests import helpers from ``helpers.*`` modules, never from ``conftest`` (nested conftest files would
shadow that name).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.leftovers import broker_up, leftovers, retained
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left retained messages of a test node on the machine's broker.

    A user's Home Assistant listens on 127.0.0.1:1883: a leftover discovery config is a phantom device
    there (see helpers/leftovers.py). Tests that need a broker use a private one; the few that use the
    machine's broker clear what their node published. Under pytest-xdist only the controller looks,
    after every worker is done: a worker that finished first would see another's test mid-run.
    """
    if hasattr(session.config, "workerinput") or not broker_up():
        return
    found = leftovers(retained())
    if not found:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        shown = ", ".join(found[:10])
        reporter.write_line(f"retained messages of test nodes left on 127.0.0.1:1883: {shown}", red=True)
    if exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
