"""The daemon in-process with fakes at its edges (a detector that replays recorded detections, sources
that hand out every frame): one pipeline for the daemon and `edge replay`, and a startup that fails
cleanly."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers.paths import data_dir, require

from edge.app import App
from edge.config import COCO_CLASSES, load_settings
from edge.errors import ModelError
from edge.pipeline import Sink
from edge.tools import replay
from edge.tools.replay import WALL_EPOCH, mot_frames
from edge.types import Detections, Frame

pytestmark = pytest.mark.timing  # wall-clock bounds: run alone (see pyproject.toml)

SEQ = "MOT17-09"
FPS = 30.0
CONFIG = """\
node: inproc
state_dir: {state}
mqtt: {{enabled: false}}
metrics: {{enabled: {metrics}, host: 127.0.0.1, port: {port}}}
model: {{path: unused.onnx, batch_size: 2}}
cameras:
  - name: {name}
    source: {source}
    lines:
      - {{name: h, points: [[0, 540], [1920, 540]], labels: {{in: down, out: up}}}}
      - {{name: v, points: [[960, 0], [960, 1080]]}}
    zones:
      - {{name: centre, polygon: [[480, 270], [1440, 270], [1440, 810], [480, 810]], loiter_seconds: 5}}
"""


def _encode(n: int) -> np.ndarray:
    """A 2x2 image that carries its frame number (the fake detector reads it back)."""
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0, 0], image[0, 0, 1] = n & 0xFF, n >> 8
    return image


class RecordedDetector:
    """Stands in for the model: returns the recorded detections of the frame number in the image."""

    def __init__(self, by_frame: dict[int, Detections], *, fail_warmup: bool = False) -> None:
        self.by_frame = by_frame
        self.class_names = list(COCO_CLASSES)
        self.fail_warmup = fail_warmup

    def warmup(self, batch_size: int = 1) -> None:
        if self.fail_warmup:
            raise ModelError("model fake.onnx: output (1, 32, 32) does not match [batch=1, 4 + 80 classes]")

    def infer(self, images: list[np.ndarray]) -> list[Detections]:
        return [self.by_frame[int(im[0, 0, 0]) | int(im[0, 0, 1]) << 8] for im in images]

    def set_thresholds(self, **_: float) -> None:
        pass


class RecordedSource:
    """A camera that never drops: every frame 1..total once, stamped as replay stamps it."""

    def __init__(self, camera: str, total: int) -> None:
        self.camera, self.total = camera, total
        self.next = 1
        self.state = "online"
        self.source_fps = FPS
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float = 5.0) -> None:
        self.state = "stopped"

    def poll(self) -> Frame | None:
        if not self.started or self.next > self.total:
            return None
        n, self.next = self.next, self.next + 1
        t = (n - 1) / FPS
        return Frame(_encode(n), self.camera, n, t, WALL_EPOCH + t)


class Collect(Sink):
    def __init__(self) -> None:
        self.events: list[bytes] = []

    def event(self, event: object) -> None:
        self.events.append(event.to_json())  # type: ignore[attr-defined]


def _config(tmp_path: Path, det: Path, *, metrics: bool = False, port: int = 0) -> Path:
    cfg = tmp_path / "edge.yaml"
    text = CONFIG.format(
        state=tmp_path / "state", metrics=str(metrics).lower(), port=port, name=SEQ, source=det
    )
    cfg.write_text(text, encoding="utf-8")
    return cfg


def _run_daemon(app: App, until: Callable[[], bool]) -> int:
    async def main() -> int:
        task = asyncio.create_task(app.run())
        deadline = time.monotonic() + 120
        while not until() and not task.done() and time.monotonic() < deadline:
            await asyncio.wait({task}, timeout=0.05)
        app.request_stop()
        return await task

    return asyncio.run(main())


def test_daemon_path_and_replay_give_identical_events(tmp_path: Path) -> None:
    det = require(data_dir() / "mot17" / SEQ / "det.txt", "MOT17 det.txt")
    cfg = _config(tmp_path, det)
    total, frames = mot_frames(det, class_id=0)
    recorded = dict(frames)
    settings = load_settings(cfg, check_model_classes=False)
    collect = Collect()
    app = App(
        settings,
        cfg,
        detector=RecordedDetector(recorded),  # type: ignore[arg-type]
        sources=lambda cam: RecordedSource(cam.name, total),  # type: ignore[arg-type,return-value]
        sinks=[collect],
        run_id="same-run",
    )
    code = _run_daemon(app, lambda: app.frames_done >= total)
    assert code == 0
    assert app.frames_done == total

    out = tmp_path / "replay.jsonl"
    args = ["--detections", str(det), "--config", str(cfg), "--events-out", str(out), "--run-id", "same-run"]
    assert replay.main([*args, "--quiet"]) == 0
    replayed = out.read_bytes().splitlines()
    assert len(replayed) > 10
    assert {json.loads(e)["type"] for e in replayed} >= {"line_crossing", "zone_enter", "zone_exit"}
    assert collect.events == replayed


def test_warmup_failure_stops_startup_with_its_exit_code(tmp_path: Path) -> None:
    det = require(data_dir() / "mot17" / SEQ / "det.txt", "MOT17 det.txt")
    settings = load_settings(_config(tmp_path, det), check_model_classes=False)
    app = App(
        settings,
        detector=RecordedDetector({}, fail_warmup=True),  # type: ignore[arg-type]
        sources=lambda cam: RecordedSource(cam.name, 0),  # type: ignore[arg-type,return-value]
    )
    before = set(threading.enumerate())
    t0 = time.monotonic()
    assert asyncio.run(app.run()) == 69
    assert time.monotonic() - t0 < 5.0
    time.sleep(0.2)
    # The pipeline and detector threads had started: the exit stack stopped them.
    assert set(threading.enumerate()) - before == set()


def test_port_in_use_fails_in_one_line_and_leaves_no_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    det = require(data_dir() / "mot17" / SEQ / "det.txt", "MOT17 det.txt")
    before = set(threading.enumerate())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(_config(tmp_path, det, metrics=True, port=port), check_model_classes=False)
        app = App(settings, detector=RecordedDetector({}))  # type: ignore[arg-type]
        hook = threading.excepthook
        with caplog.at_level("ERROR"):
            code = asyncio.run(app.run())
    assert code == 69
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"metrics: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert threading.excepthook is hook
    time.sleep(0.2)
    assert set(threading.enumerate()) - before == set()
