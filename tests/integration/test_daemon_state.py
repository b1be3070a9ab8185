"""`edge run` with a state directory in trouble: unwritable at start, corrupt files, read-only mid-run.

- unwritable at start: one line naming the path, exit 73 (EX_CANTCREAT), no traceback, no READY;
- a corrupt outbox and a corrupt counters file: each moved aside with one line naming it; the daemon starts;
- the state directory stops taking writes while running (its tmpfs filled up: a read-only remount is refused
  while files are open for writing, and root ignores permissions): one error line, events keep flowing,
  and SIGTERM still stops it cleanly ("edge stopped", exit 0, ``offline`` published).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.daemon import error_lines, stop
from helpers.mosquitto import Mosquitto, Subscriber
from helpers.paths import REPO_ROOT, data_dir, models_dir, require, require_tool
from helpers.sd_notify import NotifySocket

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

NODE = "statetest"


def _config(path: Path, state: Path, mqtt_port: int | None) -> Path:
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    video = require(data_dir() / "video" / "pedestrians.mp4", "pedestrians.mp4")
    mqtt = f"{{host: 127.0.0.1, port: {mqtt_port}, keepalive: 5}}" if mqtt_port else "{enabled: false}"
    path.write_text(
        f"""
node: {NODE}
state_dir: {state}
shutdown_timeout: 10
model: {{path: {model}, batch_size: 1, classes: [person]}}
mqtt: {mqtt}
metrics: {{enabled: false}}
cameras:
  - name: plaza
    source: {video}
    loop: true
    realtime: true
    fps: 5
    lines:
      - {{name: walkway, points: [[430, 120], [430, 440]]}}
""",
        encoding="utf-8",
    )
    return path


def _launch(config: Path, notify: NotifySocket) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with NotifySocket.temporary() as sock:
        yield sock


@contextlib.contextmanager
def tmpfs(where: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("a read-only state directory needs root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_unwritable_state_dir_at_start_is_one_line_naming_it_and_exit_73(
    tmp_path: Path, notify: NotifySocket
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory's parent should be")
    state = blocker / "state"
    t0 = time.monotonic()
    proc = _launch(_config(tmp_path / "edge.yaml", state, None), notify)
    code, err = stop(proc, signal_it=False)
    assert code == 73, err
    assert time.monotonic() - t0 < 15.0
    assert "Traceback" not in err, err
    errors = error_lines(err)
    assert len(errors) == 1, err
    assert str(state) in errors[0]
    assert not any("READY=1" in m.splitlines() for m in notify.drain())


def test_corrupt_outbox_and_counters_are_moved_aside_and_the_daemon_starts(
    tmp_path: Path, notify: NotifySocket
) -> None:
    require_tool("mosquitto")
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.sqlite3").write_bytes(b"garbage, not SQLite " * 200)
    (state / "counts-plaza.json").write_text('{"version": 1, "camera": "pla')  # truncated
    with Mosquitto(tmp_path / "broker") as broker:
        proc = _launch(_config(tmp_path / "edge.yaml", state, broker.port), notify)
        ready = notify.wait_for("READY=1", 90)
        deadline = time.monotonic() + 60  # the counts are read at the camera's first frame
        while not list(state.glob("counts-plaza.json.corrupt-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        code, err = stop(proc)
    assert ready, err
    assert code == 0, err
    assert "Traceback" not in err, err
    assert [ln for ln in error_lines(err) if "outbox.sqlite3" in ln and "corrupt" in ln], err
    assert list(state.glob("outbox.sqlite3.corrupt-*"))
    assert [ln for ln in error_lines(err) if "counts-plaza.json" in ln and "moved it to" in ln], err
    assert list(state.glob("counts-plaza.json.corrupt-*"))


def fill(directory: Path) -> None:
    """Write a filler file until the file system is full."""
    with (directory / "filler").open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 20))
            f.flush()


def test_state_dir_unwritable_mid_run_one_line_and_a_cleanstop(tmp_path: Path, notify: NotifySocket) -> None:
    require_tool("mosquitto")
    log_path = tmp_path / "edge.stderr"
    with tmpfs(tmp_path / "state") as state, Mosquitto(tmp_path / "broker") as broker:
        config = _config(tmp_path / "edge.yaml", state, broker.port)
        # A zone over the whole picture: every person is an event, so the outbox grows during the outage.
        config.write_text(
            config.read_text()
            + "    zones:\n      - {name: all, polygon: [[0, 0], [1919, 0], [1919, 1079], [0, 1079]]}\n"
        )
        sub = Subscriber(
            broker.host, broker.port, [f"edge/{NODE}/#"], client_id="state-sub", clean_session=False
        )
        sub.start()
        env = {**os.environ, "NOTIFY_SOCKET": notify.path, "PYTHONUNBUFFERED": "1"}
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "run", "--config", str(config)],
                cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
            )  # fmt: skip
        try:
            assert notify.wait_for("READY=1", 90), log_path.read_text()
            broker.stop()  # rows pile up in the outbox: the database must grow
            fill(state)
            deadline = time.monotonic() + 120
            while "cannot be written" not in log_path.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.5)
            assert "cannot be written" in log_path.read_text(), log_path.read_text()
            broker.start()  # the disk is still full: events go out from memory
            event_topic = f"edge/{NODE}/plaza/events/"
            assert sub.wait_for(lambda ms: any(m.topic.startswith(event_topic) for m in ms), 60), (
                log_path.read_text()
            )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        time.sleep(0.5)
        availability = sub.last(f"edge/{NODE}/availability")
        sub.stop()
    err = log_path.read_text()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "edge stopped" in err
    outbox_lines = [ln for ln in error_lines(err) if "outbox" in ln and "cannot be written" in ln]
    assert len(outbox_lines) == 1, err
    assert availability is not None
    assert availability.payload == b"offline"
