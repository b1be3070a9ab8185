"""Line crossing semantics, table-driven (docs/analytics.md is the specification)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from edge.events.analytics import CameraAnalytics
from edge.events.geometry import crosses_segment, distance_to_segment, points_in_polygon, signed_distance
from edge.events.lines import LineSpec
from edge.types import NO_TRACK, Detections

Path = list[tuple[float, float] | None]

# A horizontal line across a 640-px wide frame; "in" is downwards (the right-hand side of A->B on screen).
# The cases here were written for a hold of 2 frames (no capture times, so frames count as given); the
# default hold, 3 frames at 30 fps, is covered by test_events_trajectory.py.
H = LineSpec("h", (0.0, 100.0), (640.0, 100.0), min_frames=2)


def box_at(x: float, y: float, w: float = 20.0, h: float = 40.0) -> list[float]:
    """A box whose bottom-center anchor is (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


def frame(points: list[tuple[int, float, float, int]]) -> Detections:
    """Detections from (track_id, anchor x, anchor y, class_id) rows."""
    if not points:
        return Detections.empty()
    return Detections.from_arrays(
        [box_at(x, y) for _t, x, y, _c in points],
        [0.9] * len(points),
        [c for _t, _x, _y, c in points],
        [t for t, _x, _y, _c in points],
    )


def walk(spec: LineSpec, path: Path, track_id: int = 1, class_id: int = 0) -> tuple[int, int]:
    """Feed one track along ``path`` (``None`` = not detected that frame); return (in, out) counts."""
    analytics = CameraAnalytics("cam", [spec], run_id="test")
    for n, point in enumerate(path):
        rows = [] if point is None else [(track_id, point[0], point[1], class_id)]
        analytics.update(frame(rows), frame_no=n, ts_wall=n / 30.0, ts_mono=n / 30.0)
    counts = analytics.counts()["lines"][spec.name]
    return sum(counts["in"].values()), sum(counts["out"].values())


def ys(x: float, *values: float) -> Path:
    return [(x, v) for v in values]


CASES: list[tuple[str, LineSpec, Path, int, tuple[int, int]]] = [
    ("downwards is in", H, ys(320, 80, 90, 110, 120), 1, (1, 0)),
    ("upwards is out", H, ys(320, 120, 110, 90, 80), 1, (0, 1)),
    ("exactly through endpoint B", H, ys(640, 90, 110, 120), 1, (1, 0)),
    ("exactly through endpoint A", H, ys(0, 90, 110, 120), 1, (1, 0)),
    ("diagonal through endpoint B", H, [(630, 90), (650, 110), (660, 120)], 1, (1, 0)),
    ("touch the line and go back", H, ys(320, 90, 100, 90, 80), 1, (0, 0)),
    ("touch the line twice and go back", H, ys(320, 90, 100, 100, 100, 90), 1, (0, 0)),
    ("one frame over the line and back", H, ys(320, 90, 101, 90, 80), 1, (0, 0)),
    ("parallel to the line above it", H, [(float(x), 95.0) for x in range(0, 640, 20)], 1, (0, 0)),
    ("parallel along the line", H, [(float(x), 100.0) for x in range(0, 640, 20)], 1, (0, 0)),
    ("beyond the segment end", H, ys(700, 80, 90, 110, 120), 1, (0, 0)),
    ("beyond the end with extend", replace(H, extend=True), ys(700, 80, 90, 110, 120), 1, (1, 0)),
    ("beyond the end, then back through the segment", H,
     [(700, 90), (700, 110), (700, 120), (300, 110), (300, 90), (300, 80)], 1, (0, 1)),
    ("60-px jump at 2 fps counts once", H, ys(320, 70, 130, 190), 1, (1, 0)),
    ("60-px jump, then stays", H, ys(320, 70, 130, 130, 130, 130), 1, (1, 0)),
    ("20 frames of +-1 px flicker", H, ys(320, *([99, 101] * 10)), 1, (0, 0)),
    ("flicker including on-line frames", H, ys(320, *([99, 100, 101, 100] * 5)), 1, (0, 0)),
    # supervision#2598: flicker after a real crossing must not add an opposite-direction count.
    ("crossing, then flicker on the line", H, ys(320, 80, 110, 120, *([99, 101] * 10)), 1, (1, 0)),
    # supervision#1838: a line next to the frame edge, boxes clipped to a 480-px frame.
    ("line 2 px above the bottom edge", LineSpec("edge", (0.0, 478.0), (640.0, 478.0), min_frames=2),
     ys(320, 460, 470, 477, 480, 480, 480), 1, (1, 0)),
    ("unconfirmed track walks across", H, ys(320, 80, 90, 110, 120, 130), NO_TRACK, (0, 0)),
    ("in, out, in counts once each way", H, ys(320, 90, 110, 120, 90, 80, 110, 120), 1, (1, 1)),
    ("in, out, in with count_repeats", replace(H, count_repeats=True),
     ys(320, 90, 110, 120, 90, 80, 110, 120), 1, (2, 1)),
    ("crosses and vanishes after 1 frame", H, [(320, 90), (320, 110), None, None], 1, (0, 0)),
    ("min_frames=1 counts the first frame", replace(H, min_frames=1), ys(320, 90, 110), 1, (1, 0)),
    ("dropouts do not break the run", H, [(320, 90), (320, 110), None, (320, 115)], 1, (1, 0)),
    ("min_distance rejects a shallow crossing", replace(H, min_distance=5.0), ys(320, 95, 102, 103, 104), 1,
     (0, 0)),
    ("min_distance passes a clear crossing", replace(H, min_distance=5.0), ys(320, 94, 102, 106, 107), 1,
     (1, 0)),
    ("born on the line, leaves downwards", H, ys(320, 100, 110, 120), 1, (0, 0)),
    ("diagonal line: right-hand side is in", LineSpec("d", (0.0, 0.0), (100.0, 100.0), min_frames=2),
     [(80, 20), (20, 80), (10, 90)], 1, (1, 0)),
    ("reversed line swaps directions", LineSpec("r", (640.0, 100.0), (0.0, 100.0), min_frames=2),
     ys(320, 80, 110, 120), 1, (0, 1)),
]


@pytest.mark.parametrize(
    ("spec", "path", "track_id", "expected"),
    [pytest.param(s, p, t, e, id=name) for name, s, p, t, e in CASES],
)
def test_line_crossing_cases(spec: LineSpec, path: Path, track_id: int, expected: tuple[int, int]) -> None:
    assert walk(spec, path, track_id) == expected


@pytest.mark.parametrize(
    ("classes", "class_id", "expected"),
    [(None, 2, (1, 0)), (frozenset({0}), 2, (0, 0)), (frozenset({0, 2}), 2, (1, 0))],
)
def test_class_filter(classes: frozenset[int] | None, class_id: int, expected: tuple[int, int]) -> None:
    assert walk(replace(H, classes=classes), ys(320, 90, 110, 120), class_id=class_id) == expected


@pytest.mark.parametrize(
    ("anchor", "expected"),
    # The box is 40 px high: its bottom crosses y=100, its top stays above.
    [("bottom_center", (1, 0)), ("center", (0, 0)), ("top_center", (0, 0)), ("bottom_left", (1, 0))],
)
def test_anchor_rule(anchor: str, expected: tuple[int, int]) -> None:
    assert walk(replace(H, anchor=anchor), ys(320, 90, 110, 115)) == expected


def test_many_tracks_in_one_frame_counted_per_class() -> None:
    analytics = CameraAnalytics("cam", [H], run_id="t", class_names={0: "person", 2: "car"})
    ids = list(range(1, 41))
    events = []
    for n, y in enumerate((90.0, 110.0, 120.0)):
        rows = [(t, 10.0 * t, y if t % 4 else 200.0 - y, 0 if t % 2 else 2) for t in ids]
        events += analytics.update(frame(rows), frame_no=n)
    counts = analytics.counts()["lines"]["h"]
    # t % 4 == 0 move upwards (out), the others downwards (in); odd ids are class 0.
    assert counts == {"in": {0: 20, 2: 10}, "out": {2: 10}}
    assert len(events) == 40
    assert sorted(e.track_id for e in events) == ids


def test_labels_and_event_fields() -> None:
    spec = replace(H, labels={"in": "enter", "out": "leave"})
    analytics = CameraAnalytics("door", [spec], run_id="r1", class_names=["person"])
    events = []
    for n, y in enumerate((90.0, 110.0, 120.0)):
        events += analytics.update(frame([(7, 320.0, y, 0)]), frame_no=100 + n, ts_wall=1_700_000_000.5 + n)
    (e,) = events
    assert e.type == "line_crossing"
    assert (e.line, e.direction, e.label) == ("h", "in", "enter")
    assert (e.camera, e.track_id, e.frame, e.class_name) == ("door", 7, 102, "person")
    assert e.ts == "2023-11-14T22:13:22.500Z"
    assert e.ts_ms == 1_700_000_002_500
    assert e.anchor_xy == (320.0, 120.0)
    assert e.bbox == (310.0, 80.0, 330.0, 120.0)
    assert e.counts == {"in": 1, "out": 0}
    assert e.event_id == "r1-door-0"


def test_geometry_helpers() -> None:
    pts = np.array([[0.0, 90.0], [0.0, 110.0], [5.0, 100.0]])
    assert signed_distance((0.0, 100.0), (640.0, 100.0), pts).tolist() == [-10.0, 10.0, 0.0]
    p = np.array([[630.0, 90.0], [650.0, 90.0]])
    q = np.array([[650.0, 110.0], [670.0, 110.0]])
    assert crosses_segment((0.0, 100.0), (640.0, 100.0), p, q).tolist() == [True, False]
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    inside = points_in_polygon(square, np.array([[5.0, 5.0], [15.0, 5.0], [-1.0, 5.0], [5.0, 11.0]]))
    assert inside.tolist() == [True, False, False, False]
    concave = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [5.0, 5.0], [0.0, 10.0]])
    assert points_in_polygon(concave, np.array([[5.0, 8.0], [5.0, 2.0]])).tolist() == [False, True]


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ((320.0, 100.0), 0.0),  # on the segment
        ((320.0, 40.0), 60.0),  # square to it, above
        ((320.0, 130.0), 30.0),  # square to it, below
        ((0.0, 100.0), 0.0),  # an end point
        ((-30.0, 140.0), 50.0),  # beyond end A: the distance to A, not to the infinite line (40)
        ((670.0, 60.0), 50.0),  # beyond end B
    ],
)
def test_distance_to_segment(point: tuple[float, float], expected: float) -> None:
    got = distance_to_segment((0.0, 100.0), (640.0, 100.0), np.array([point]))
    assert got.tolist() == pytest.approx([expected])


def test_distance_to_a_degenerate_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        distance_to_segment((1.0, 1.0), (1.0, 1.0), np.zeros((1, 2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"a": (1.0, 1.0), "b": (1.0, 1.0)},
        {"anchor": "left_ear"},
        {"min_frames": 0},
        {"min_distance": -1.0},
        {"name": ""},
    ],
)
def test_invalid_line_specs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(H, **kwargs)
