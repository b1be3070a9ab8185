"""The README's demo command, shortened: events reach a real subscriber within 60 s, the debug view works.

It runs exactly ``edge run --config config/demo.yaml --print-events`` from the repository root, against
the local mosquitto on 127.0.0.1:1883 as the README says. Only the node name, state directory and HTTP
port are overridden (``EDGE_*`` variables), so a parallel demo or CI run cannot collide with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.mosquitto import Subscriber, free_port
from helpers.paths import REPO_ROOT, data_dir, in_ci, models_dir, require, require_tool

from edge.discovery import forget_node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO_CONFIG = REPO_ROOT / "config" / "demo.yaml"


def _broker_up(port: int = 1883) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _mjpeg_frames(url: str, seconds: float) -> int:
    """JPEG frames an MJPEG stream delivers in ``seconds`` after its first frame."""
    frames = 0
    deadline = float("inf")
    with urllib.request.urlopen(url, timeout=5) as stream:  # noqa: S310 - a loopback http URL
        buf = b""
        while time.monotonic() < deadline:
            chunk = stream.read1(65536)
            if not chunk:
                break
            buf += chunk
            while (start := buf.find(b"\xff\xd8")) != -1 and (end := buf.find(b"\xff\xd9", start)) != -1:
                if deadline == float("inf"):
                    deadline = time.monotonic() + seconds  # the window starts at the first frame
                else:
                    frames += 1
                buf = buf[end + 2 :]
    return frames


def test_demo_publishes_events_and_serves_the_debug_view(tmp_path: Path) -> None:
    require(models_dir() / "yolov8n.onnx", "yolov8n.onnx")
    require(data_dir() / "video" / "pedestrians.mp4", "shared videos")
    if not _broker_up():
        message = "mosquitto is not running on 127.0.0.1:1883 (scripts/setup.sh starts it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    chromium = require_tool("chromium")
    node = f"ci-demo-{os.getpid()}"
    port = free_port()
    env = {
        **os.environ,
        "EDGE_NODE": node,
        "EDGE_STATE_DIR": str(tmp_path / "state"),
        "EDGE_METRICS__PORT": str(port),
    }
    sub = Subscriber("127.0.0.1", 1883, [f"edge/{node}/#"], client_id=f"{node}-sub").start()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(DEMO_CONFIG), "--print-events"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        events_topic = f"edge/{node}/"
        got = sub.wait_for(
            lambda msgs: any(m.topic.startswith(events_topic) and "/events/" in m.topic for m in msgs),
            60 - (time.monotonic() - started),
        )
        assert got, "no event within 60 s of starting the demo"
        event = json.loads(next(m for m in sub.messages if "/events/" in m.topic).payload)
        assert event["camera"] in {"plaza", "road", "room"}

        # The live debug view: the MJPEG stream moves, and a browser shows it with the overlay.
        base = f"http://127.0.0.1:{port}"
        assert _mjpeg_frames(f"{base}/cameras/plaza/stream.mjpg", 2.0) >= 5
        shot = tmp_path / "page.png"
        subprocess.run(
            [
                chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1100,800", f"--screenshot={shot}", "--virtual-time-budget=4000",
                f"{base}/cameras/plaza",
            ],
            capture_output=True,
            timeout=90,
            check=False,
        )
        image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
        assert image is not None, "chromium wrote no screenshot"
        assert image.std() > 10.0  # not blank
        b, g, r = (image[..., i].astype(np.int16) for i in range(3))
        assert int(((r > 200) & (g < 60) & (b > 200)).sum()) > 300  # the magenta overlay is drawn
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        sub.stop()
        # The machine's broker is a user's Home Assistant's: leave no retained state or discovery behind.
        forget_node("127.0.0.1", 1883, node=node)
    assert proc.returncode == 0, err[-3000:]
    assert any(" line_crossing " in ln or " zone_" in ln for ln in out.splitlines()), out[-2000:]
    assert "Traceback" not in err
