"""The daemon's batching view of the cameras: newest frame per camera, fair across cameras, bounded wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from edge.app import App, CameraRuntime
from edge.capture import FrameNotifier
from edge.config import load_settings
from edge.types import Frame

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"


class FakeCapture:
    """The part of Capture the batching reads: a latest-frame slot."""

    def __init__(self, camera: str, notifier: FrameNotifier) -> None:
        self.camera = camera
        self.notifier = notifier
        self.slot: Frame | None = None
        self.seq = 0

    def offer(self) -> None:
        self.seq += 1
        self.slot = Frame(np.zeros((4, 4, 3), np.uint8), self.camera, self.seq, 0.0, 0.0)
        self.notifier.notify()

    def poll(self) -> Frame | None:
        frame, self.slot = self.slot, None
        return frame


def _app(names: list[str]) -> tuple[App, dict[str, FakeCapture]]:
    app = App(load_settings(EXAMPLE, check_model_classes=False))
    cam_cfg = app.settings.cameras[0]
    fakes = {}
    for name in names:
        fake = FakeCapture(name, app.frame_notifier)
        fakes[name] = fake
        app.cameras[name] = CameraRuntime(cfg=cam_cfg.model_copy(update={"name": name}), capture=fake)  # type: ignore[arg-type]
    return app, fakes


def test_one_frame_per_camera_and_at_most_max_n() -> None:
    app, fakes = _app(["a", "b", "c"])
    for f in fakes.values():
        f.offer()
    batch = app.take_frames(2, 0.005)
    assert len(batch) == 2
    assert len({f.camera for f in batch}) == 2
    rest = app.take_frames(4, 0.005)
    assert [f.camera for f in rest] == [c for c in "abc" if c not in {f.camera for f in batch}]


def test_round_robin_start_is_fair() -> None:
    app, fakes = _app(["a", "b", "c"])
    first = []
    for _ in range(3):
        for f in fakes.values():
            f.offer()
        first.append(app.take_frames(1, 0.0)[0].camera)
        for f in fakes.values():
            f.slot = None
    assert sorted(first) == ["a", "b", "c"]


def test_waits_for_a_late_camera_within_the_batch_window() -> None:
    app, fakes = _app(["a", "b"])
    fakes["a"].offer()
    timer = threading.Timer(0.02, fakes["b"].offer)
    timer.start()
    batch = app.take_frames(2, 0.5)
    timer.join()
    assert sorted(f.camera for f in batch) == ["a", "b"]


def test_idle_returns_empty_after_a_bounded_wait() -> None:
    app, _ = _app(["a"])
    t0 = time.monotonic()
    assert app.take_frames(4, 0.005) == []
    assert time.monotonic() - t0 < 1.0
