"""The debug view draws from pipeline snapshots: nothing until somebody watches, each snapshot encoded once,
no lock shared with the pipeline."""

from __future__ import annotations

import numpy as np

from edge.clock import FakeClock
from edge.config import CameraConfig, TrackerConfig
from edge.events import LineSpec
from edge.pipeline import CameraPipeline
from edge.types import Detections
from edge.view import DebugView


class Capture:
    state = "online"


def _dets(x: float) -> Detections:
    return Detections(
        xyxy=np.array([[x - 10, 60, x + 10, 100]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.zeros(1, np.int32),
        track_id=np.full(1, -1, np.int64),
    )


def test_jpeg_only_while_watched_and_once_per_snapshot() -> None:
    clock = FakeClock()
    line = LineSpec(name="door", a=(100.0, 0.0), b=(100.0, 200.0))
    pipeline = CameraPipeline("cam", lambda _w, _h: ([line], []), tracker=TrackerConfig(), run_id="r")
    cam = CameraConfig(
        name="cam", source="/dev/null", lines=[{"name": "door", "points": [[100, 0], [100, 200]]}]
    )
    view = DebugView(clock, {"cam": pipeline}, {"cam": Capture()}, lambda: [cam])
    image = np.zeros((200, 200, 3), np.uint8)

    def step(n: int) -> None:
        pipeline.step(
            _dets(50 + n), frame_no=n, ts_wall=0.0, ts_mono=clock.monotonic(), size=(200, 200), image=image
        )

    step(1)
    assert view.jpeg("cam") is None  # nobody watched when the frame was processed; now somebody asks
    step(2)
    first = view.jpeg("cam")
    assert first is not None
    assert first[:2] == b"\xff\xd8"
    assert view.jpeg("cam") is first  # same snapshot: the same bytes object ("nothing new")
    step(3)
    assert view.jpeg("cam") is not first
    assert view.jpeg("nope") is None
    assert view.geometry("cam") == {
        "normalized": False,
        "lines": [{"name": "door", "points": [[100.0, 0.0], [100.0, 200.0]]}],
        "zones": [],
    }
    assert [(c.name, c.state) for c in view.camera_infos()] == [("cam", "online")]
