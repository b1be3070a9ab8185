"""Startup and shutdown of `edge run` as a process, with real signals and a real ``NOTIFY_SOCKET``.

Each case is an expected failure or an early signal; each must end the process quickly with one clear
line, a defined exit code, no traceback and no READY=1 (systemd must not think a broken daemon started):

- a model whose warm-up fails (its real output shape differs from the declared one): exit 69 < 5 s;
- the metrics port already taken: exit 69 < 5 s;
- SIGTERM 0.5 s after launch: exit 0, no READY;
- SIGHUP 0.2 s after launch: no death, READY, then SIGTERM exits 0;
- a model with custom class names in a ``labels_file`` validates and runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.daemon import error_lines, stop
from helpers.paths import REPO_ROOT, data_dir, models_dir, require
from helpers.sd_notify import NotifySocket
from helpers.tiny_onnx import lying_detect_model

pytestmark = [pytest.mark.integration, pytest.mark.timing]


def _config(
    path: Path, *, model: Path, metrics_port: int = 0, extra_model: str = "", classes: str = "[person]"
) -> Path:
    video = require(data_dir() / "video" / "pedestrians.mp4", "pedestrians.mp4")
    path.write_text(
        f"""
node: lifecycle-test
state_dir: {path.parent / "state"}
shutdown_timeout: 10
model: {{path: {model}, batch_size: 1{extra_model}}}
mqtt: {{enabled: false}}
metrics: {{host: 127.0.0.1, port: {metrics_port}}}
cameras:
  - name: plaza
    source: {video}
    loop: true
    realtime: true
    fps: 5
    lines:
      - {{name: walkway, points: [[430, 120], [430, 440]], classes: {classes}}}
""",
        encoding="utf-8",
    )
    return path


def _launch(config: Path, notify: NotifySocket) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with NotifySocket.temporary() as sock:
        yield sock


def test_warmup_failure_exits_69_fast_with_one_line_and_no_ready(
    tmp_path: Path, notify: NotifySocket
) -> None:
    model = lying_detect_model(tmp_path / "lying.onnx", ["worker", "cone"])
    config = _config(tmp_path / "edge.yaml", model=model, classes="[worker]")
    t0 = time.monotonic()
    proc = _launch(config, notify)
    code, err = stop(proc, 30, signal_it=False)
    elapsed = time.monotonic() - t0
    messages = notify.drain()
    assert code == 69, err
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert "Traceback" not in err, err
    errors = error_lines(err)
    assert len(errors) == 1, err
    assert "does not match" in errors[0]
    assert "lying.onnx" in errors[0]
    assert not any("READY=1" in m.splitlines() for m in messages), messages


def test_metrics_port_in_use_exits_fast_with_one_line(tmp_path: Path, notify: NotifySocket) -> None:
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path / "edge.yaml", model=model, metrics_port=port)
        t0 = time.monotonic()
        proc = _launch(config, notify)
        code, err = stop(proc, 30, signal_it=False)
        elapsed = time.monotonic() - t0
    assert code == 69, err
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert "Traceback" not in err, err
    errors = error_lines(err)
    assert len(errors) == 1, err
    assert f"127.0.0.1:{port}" in errors[0]
    assert not any("READY=1" in m.splitlines() for m in notify.drain())


def test_sigterm_half_a_second_after_launch_exits_0_without_ready(
    tmp_path: Path, notify: NotifySocket
) -> None:
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    config = _config(tmp_path / "edge.yaml", model=model)
    proc = _launch(config, notify)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    code, err = stop(proc, 20, signal_it=False)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert not error_lines(err), err
    assert not any("READY=1" in m.splitlines() for m in notify.drain())


def test_sighup_during_startup_does_not_kill_and_the_daemon_starts(
    tmp_path: Path, notify: NotifySocket
) -> None:
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    config = _config(tmp_path / "edge.yaml", model=model)
    proc = _launch(config, notify)
    try:
        time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)
        assert notify.wait_for("READY=1", timeout_s=60), proc.poll()
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        code, err = stop(proc, 30, signal_it=False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "reload: configuration applied" in err


def test_custom_class_names_from_a_labels_file_run(tmp_path: Path, notify: NotifySocket) -> None:
    from edge.config import COCO_CLASSES

    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    (tmp_path / "labels.txt").write_text("\n".join(["worker", *COCO_CLASSES[1:]]), encoding="utf-8")
    config = _config(
        tmp_path / "edge.yaml",
        model=model,
        extra_model=", classes: [worker], labels_file: labels.txt",
        classes="[worker]",
    )
    proc = _launch(config, notify)
    try:
        assert notify.wait_for("READY=1", timeout_s=60), proc.poll()
        time.sleep(2.0)  # frames flow through the detector and the pipeline
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        code, err = stop(proc, 30, signal_it=False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert not error_lines(err), err
    assert "classes=80" in err
