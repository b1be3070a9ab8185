"""Zone semantics: inertia, dropouts, exit reasons, dwell, loitering, occupancy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.events.analytics import CameraAnalytics
from edge.events.model import Event, LineCrossing, ZoneEnter, ZoneExit
from edge.events.zones import ZoneSpec
from edge.types import NO_TRACK, Detections

FPS = 10.0
ZONE = ZoneSpec("z", ((100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)))
IN_PT = (200.0, 200.0)
OUT_PT = (50.0, 200.0)

# One character per frame: I = seen inside, O = seen outside, . = not detected, X = removed by the tracker.


def frame(rows: list[tuple[int, float, float, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections.from_arrays(
        [[x - 10, y - 40, x + 10, y] for _t, x, y, _c in rows],
        [0.8] * len(rows),
        [c for *_r, c in rows],
        [t for t, *_r in rows],
    )


def play(spec: ZoneSpec, script: str, track_id: int = 1, class_id: int = 0) -> list[tuple[int, str, float]]:
    """Run one track through ``script``; return (frame, type[:reason], dwell_s) of every event."""
    analytics = CameraAnalytics("cam", zones=[spec], run_id="t")
    out = []
    for n, c in enumerate(script):
        rows = []
        if c in "IO":
            x, y = IN_PT if c == "I" else OUT_PT
            rows = [(track_id, x, y, class_id)]
        removed = [track_id] if c == "X" else []
        for e in analytics.update(frame(rows), removed, frame_no=n, ts_wall=n / FPS, ts_mono=n / FPS):
            assert not isinstance(e, LineCrossing)
            reason = e.reason if isinstance(e, ZoneExit) else None
            out.append((e.frame, e.type + (f":{reason}" if reason else ""), e.dwell_s))
    return out


CASES = [
    ("enter after inertia frames inside", ZONE, "OOIII", [(4, "zone_enter", 0.0)]),
    ("two frames inside are not enough", ZONE, "OOIIOOO", []),
    ("1-frame dropouts do not break the run", ZONE, "OI.I.I", [(5, "zone_enter", 0.0)]),
    ("1-frame excursion outside restarts the run", ZONE, "IIOIII", [(5, "zone_enter", 0.0)]),
    ("enter, then dropouts while inside: no exit", ZONE, "III.I.I..I", [(2, "zone_enter", 0.0)]),
    ("1-frame excursion out while inside: no exit", ZONE, "IIIIOIIOII", [(2, "zone_enter", 0.0)]),
    ("exit after inertia frames outside, dwell to first outside frame", ZONE, "IIIIIOOO",
     [(2, "zone_enter", 0.0), (7, "zone_exit:left", 0.5)]),
    ("exit with dropouts while leaving", ZONE, "IIIII.O.O.O",
     [(2, "zone_enter", 0.0), (10, "zone_exit:left", 0.6)]),
    ("removed while inside: exit lost, dwell to last sighting", ZONE, "IIIII..X",
     [(2, "zone_enter", 0.0), (7, "zone_exit:lost", 0.4)]),
    ("removed before entering: nothing", ZONE, "IIX", []),
    ("removed outside after leaving: only one exit", ZONE, "IIIOOOX",
     [(2, "zone_enter", 0.0), (5, "zone_exit:left", 0.3)]),
    ("inertia 1", replace(ZONE, inertia=1), "OIO",
     [(1, "zone_enter", 0.0), (2, "zone_exit:left", 0.1)]),
    ("loitering fires once", replace(ZONE, loiter_seconds=0.5), "IIIIIIIIIIIII",
     [(2, "zone_enter", 0.0), (5, "zone_loitering", 0.5)]),
    ("loitering fires while undetected", replace(ZONE, loiter_seconds=0.5), "III.....",
     [(2, "zone_enter", 0.0), (5, "zone_loitering", 0.5)]),
    ("loitering once per visit", replace(ZONE, loiter_seconds=0.3, inertia=1), "IIIIIOIIII",
     [(0, "zone_enter", 0.0), (3, "zone_loitering", 0.3), (5, "zone_exit:left", 0.5),
      (6, "zone_enter", 0.0), (9, "zone_loitering", 0.3)]),
    ("no loitering before loiter_seconds", replace(ZONE, loiter_seconds=5.0), "IIIIIOOO",
     [(2, "zone_enter", 0.0), (7, "zone_exit:left", 0.5)]),
    # The demo's `room` camera printed enter (dwell 0) and loitering (dwell 8.6 s) in the same
    # millisecond: the inside run had started before a long detection gap. A gap over
    # max_gap_seconds (1 s) restarts the run, so the visit starts after the gap.
    ("a long gap restarts the run: no loitering at the enter's instant", replace(ZONE, loiter_seconds=0.5),
     "II" + "." * 20 + "IIIIII", [(24, "zone_enter", 0.0), (27, "zone_loitering", 0.5)]),
    ("a gap within max_gap_seconds does not", replace(ZONE, loiter_seconds=0.5, max_gap_seconds=3.0),
     "II" + "." * 20 + "IIIIII", [(22, "zone_enter", 0.0), (22, "zone_loitering", 2.2)]),
    ("a long gap restarts an exit run too", ZONE, "IIIIOO" + "." * 15 + "OIII", [(2, "zone_enter", 0.0)]),
]


@pytest.mark.parametrize(
    ("spec", "script", "expected"), [pytest.param(s, sc, e, id=n) for n, s, sc, e in CASES]
)
def test_zone_cases(spec: ZoneSpec, script: str, expected: list[tuple[int, str, float]]) -> None:
    assert play(spec, script) == expected


def test_unconfirmed_track_never_enters() -> None:
    assert play(ZONE, "IIIIII", track_id=NO_TRACK) == []


def test_class_filter() -> None:
    assert play(replace(ZONE, classes=frozenset({2})), "IIII", class_id=0) == []
    assert play(replace(ZONE, classes=frozenset({2})), "IIII", class_id=2) == [(2, "zone_enter", 0.0)]


def test_occupancy_and_entries_per_class() -> None:
    analytics = CameraAnalytics("cam", zones=[ZONE], run_id="t", class_names={0: "person", 2: "car"})
    rows = [(1, *IN_PT, 0), (2, *IN_PT, 0), (3, *IN_PT, 2), (4, *OUT_PT, 0)]
    events: list[Event] = []
    for n in range(3):
        events += analytics.update(frame(rows), frame_no=n)
    assert analytics.occupancy() == {"z": {0: 2, 2: 1}}
    assert analytics.counts()["zones"] == {"z": {"entries": {0: 2, 2: 1}}}
    last_person = [e for e in events if e.class_id == 0][-1]
    assert isinstance(last_person, ZoneEnter)
    assert (last_person.occupancy, last_person.occupancy_all, last_person.entries) == (2, 3, 2)
    # Track 1 is removed: it leaves (lost), occupancy drops, the entry total stays.
    (lost,) = analytics.update(frame(rows[1:]), [1], frame_no=3)
    assert isinstance(lost, ZoneExit)
    assert (lost.type, lost.reason, lost.occupancy, lost.occupancy_all) == ("zone_exit", "lost", 1, 2)
    assert analytics.occupancy() == {"z": {0: 1, 2: 1}}
    assert analytics.counts()["zones"]["z"]["entries"] == {0: 2, 2: 1}


@pytest.mark.parametrize(
    "polygon",
    [
        ((0.0, 0.0), (1.0, 1.0)),  # too few points
        ((0.0, 0.0), (1.0, 1.0), (2.0, 2.0)),  # no area
        ((0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)),  # bow tie: self-intersecting
    ],
)
def test_invalid_polygons(polygon: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError, match="simple polygon"):
        ZoneSpec("bad", polygon)


def test_concave_zone() -> None:
    # A U shape: the notch in the middle (x 140..160, y < 200) is outside.
    u = ZoneSpec(
        "u",
        ((100.0, 100.0), (140.0, 100.0), (140.0, 200.0), (160.0, 200.0), (160.0, 100.0), (200.0, 100.0),
         (200.0, 300.0), (100.0, 300.0)),
        inertia=1,
    )
    analytics = CameraAnalytics("cam", zones=[u], run_id="t")
    events = analytics.update(frame([(1, 150.0, 150.0, 0), (2, 150.0, 250.0, 0), (3, 120.0, 150.0, 0)]))
    assert sorted(e.track_id for e in events) == [2, 3]


def test_enter_carries_the_visit_start() -> None:
    analytics = CameraAnalytics("cam", zones=[replace(ZONE, loiter_seconds=0.5)], run_id="t")
    events: list[Event] = []
    for n, c in enumerate("OI.I.III"):
        rows = [(1, *IN_PT, 0)] if c == "I" else [(1, *OUT_PT, 0)] if c == "O" else []
        events += analytics.update(frame(rows), frame_no=n, ts_wall=1e9 + n / FPS, ts_mono=n / FPS)
    enter, loiter = events
    assert isinstance(enter, ZoneEnter)
    assert enter.frame == 5  # third inside sighting
    assert enter.visit_start_ms == round((1e9 + 1 / FPS) * 1000)  # the first one, frame 1
    assert enter.visit_start == "2001-09-09T01:46:40.100Z"
    assert (loiter.type, loiter.frame, loiter.dwell_s) == ("zone_loitering", 6, 0.5)


# A SIGHUP reload: (what changes, new spec, events on the next frame, entries and occupancy after it).
# Only timing changes (loiter_seconds, max_gap_seconds) keep each track's visit; a geometry change
# starts the zone's tracks afresh (their entry totals are kept).
RELOADS = [
    ("nothing", ZONE, [], 1, {0: 1}),
    ("loiter_seconds set", replace(ZONE, loiter_seconds=60.0), [], 1, {0: 1}),
    (
        "loiter_seconds below the dwell so far: loiters now, no new enter",
        replace(ZONE, loiter_seconds=0.2),
        ["zone_loitering"],
        1,
        {0: 1},
    ),
    ("loiter_seconds removed", replace(ZONE, loiter_seconds=None), [], 1, {0: 1}),
    ("max_gap_seconds", replace(ZONE, max_gap_seconds=5.0), [], 1, {0: 1}),
    (
        "polygon moved: the visit starts afresh",
        replace(ZONE, polygon=((90.0, 90.0), *ZONE.polygon[1:])),
        [],
        1,
        {},
    ),
    ("inertia: the visit starts afresh", replace(ZONE, inertia=1), ["zone_enter"], 2, {0: 1}),
]


@pytest.mark.parametrize(
    ("new", "events", "entries", "occupancy"), [pytest.param(*r[1:], id=r[0]) for r in RELOADS]
)
def test_reload_keeps_zone_state_when_only_timing_changes(
    new: ZoneSpec, events: list[str], entries: int, occupancy: dict[int, int]
) -> None:
    analytics = CameraAnalytics("cam", zones=[replace(ZONE, loiter_seconds=5.0)], run_id="t")
    for n in range(5):  # inside for 0.5 s: entered at frame 2
        analytics.update(frame([(1, *IN_PT, 0)]), frame_no=n, ts_mono=n / FPS)
    assert analytics.counts()["zones"]["z"]["entries"] == {0: 1}
    analytics.reconfigure([], [new])
    got = analytics.update(frame([(1, *IN_PT, 0)]), frame_no=5, ts_mono=0.5)
    assert [e.type for e in got] == events
    assert analytics.counts()["zones"]["z"]["entries"] == {0: entries}
    assert analytics.occupancy()["z"] == occupancy


def test_id_switch_inside_continues_the_visit() -> None:
    # Track 1 enters, the tracker loses it and reports track 2 linked to it: one visit, one entry;
    # when the tracker removes track 1 there is no exit, track 2 leaves with the visit's whole dwell.
    analytics = CameraAnalytics("cam", zones=[ZONE], run_id="t")
    events: list[Event] = []
    script = [(1, "I")] * 5 + [(0, ".")] * 2 + [(2, "I")] * 3 + [(2, "O")] * 3
    reported: set[int] = set()
    for n, (tid, c) in enumerate(script):
        rows = [] if c == "." else [(tid, *(IN_PT if c == "I" else OUT_PT), 0)]
        links = [1 if tid == 2 and tid not in reported else -1 for _ in rows]
        reported.update(t for t, *_ in rows)
        dets = frame(rows)
        link = np.array(links, np.int64)
        dets = Detections(dets.xyxy, dets.confidence, dets.class_id, dets.track_id, link_id=link)
        removed = [1] if n == 9 else []
        events += analytics.update(dets, removed, frame_no=n, ts_mono=n / FPS)
    assert [(e.type, e.track_id) for e in events] == [("zone_enter", 1), ("zone_exit", 2)]
    assert analytics.counts()["zones"]["z"]["entries"] == {0: 1}
    exit_event = events[-1]
    assert isinstance(exit_event, ZoneExit)
    assert exit_event.dwell_s == 1.0  # from frame 0 (visit start) to frame 10 (first outside sighting)
