"""edge annotate's helpers: analytics specs and counts -> drawing geometry and numbers; the progress bar."""

from __future__ import annotations

import io

import numpy as np

from edge.events import CameraAnalytics, LineSpec, ZoneSpec
from edge.tools.annotate import Progress, scene_for, scene_state
from edge.types import Detections

LINE = LineSpec(
    "road",
    (0.0, 100.0),
    (200.0, 100.0),
    anchor="center",
    labels={"in": "south", "out": "north"},
    min_frames=1,
)
ZONE = ZoneSpec("lot", ((0.0, 150.0), (200.0, 150.0), (200.0, 200.0), (0.0, 200.0)), inertia=1)


def test_scene_uses_the_specs_geometry_labels_and_anchor():
    scene = scene_for("cam", [LINE], [ZONE], ["person"])
    assert scene.anchor == "center"
    assert scene.class_names == ("person",)
    (line,) = scene._lines
    assert (line.p1, line.p2, line.labels) == ((0, 100), (200, 100), ("south", "north"))
    (zone,) = scene._zones
    assert zone.points.tolist() == [[0, 150], [200, 150], [200, 200], [0, 200]]
    assert scene_for("cam", [], [], []).anchor == "bottom_center"


def test_scene_state_sums_counts_and_occupancy_over_classes():
    analytics = CameraAnalytics("cam", [LINE], [ZONE], run_id="t")

    def frame(n: int, boxes, classes) -> None:
        dets = Detections.from_arrays(boxes, [0.9] * len(boxes), classes, list(range(1, len(boxes) + 1)))
        analytics.update(dets, np.zeros(0, np.int64), n, float(n), float(n))

    # Track 1 (person) and 2 (car) move down across the line; track 3 stands in the zone.
    frame(1, [[10, 60, 30, 80], [50, 60, 70, 80], [100, 170, 120, 190]], [0, 2, 0])
    frame(2, [[10, 110, 30, 130], [50, 110, 70, 130], [100, 170, 120, 190]], [0, 2, 0])
    frame(3, [[10, 120, 30, 140], [50, 120, 70, 140], [100, 170, 120, 190]], [0, 2, 0])
    state = scene_state(analytics, 3, 25.0)
    assert (state.frame_no, state.fps) == (3, 25.0)
    assert state.line_counts == {"road": (2, 0)}
    assert state.zone_occupancy == {"lot": 1}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only():
    tty = _Tty()
    bar = Progress(10, tty)
    bar.update(5, force=True)
    bar.close(10)
    text = tty.getvalue()
    assert "50.0% 5/10 frames" in text
    assert "100.0% 10/10 frames" in text
    assert text.endswith("\n")
    pipe = io.StringIO()
    bar = Progress(10, pipe)
    bar.update(5, force=True)
    bar.close(10)
    assert pipe.getvalue() == ""
