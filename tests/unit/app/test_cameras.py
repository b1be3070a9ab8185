"""The detector's view of the cameras: newest frame per camera, fair across cameras, bounded wait."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.cameras import CameraSet
from edge.capture import FrameNotifier
from edge.types import Frame

pytestmark = pytest.mark.timing  # wall-clock bounds: run alone (see pyproject.toml)


class FakeCapture:
    """The part of Capture the camera set reads: a latest-frame slot."""

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


def _cameras(names: list[str]) -> tuple[CameraSet, dict[str, FakeCapture]]:
    notifier = FrameNotifier()
    cameras = CameraSet(notifier)
    fakes = {}
    for name in names:
        fakes[name] = FakeCapture(name, notifier)
        cameras.add(name, fakes[name])
    return cameras, fakes


def test_one_frame_per_camera_and_at_most_max_n() -> None:
    cameras, fakes = _cameras(["a", "b", "c"])
    for f in fakes.values():
        f.offer()
    batch = cameras.take(2, 0.005)
    assert len(batch) == 2
    assert len({f.camera for f in batch}) == 2
    rest = cameras.take(4, 0.005)
    assert [f.camera for f in rest] == [c for c in "abc" if c not in {f.camera for f in batch}]


def test_round_robin_start_is_fair() -> None:
    cameras, fakes = _cameras(["a", "b", "c"])
    first = []
    for _ in range(3):
        for f in fakes.values():
            f.offer()
        first.append(cameras.take(1, 0.0)[0].camera)
        for f in fakes.values():
            f.slot = None
    assert sorted(first) == ["a", "b", "c"]


def test_waits_for_a_late_camera_within_the_batch_window() -> None:
    cameras, fakes = _cameras(["a", "b"])
    fakes["a"].offer()
    timer = threading.Timer(0.02, fakes["b"].offer)
    timer.start()
    batch = cameras.take(2, 0.5)
    timer.join()
    assert sorted(f.camera for f in batch) == ["a", "b"]


def test_idle_returns_empty_after_a_bounded_wait() -> None:
    cameras, _ = _cameras(["a"])
    t0 = time.monotonic()
    assert cameras.take(4, 0.005) == []
    assert time.monotonic() - t0 < 1.0


def test_no_camera_returns_empty_after_the_idle_wait() -> None:
    cameras = CameraSet(FrameNotifier(), idle_wait_s=0.01)
    assert cameras.take(4, 0.0) == []
