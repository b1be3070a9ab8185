"""The daemon as users run it: `edge run` as a process, real RTSP, real mosquitto, real signals.

One scenario per test, each with its own broker, RTSP server and state directory:
- lifecycle: READY=1, progress-driven WATCHDOG=1, events on MQTT, SIGHUP reload (good and broken file),
  no WATCHDOG=1 once the camera is gone, SIGTERM -> STOPPING=1, exit 0, `offline`, empty outbox;
- a real Prometheus scrapes the daemon for 30 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto, Subscriber, free_port
from helpers.paths import models_dir, require, require_tool
from helpers.prometheus import Prometheus
from helpers.rtsp import RtspServer, make_clip, require_rtsp
from helpers.sd_notify import NotifySocket

from edge.outbox import Outbox

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

NODE = "itest"


def _config(
    path: Path, *, rtsp_url: str, mqtt_port: int, metrics_port: int, state_dir: Path, line: str = "walkway"
) -> Path:
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    path.write_text(
        f"""
node: {NODE}
state_dir: {state_dir}
shutdown_timeout: 15
model: {{path: {model}, classes: [person], batch_size: 1}}
tracker: {{track_thresh: 0.5}}
mqtt: {{host: 127.0.0.1, port: {mqtt_port}, keepalive: 5}}
metrics: {{host: 127.0.0.1, port: {metrics_port}}}
cameras:
  - name: plaza
    source: {rtsp_url}
    fps: 10
    stall_timeout: 2
    coordinates: normalized
    lines:
      - {{name: {line}, points: [[0.45, 0.2], [0.45, 0.82]], classes: [person]}}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    config: Path
    metrics_port: int
    state_dir: Path
    stderr_path: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
            if m and m.group(1) == name:
                got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
                if all(part in got.split(",") for part in want.split(",") if part):
                    return float(m.group(3))
        return None

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def clip(video_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_rtsp()
    out = tmp_path_factory.mktemp("daemon_clip") / "plaza_15fps.mp4"
    return make_clip(video_dir / "pedestrians.mp4", out, fps=15, seconds=14)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_tool("mosquitto")
    with Mosquitto(tmp_path / "broker") as b:
        yield b


def _start_daemon(tmp_path: Path, url: str, broker: Mosquitto, env_extra: dict[str, str]) -> Daemon:
    metrics_port = free_port()
    state_dir = tmp_path / "state"
    config = _config(
        tmp_path / "edge.yaml", rtsp_url=url, mqtt_port=broker.port, metrics_port=metrics_port,
        state_dir=state_dir,
    )
    stderr_path = tmp_path / "edge.stderr"
    env = {**os.environ, **env_extra}
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            text=True,
        )
    return Daemon(proc, config, metrics_port, state_dir, stderr_path)


def _wait_for_frames(daemon: Daemon, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert daemon.proc.poll() is None, daemon.stderr()
        try:
            if (daemon.metric("edge_frames_processed_total", camera="plaza") or 0) > 0:
                return
        except OSError:
            pass  # the HTTP endpoint is not up yet
        time.sleep(0.5)
    pytest.fail("the daemon processed no frames:\n" + daemon.stderr())


def _stop(daemon: Daemon) -> int:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
    try:
        return daemon.proc.wait(30)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        daemon.proc.wait(10)
        pytest.fail("edge did not exit within 30 s of SIGTERM")


def test_lifecycle_events_reload_watchdog_and_sigterm(
    tmp_path: Path, clip: Path, broker: Mosquitto
) -> None:
    server = RtspServer(clip, log_dir=tmp_path).start()
    notify = NotifySocket.temporary()
    sub = Subscriber("127.0.0.1", broker.port, [f"edge/{NODE}/#"]).start()
    daemon = _start_daemon(
        tmp_path, server.url(), broker, {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}
    )
    try:
        assert notify.wait_for("READY=1", 90), daemon.stderr()

        # Frames flow: the watchdog pings (interval = WATCHDOG_USEC / 2 = 0.5 s).
        _wait_for_frames(daemon)
        notify.drain()
        time.sleep(3.0)
        pings = sum("WATCHDOG=1" in m.splitlines() for m in notify.drain())
        assert pings >= 3, daemon.stderr()

        # Real events on the broker, and retained availability.
        event_topic = f"edge/{NODE}/plaza/events/line_crossing"
        assert sub.wait_for(lambda msgs: any(m.topic == event_topic for m in msgs), 60), daemon.stderr()
        event = json.loads(sub.on(event_topic)[0].payload)
        assert event["line"] == "walkway"
        assert event["camera"] == "plaza"
        availability = sub.last(f"edge/{NODE}/availability")
        assert availability is not None
        assert availability.payload == b"online"

        # SIGHUP with a changed line: applied without a reconnect.
        reconnects = daemon.metric("edge_capture_reconnects_total", camera="plaza") or 0.0
        _config(
            daemon.config, rtsp_url=server.url(), mqtt_port=broker.port, metrics_port=daemon.metrics_port,
            state_dir=daemon.state_dir, line="walkway2",
        )
        daemon.proc.send_signal(signal.SIGHUP)
        new_state = f"edge/{NODE}/plaza/lines/walkway2/state"
        assert sub.wait_for(lambda msgs: any(m.topic == new_state for m in msgs), 20), daemon.stderr()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{daemon.metrics_port}/cameras/plaza/geometry.json", timeout=5
        ) as r:
            assert [ln["name"] for ln in json.loads(r.read())["lines"]] == ["walkway2"]
        assert (daemon.metric("edge_capture_reconnects_total", camera="plaza") or 0.0) == reconnects
        assert daemon.metric("edge_camera_state", camera="plaza", state="online") == 1.0
        assert "reload: configuration applied" in daemon.stderr()

        # SIGHUP with a broken file: rejected with the usual error lines, the old config keeps running.
        daemon.config.write_text(daemon.config.read_text().replace("fps: 10", "fps: -3"), encoding="utf-8")
        processed = daemon.metric("edge_frames_processed_total", camera="plaza") or 0.0
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "reload rejected" not in daemon.stderr() and time.monotonic() < deadline:
            time.sleep(0.2)
        err = daemon.stderr()
        assert re.search(r"reload rejected: .*edge\.yaml:\d+: cameras\.0\.fps: ", err), err
        time.sleep(2.0)
        assert (daemon.metric("edge_frames_processed_total", camera="plaza") or 0.0) > processed
        assert daemon.proc.poll() is None

        # The camera dies: frames stop, so the watchdog pings stop.
        server.stop()
        time.sleep(1.5)  # frames in flight drain
        notify.drain()
        time.sleep(3.0)
        assert not any("WATCHDOG=1" in m.splitlines() for m in notify.drain()), daemon.stderr()

        # SIGTERM: STOPPING=1, exit 0, offline, nothing left in the outbox.
        code = _stop(daemon)
        assert code == 0, daemon.stderr()
        assert any("STOPPING=1" in m.splitlines() for m in [*notify.messages, *notify.drain()])
        availability_topic = f"edge/{NODE}/availability"
        assert sub.wait_for(
            lambda msgs: any(m.topic == availability_topic and m.payload == b"offline" for m in msgs), 10
        )
        outbox = Outbox(daemon.state_dir / "outbox.sqlite3")
        try:
            assert outbox.depth == 0
        finally:
            outbox.close()
        assert "Traceback" not in daemon.stderr()
    finally:
        _stop(daemon)
        sub.stop()
        notify.close()
        server.stop(crash=False)


def test_prometheus_scrapes_the_daemon(tmp_path: Path, clip: Path, broker: Mosquitto) -> None:
    require_tool("prometheus")
    server = RtspServer(clip, log_dir=tmp_path).start()
    daemon = _start_daemon(tmp_path, server.url(), broker, {})
    try:
        _wait_for_frames(daemon)
        with Prometheus(tmp_path / "prom", [f"127.0.0.1:{daemon.metrics_port}"]) as prom:
            time.sleep(31.0)
            assert prom.query_value("up") == 1.0, prom.log_tail()
            rate = prom.query_value("sum(rate(edge_frames_processed_total[30s]))")
            assert rate is not None, prom.log_tail()
            assert rate > 0.0, prom.log_tail()
        assert _stop(daemon) == 0, daemon.stderr()
    finally:
        _stop(daemon)
        server.stop(crash=False)
