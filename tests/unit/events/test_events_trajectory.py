"""Trajectory-grade counting rules (issue 12), table-driven, each scenario at 5 and at 30 fps.

Scenarios are written in seconds, not frames, and sampled at the camera's rate, so "the same scenario at
5 fps and at 30 fps gives the same counts" is checked for every rule. A horizontal line at y = 100,
``in`` = downwards; boxes are 20 x 60 px with the anchor at the bottom centre. ``link`` is what the
tracker reports on the first frame of a new track that appeared close to a lost one (``link_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from edge.events.analytics import CameraAnalytics
from edge.events.lines import LineSpec, frames_needed
from edge.events.model import LineCrossing
from edge.types import Detections

LINE = LineSpec("h", (0.0, 100.0), (640.0, 100.0))
HEIGHT = 60.0


@dataclass(frozen=True)
class Seg:
    """One track id seen from ``t0`` (inclusive) to ``t1`` (exclusive)."""

    track_id: int
    t0: float
    t1: float
    y: Callable[[float], float]  # anchor y (feet) at time t
    link: int = -1  # the lost track the tracker links this id to on its first frame
    cls: Callable[[float], int] = lambda _t: 0
    bottom: Callable[[float], float | None] = lambda _t: None  # where the box ends if legs are hidden
    removed: float | None = None  # when the tracker gives the id up (reports it removed)
    box: Callable[[float], tuple[float, float, float, float] | None] = lambda _t: None  # whole box, if set


def walk(t: float) -> float:
    """A walker going down at 100 px/s from y = 40: on the line at t = 0.6 s."""
    return 40.0 + 100.0 * t


def late_walk(t: float) -> float:
    """The same walker 0.2 s behind: on the line at t = 0.8 s."""
    return walk(t) - 20.0


def u_turn(t: float) -> float:
    """Walks down over the line (0.6 s), turns at y = 130 (0.9 s), back up over it (1.2 s) to y = 70."""
    return walk(t) if t < 0.9 else 130.0 - 100.0 * (t - 0.9)


def standing(_t: float) -> float:
    return 110.0


def occluded_legs(t: float) -> float | None:
    # From 0.5 s on, legs hidden for 0.2 s out of every 0.4 s: the box ends at y = 85, above the line.
    return 85.0 if t >= 0.5 and round(t * 1000) % 400 < 200 else None


def onto_a_smaller_person(t: float) -> tuple[float, float, float, float]:
    # A tall person standing 10 px above the line; after 1 s the id is on someone farther away (half
    # as tall and as wide) 5 px above it.
    return (310.0, 30.0, 330.0, 90.0) if t < 1.0 else (315.0, 65.0, 325.0, 95.0)


def legs_hidden_narrower(t: float) -> tuple[float, float, float, float] | None:
    # occluded_legs, with the cut box 10 % narrower (the legs' stride no longer in it).
    return (311.0, 50.0, 329.0, 85.0) if occluded_legs(t) is not None else None


def out_of_the_top(t: float) -> tuple[float, float, float, float]:
    # A 120 px tall person walking up at 100 px/s (over the line at 1.0 s) and out of the frame's top:
    # from 0.8 s on the frame cuts the head off and the box gets shorter from the top.
    feet = 200.0 - 100.0 * t
    return (310.0, max(0.0, feet - 120.0), 330.0, feet)


def steps_over_and_vanishes(t: float) -> float:
    """On the line at 0.71 s: at 30 fps seen once past it (0.733 s) before the detector loses it."""
    return 29.0 + 100.0 * t


def wiggle(t: float) -> float:
    """Standing 10 px above the line; its box reaches 3 px past it for 2 frames at 30 fps (0.5-0.56 s)."""
    return 103.0 if 0.5 <= t < 0.56 else 90.0


def flicker(t: float) -> int:
    return 1 if 0.5 <= t < 0.7 else 0  # "bicycle" for 0.2 s around the crossing


def play(
    segs: list[Seg], fps: float, duration: float = 2.5, line: LineSpec = LINE
) -> tuple[dict[str, dict[int, int]], list[int]]:
    """Sample the scenario at ``fps`` through CameraAnalytics; return the counts and the crossing classes."""
    analytics = CameraAnalytics("cam", [line], run_id="t")
    reported: set[int] = set()
    given_up: set[int] = set()
    classes: list[int] = []
    for n in range(round(duration * fps)):
        t = n / fps
        removed = [s.track_id for s in segs if s.removed is not None and s.removed <= t + 1e-9]
        removed = [i for i in removed if i not in given_up]
        given_up.update(removed)
        boxes, ids, cls, links = [], [], [], []
        for s in segs:
            if not s.t0 <= t < s.t1:
                continue
            feet = s.y(t)
            bottom = s.bottom(t)
            whole = s.box(t)
            if whole is None:
                whole = (310.0, feet - HEIGHT, 330.0, feet if bottom is None else bottom)
            boxes.append(list(whole))
            ids.append(s.track_id)
            cls.append(s.cls(t))
            links.append(s.link if s.track_id not in reported else -1)
            reported.add(s.track_id)
        dets = Detections(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.full(len(ids), 0.9, np.float32),
            np.array(cls, np.int32),
            np.array(ids, np.int64),
            track_xyxy=np.array(boxes, np.float32).reshape(-1, 4),  # as the tracker sets it
            link_id=np.array(links, np.int64),
        )
        events = analytics.update(dets, removed, frame_no=n, ts_wall=1e9 + t, ts_mono=t)
        classes += [e.class_id for e in events if isinstance(e, LineCrossing)]
    return analytics.counts()["lines"][line.name], classes


CASES: list[tuple[str, list[Seg], tuple[int, int]]] = [
    ("walk down across the line", [Seg(1, 0.0, 1.5, walk)], (1, 0)),
    (
        "occlusion jitter: standing below the line, legs hidden on and off",
        [Seg(1, 0.0, 3.0, standing, bottom=occluded_legs)],
        (0, 0),
    ),
    (
        "occlusion jitter, the cut box a little narrower",
        [Seg(1, 0.0, 3.0, standing, box=legs_hidden_narrower)],
        (0, 0),
    ),
    # The feet estimate of that rule must not fire on boxes that are short for other reasons.
    (
        "id moves to a smaller person just above the line: no feet below it",
        [Seg(1, 0.0, 2.5, standing, box=onto_a_smaller_person)],
        (0, 0),
    ),
    (
        "walks up over the line and out of the frame's top: the cut-off head is not hidden legs",
        [Seg(1, 0.0, 1.8, standing, box=out_of_the_top)],
        (0, 1),
    ),
    (
        "lost on side A, found on side B with the same id",
        [Seg(1, 0.0, 0.5, walk), Seg(1, 1.0, 1.8, walk)],
        (1, 0),
    ),
    (
        "lost on side A, found on side B as a new, linked id",
        [Seg(1, 0.0, 0.5, walk), Seg(2, 1.0, 1.8, walk, link=1)],
        (1, 0),
    ),
    (
        "id switch right after the line: one passage, one count",
        [Seg(1, 0.0, 0.75, walk), Seg(2, 0.75, 1.5, walk, link=1)],
        (1, 0),
    ),
    (
        "id switch just before the line: the new id counts it",
        [Seg(1, 0.0, 0.45, walk), Seg(2, 0.45, 1.5, walk, link=1)],
        (1, 0),
    ),
    (
        "id switch, then the old id is found again past the line",
        [Seg(1, 0.0, 0.75, walk), Seg(2, 0.75, 1.2, walk, link=1), Seg(1, 1.6, 2.2, walk)],
        (1, 0),
    ),
    # The link's "already counted" flags are only taken over near the line (INHERIT_COUNTED_HEIGHTS,
    # 1.5 heights = 90 px here): far from it the new id is most likely someone else.
    (
        "id switch far from the line after a round trip: the new id's own crossing counts",
        [Seg(1, 0.0, 1.5, u_turn), Seg(2, 1.7, 3.2, lambda t: 100.0 * (t - 1.7) - 20.0, link=1)],
        (2, 1),
    ),
    (
        "id switch near the line after a round trip: the same passage, not counted again",
        [Seg(1, 0.0, 1.5, u_turn), Seg(2, 1.7, 3.2, lambda t: 40.0 + 100.0 * (t - 1.7), link=1)],
        (1, 1),
    ),
    ("class flicker around the crossing", [Seg(1, 0.0, 1.5, walk, cls=flicker)], (1, 0)),
    # Back-projection (LineSpec.backfill_seconds, 0.5 s): a new id first seen 0.4 s after the walker
    # stepped over the line, walking on, is a crossing nobody saw; one first seen farther on is not.
    ("new id first seen just past the line, walking on: back-projected", [Seg(2, 1.0, 1.8, walk)], (1, 0)),
    ("new id first seen far past the line: nothing to count", [Seg(2, 1.5, 2.3, walk)], (0, 0)),
    ("new id standing just past the line: nothing to count", [Seg(2, 1.0, 2.0, lambda _t: 105.0)], (0, 0)),
    (
        "new id just past the line walking back over it: one out, no back-projected in",
        [Seg(2, 1.0, 2.0, lambda t: 110.0 - 100.0 * (t - 1.0))],
        (0, 1),
    ),
    (
        "linked new id past the line: the lost track's passage, counted once",
        [Seg(1, 0.0, 0.55, walk), Seg(2, 0.9, 1.8, walk, link=1)],
        (1, 0),
    ),
    # A link behind the walker (LineCounter.inherit): the lost id was walking down, the new one
    # appears above where it was last seen. Another person: the jump back up is no crossing, and the
    # new id's own crossing is not swallowed by the lost id's "in".
    (
        "linked new id behind the walker, past the line: another person, who counts on its own",
        [Seg(1, 0.0, 0.9, walk), Seg(2, 1.0, 2.0, lambda t: 60.0 + 100.0 * (t - 1.0), link=1)],
        (2, 0),
    ),
    # Forward projection (LineSpec.forward_seconds, 1.5 s): an id last seen 0.2 s or 0.8 s before the
    # line, walking on, and given up later crossed it unseen; one that stopped, or was more than 1.5 s
    # of walking from it, not.
    (
        "vanishes walking just before the line, given up later: forward-projected",
        [Seg(1, 0.0, 0.65, late_walk, removed=2.2)],
        (1, 0),
    ),
    (
        "vanishes walking 0.8 s before the line, given up later: forward-projected",
        [Seg(1, 0.0, 0.65, lambda t: walk(t) - 80.0, removed=2.2)],
        (1, 0),
    ),
    (
        "vanishes walking far (1.6 s) before the line: nothing to count",
        [Seg(1, 0.0, 0.65, lambda t: walk(t) - 165.0, removed=2.2)],
        (0, 0),
    ),
    (
        "stands just before the line until given up: nothing to count",
        [Seg(1, 0.0, 1.0, lambda _t: 90.0, removed=2.2)],
        (0, 0),
    ),
    (
        "vanishes walking away from the line: nothing to count",
        [Seg(1, 0.0, 0.65, lambda t: 90.0 - 100.0 * t, removed=2.2)],
        (0, 0),
    ),
    (
        "vanishes before the line, found again past it as a linked id: counted once",
        [Seg(1, 0.0, 0.65, late_walk, removed=2.2), Seg(2, 0.9, 1.8, walk, link=1)],
        (1, 0),
    ),
    # The hold (min_frames, 3 frames at 30 fps) rejects a short wiggle over the line; a track lost
    # during its hold, after stepping over the line, still counts when it is given up.
    ("a 2-frame wiggle over the line and back: no crossing", [Seg(1, 0.0, 1.5, wiggle)], (0, 0)),
    (
        "steps over the line and vanishes during the hold, given up later: counted once",
        [Seg(1, 0.0, 0.75, steps_over_and_vanishes, removed=2.2)],
        (1, 0),
    ),
    (
        "crossed and counted, then vanished walking on: counted once",
        [Seg(1, 0.0, 1.0, walk, removed=2.2)],
        (1, 0),
    ),
]


@pytest.mark.parametrize("fps", [5.0, 30.0])
@pytest.mark.parametrize(("segs", "expected"), [pytest.param(s, e, id=n) for n, s, e in CASES])
def test_trajectory_rules(segs: list[Seg], expected: tuple[int, int], fps: float) -> None:
    counts, classes = play(segs, fps, duration=3.2)
    assert (sum(counts["in"].values()), sum(counts["out"].values())) == expected
    assert set(classes) <= {0}, "every crossing is counted in the track's voted class"


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_class_flicker_counts_once_in_one_class(fps: float) -> None:
    counts, classes = play([Seg(1, 0.0, 1.5, walk, cls=flicker)], fps)
    assert counts == {"in": {0: 1}, "out": {}}
    assert classes == [0]


def test_real_class_change_wins_after_a_few_frames() -> None:
    # A detector that settles on class 2 after 0.1 s: the vote follows, the crossing is class 2.
    counts, _ = play([Seg(1, 0.0, 1.5, walk, cls=lambda t: 0 if t < 0.1 else 2)], 30.0)
    assert counts == {"in": {2: 1}, "out": {}}


@pytest.mark.parametrize(
    ("min_frames", "fps", "needed"),
    [
        (2, 30.0, 2),
        (2, 25.0, 2),
        (2, 15.0, 1),
        (2, 14.0, 1),
        (2, 5.0, 1),
        (4, 30.0, 4),
        (4, 10.0, 2),
        (1, 30.0, 1),
        (3, 0.0, 3),
    ],
)
def test_hold_is_counted_at_30_fps(min_frames: int, fps: float, needed: int) -> None:
    assert frames_needed(min_frames, 1.0 / fps if fps else 0.0) == needed


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_backfill_off_counts_only_what_was_seen(fps: float) -> None:
    line = LineSpec("h", (0.0, 100.0), (640.0, 100.0), backfill_seconds=0.0)
    counts, _ = play([Seg(2, 1.0, 1.8, walk)], fps, line=line)
    assert counts == {"in": {}, "out": {}}


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_backfill_needs_timestamps(fps: float) -> None:
    """Without capture times (ground truth in ``edge evaluate``) nothing is projected."""
    analytics = CameraAnalytics("cam", [LINE], run_id="t")
    for n in range(round(1.8 * fps)):
        t = 1.0 + n / fps
        feet = walk(t)
        box = np.array([[310.0, feet - HEIGHT, 330.0, feet]], np.float32)
        dets = Detections(box, np.ones(1, np.float32), np.zeros(1, np.int32), np.array([2]))
        analytics.update(dets, frame_no=n)
    assert analytics.counts()["lines"]["h"] == {"in": {}, "out": {}}


def test_backfill_is_validated() -> None:
    with pytest.raises(ValueError, match="backfill_seconds"):
        LineSpec("h", (0.0, 100.0), (640.0, 100.0), backfill_seconds=-1.0)


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_forward_projection_off(fps: float) -> None:
    line = LineSpec("h", (0.0, 100.0), (640.0, 100.0), forward_seconds=0.0)
    counts, _ = play([Seg(1, 0.0, 0.65, late_walk, removed=2.2)], fps, line=line)
    assert counts == {"in": {}, "out": {}}


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_forward_projected_crossing_is_an_event_of_the_track_as_last_seen(fps: float) -> None:
    """The event comes when the tracker gives the track up, with its last box, score and voted class."""
    analytics = CameraAnalytics("cam", [LINE], run_id="t")
    events = []
    for n in range(round(2.5 * fps)):
        t = n / fps
        boxes = np.zeros((0, 4), np.float32)
        if t < 0.65:
            boxes = np.array([[310.0, late_walk(t) - HEIGHT, 330.0, late_walk(t)]], np.float32)
        n_box = len(boxes)
        dets = Detections(
            boxes,
            np.full(n_box, 0.8, np.float32),
            np.full(n_box, 3, np.int32),
            np.full(n_box, 7, np.int64),
        )
        removed = np.array([7] if n == round(2.2 * fps) else [], np.int64)
        events += analytics.update(dets, removed, frame_no=n, ts_wall=1e9 + t, ts_mono=t)
    crossings = [e for e in events if isinstance(e, LineCrossing)]
    assert len(crossings) == 1
    (e,) = crossings
    assert (e.track_id, e.direction, e.class_id, e.confidence) == (7, "in", 3, 0.8)
    assert e.frame == round(2.2 * fps)
    assert e.bbox[3] < 100.0  # the last box seen, before the line
    assert analytics.state_sizes() == {"line:h": 0}


def test_forward_seconds_is_validated() -> None:
    with pytest.raises(ValueError, match="forward_seconds"):
        LineSpec("h", (0.0, 100.0), (640.0, 100.0), forward_seconds=-1.0)
