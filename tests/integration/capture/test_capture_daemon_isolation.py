"""The daemon keeps its watchdog while most of its cameras hang or refuse, and leaves no capture process.

`edge run` as a process with 2 healthy RTSP cameras beside 4 sources that accept and never answer and 1
refused port: READY, WATCHDOG=1 never more than WATCHDOG_USEC apart over 60 s, no raw FFmpeg/OpenCV line
on its stderr, the refused camera's cause logged as refused, SIGTERM -> exit 0, and every capture process
gone with it.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto, free_port
from helpers.paths import models_dir, require, require_tool
from helpers.rtsp import RtspServer
from helpers.sd_notify import NotifySocket

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

WATCHDOG_S = 2.0
NATIVE_MARKERS = ("[OPENCV", "[ WARN", "[ERROR", "Immediate exit requested", "VIDEOIO", "[rtsp @", "[http @")


def worker_pids_of(parent: int) -> list[int]:
    """Capture processes of ``parent`` (they carry ``--parent PID``; forks of a launcher carry its
    command line), alive or zombie."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"edge.capture_worker" in args and str(parent).encode() in args:
            found.append(int(entry.name))
    return found


def test_daemon_keeps_its_watchdog_beside_hanging_and_refused_cameras(
    tmp_path: Path,
    rtsp_server: Callable[..., RtspServer],
    clip30: Path,
    clip30_b: Path,
    silent_port: int,
) -> None:
    require_tool("mosquitto")
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    server = rtsp_server(clip30, clip30_b)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    bad = {
        "hang1": f"http://127.0.0.1:{silent_port}/video.mjpg",
        "hang2": f"http://127.0.0.1:{silent_port}/cgi-bin/stream",
        "hang3": f"rtsp://127.0.0.1:{silent_port}/stream1",
        "hang4": f"rtsp://127.0.0.1:{silent_port}/stream2",
        "refused": f"rtsp://127.0.0.1:{refused}/stream",
    }
    cameras = "".join(
        f"  - {{name: {name}, source: '{url}', fps: 5}}\n"
        for name, url in [("good0", server.url("/stream0")), ("good1", server.url("/stream1")), *bad.items()]
    )
    with Mosquitto(tmp_path / "broker") as broker, NotifySocket.temporary() as notify:
        config = tmp_path / "edge.yaml"
        config.write_text(
            f"node: isolation\nstate_dir: {tmp_path / 'state'}\nshutdown_timeout: 15\n"
            f"model: {{path: {model}, classes: [person], batch_size: 2}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
            f"metrics: {{host: 127.0.0.1, port: {free_port()}}}\n"
            f"cameras:\n{cameras}",
            encoding="utf-8",
        )
        stderr_path = tmp_path / "edge.stderr"
        env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
        with stderr_path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=err, env=env, text=True,
            )
        try:
            assert notify.wait_for("READY=1", 90.0), stderr_path.read_text()
            pings: list[float] = []
            t_ready = time.monotonic()
            t_end = t_ready + 60.0
            while (left := t_end - time.monotonic()) > 0:
                m = notify.receive(min(left, 0.5))
                if m is not None and "WATCHDOG=1" in m.splitlines():
                    pings.append(time.monotonic())
                assert proc.poll() is None, stderr_path.read_text()[-3000:]
            workers = worker_pids_of(proc.pid)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    stderr = stderr_path.read_text(encoding="utf-8", errors="replace")
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    first = pings[0] - t_ready if pings else float("inf")
    print(f"\n{len(pings)} watchdog pings in 60 s, the first {first:.1f} s after READY, longest gap "
          f"{max(gaps):.2f} s; {len(workers)} capture processes")
    # Pings start with the first processed frame (the unit's WatchdogSec is 60 s; capture processes
    # start and cameras send a key frame first), then never stop: every gap stays below WATCHDOG_USEC.
    assert first < 30.0
    assert len(pings) >= 0.8 * (60.0 - first)
    assert max(gaps) < WATCHDOG_S, gaps
    assert code == 0, stderr[-3000:]
    assert len(workers) in (7, 8)  # one per camera, plus the launcher where the daemon forks them from one
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and worker_pids_of(proc.pid):
        time.sleep(0.05)
    assert worker_pids_of(proc.pid) == []
    for marker in NATIVE_MARKERS:
        assert marker not in stderr, stderr[-3000:]
    assert "camera=refused connecting -> offline: connection refused" in stderr
    assert "camera=hang1 connecting -> offline: no answer within open_timeout" in stderr
