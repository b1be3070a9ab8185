"""ByteTracker's API: row alignment, edge cases, input validation, instances, reset, bounds, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from edge.metrics import Metrics
from edge.tracking import ByteTracker
from edge.types import NO_TRACK, Detections


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


def dets(xyxy: np.ndarray, scores: list[float], classes: list[int] | None = None) -> Detections:
    return Detections.from_arrays(xyxy, scores, classes if classes is not None else [0] * len(scores))


PEOPLE = boxes((10, 10, 50, 110), (200, 10, 240, 110), (400, 10, 440, 110))


def walk(step: int) -> np.ndarray:
    return PEOPLE + np.float32(3 * step)


def test_ids_follow_input_rows_and_order() -> None:
    tracker = ByteTracker(30.0)
    first = tracker.update(dets(walk(0), [0.9, 0.8, 0.95]))
    assert first.track_id.tolist() == [1, 2, 3]  # frame 1 confirms at once; ids start at 1
    # Same objects, rows shuffled, plus a low-score row that matches nothing.
    order = [2, 0, 1]
    xyxy = np.concatenate([walk(1)[order], boxes((900, 900, 950, 990))])
    out = tracker.update(dets(xyxy, [0.95, 0.9, 0.8, 0.3], [5, 6, 7, 8]))
    assert out.track_id.tolist() == [3, 1, 2, NO_TRACK]
    np.testing.assert_array_equal(out.xyxy, xyxy)  # same rows, untouched
    assert out.class_id.tolist() == [5, 6, 7, 8]
    assert tracker.active_count == 3


def test_new_track_needs_a_second_frame_after_the_first() -> None:
    tracker = ByteTracker(30.0)
    tracker.update(Detections.empty())
    assert tracker.update(dets(walk(0)[:1], [0.9])).track_id.tolist() == [NO_TRACK]  # unconfirmed
    assert tracker.update(dets(walk(1)[:1], [0.9])).track_id.tolist() == [1]
    assert tracker.active_count == 1


def test_low_score_detection_keeps_a_track_but_never_starts_one() -> None:
    tracker = ByteTracker(30.0)
    tracker.update(dets(walk(0)[:1], [0.9]))
    assert tracker.update(dets(walk(1)[:1], [0.3])).track_id.tolist() == [1]
    fresh = ByteTracker(30.0)
    assert fresh.update(dets(walk(0)[:1], [0.65])).track_id.tolist() == [NO_TRACK]  # < 0.7 new-track
    assert fresh.update(dets(walk(1)[:1], [0.65])).track_id.tolist() == [NO_TRACK]
    assert fresh.live_slots == 0


def test_empty_frames_and_a_single_detection() -> None:
    tracker = ByteTracker(30.0)
    for _ in range(3):
        out = tracker.update(Detections.empty())
        assert len(out) == 0
        assert out.track_id.dtype == np.int64
    assert tracker.update_arrays(np.zeros((0, 4)), np.zeros(0)).shape == (0,)
    ids = [int(tracker.update(dets(walk(i)[:1], [0.9])).track_id[0]) for i in range(5)]
    assert ids == [NO_TRACK, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("row", "score", "message"),
    [
        ((np.nan, 0, 10, 10), 0.9, "NaN or infinite"),
        ((0, 0, np.inf, 10), 0.9, "NaN or infinite"),
        ((0, 0, 10, 10), np.nan, "NaN or infinite"),
        ((10, 0, 5, 10), 0.9, "negative size"),
        ((0, 10, 10, 5), 0.9, "negative size"),
    ],
)
def test_invalid_boxes_are_rejected_without_changing_state(
    row: tuple[float, ...], score: float, message: str
) -> None:
    tracker = ByteTracker(30.0)
    tracker.update(dets(walk(0), [0.9, 0.9, 0.9]))
    xyxy = np.concatenate([walk(1), boxes(row)])
    with pytest.raises(ValueError, match=rf"detection row 3: .*{message}"):
        tracker.update(dets(xyxy, [0.9, 0.9, 0.9, score]))
    assert tracker.frame_id == 1  # the bad frame did not count
    assert tracker.update(dets(walk(1), [0.9, 0.9, 0.9])).track_id.tolist() == [1, 2, 3]


def test_zero_area_box_is_ignored_not_an_error() -> None:
    tracker = ByteTracker(30.0)
    out = tracker.update_arrays(boxes((5, 5, 5, 50), (10, 10, 50, 110)), np.array([0.9, 0.9]))
    assert out.tolist() == [NO_TRACK, 1]


def test_update_arrays_checks_shapes() -> None:
    tracker = ByteTracker(30.0)
    with pytest.raises(ValueError, match="xyxy"):
        tracker.update_arrays(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="scores"):
        tracker.update_arrays(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="classes"):
        tracker.update_arrays(np.zeros((2, 4)), np.zeros(2), np.zeros(1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_rate": 0.0}, "frame_rate"),
        ({"frame_rate": float("nan")}, "frame_rate"),
        ({"frame_rate": 30.0, "track_thresh": 0.05}, "low_thresh"),
        ({"frame_rate": 30.0, "match_thresh": 0.0}, "match_thresh"),
        ({"frame_rate": 30.0, "max_tracks": 0}, "max_tracks"),
        ({"frame_rate": 30.0, "track_buffer": -1}, "track_buffer"),
        ({"frame_rate": 30.0, "link_distance": -1.0}, "link_distance"),
        ({"frame_rate": 5.0, "center_gate": -1.0}, "center_gate"),
        ({"frame_rate": 5.0, "confirm_thresh": 1.5}, "confirm_thresh"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ByteTracker(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fps", "kept"), [(30.0, 30), (15.0, 15), (14.0, 14), (60.0, 60), (7.5, 7)])
def test_lost_track_buffer_scales_with_frame_rate(fps: float, kept: int) -> None:
    tracker = ByteTracker(fps, track_buffer=30)
    assert tracker.max_time_lost == kept
    tracker.update(dets(walk(0)[:1], [0.9]))
    removed_at = None
    for gap in range(1, kept + 5):
        tracker.update(Detections.empty())
        if tracker.removed_ids().size:
            assert tracker.removed_ids().tolist() == [1]
            removed_at = gap
            break
    # Removed on the first frame more than max_time_lost frames after its last match.
    assert removed_at == kept + 1
    assert tracker.live_slots == 0


def test_lost_track_is_found_again_with_its_id() -> None:
    tracker = ByteTracker(30.0)
    tracker.update(dets(walk(0), [0.9, 0.9, 0.9]))
    tracker.update(dets(walk(1), [0.9, 0.9, 0.9]))
    for _ in range(5):
        tracker.update(dets(walk(1)[1:], [0.9, 0.9]))  # the first person is hidden
    assert tracker.active_count == 2
    assert tracker.live_slots == 3
    out = tracker.update(dets(walk(1), [0.9, 0.9, 0.9]))
    assert out.track_id.tolist() == [1, 2, 3]


def test_two_instances_never_share_ids_and_reset_is_isolated() -> None:
    a = ByteTracker(30.0)
    b = ByteTracker(25.0)
    ida = a.update(dets(walk(0), [0.9, 0.9, 0.9])).track_id.tolist()
    idb = b.update(dets(walk(0)[:2], [0.9, 0.9])).track_id.tolist()
    assert ida == [1, 2, 3]
    assert idb == [1, 2]  # per-instance counter, not a class-level one
    b.update(dets(boxes((700, 10, 740, 110)), [0.9]))
    b.update(dets(boxes((703, 10, 743, 110)), [0.9]))
    a.reset()
    assert a.live_slots == 0
    assert a.frame_id == 0
    assert a.update(dets(walk(5)[:1], [0.9])).track_id.tolist() == [1]  # ids restart after reset
    # b is untouched by a's reset: its next new track continues its own sequence.
    assert b.live_slots == 3
    out = b.update(dets(np.concatenate([walk(2)[:2], boxes((706, 10, 746, 110))]), [0.9, 0.9, 0.9]))
    assert out.track_id.tolist() == [1, 2, 3]


def test_max_tracks_overflow_is_counted_not_fatal() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    tracker = ByteTracker(30.0, max_tracks=4, metrics=metrics, camera="cam1")
    grid = boxes(*[(100.0 * i, 10.0, 100.0 * i + 40, 110.0) for i in range(10)])
    out = tracker.update(dets(grid, [0.9] * 10))
    assert out.track_id.tolist() == [1, 2, 3, 4] + [NO_TRACK] * 6
    assert tracker.dropped_tracks == 6
    out = tracker.update(dets(grid + 1, [0.9] * 10))
    assert out.track_id.tolist() == [1, 2, 3, 4] + [NO_TRACK] * 6
    assert tracker.dropped_tracks == 12
    assert tracker.live_slots == 4
    assert registry.get_sample_value("edge_tracks_dropped_total", {"camera": "cam1"}) == 12
    assert registry.get_sample_value("edge_active_tracks", {"camera": "cam1"}) == 4
    assert registry.get_sample_value("edge_tracker_seconds_count", {"camera": "cam1"}) == 2


def test_removed_ids_only_report_confirmed_tracks() -> None:
    tracker = ByteTracker(30.0, track_buffer=2)
    tracker.update(Detections.empty())
    tracker.update(dets(walk(0)[:1], [0.9]))  # unconfirmed id 1
    tracker.update(Detections.empty())  # unconfirmed and unmatched: removed silently
    assert tracker.removed_ids().tolist() == []
    assert tracker.live_slots == 0
    tracker.update(dets(walk(0)[:1], [0.9]))
    tracker.update(dets(walk(1)[:1], [0.9]))
    removed: list[int] = []
    for _ in range(5):
        tracker.update(Detections.empty())
        removed += tracker.removed_ids().tolist()
    assert removed == [2]


def test_tracks_reports_kalman_boxes_of_matched_confirmed_tracks() -> None:
    tracker = ByteTracker(30.0)
    tracker.update(dets(walk(0), [0.9, 0.9, 0.9]))
    ids, xyxy = tracker.tracks()
    assert sorted(ids.tolist()) == [1, 2, 3]
    np.testing.assert_allclose(xyxy[np.argsort(ids)], walk(0), atol=1e-3)


def test_float64_and_strided_input_is_accepted() -> None:
    tracker = ByteTracker(30.0)
    wide = np.zeros((3, 8))
    wide[:, ::2] = walk(0)
    assert tracker.update_arrays(wide[:, ::2], [0.9, 0.9, 0.9]).tolist() == [1, 2, 3]


def test_update_carries_kalman_boxes_of_its_rows() -> None:
    tracker = ByteTracker(30.0)
    tracker.update(dets(walk(0), [0.9, 0.9, 0.9]))
    clutter = boxes((600, 10, 640, 110))  # a low-score box that belongs to no track
    out = tracker.update(dets(np.concatenate((walk(1), clutter)), [0.9, 0.9, 0.9, 0.3]))
    assert out.track_xyxy is not None
    ids, xyxy = tracker.tracks()
    for tid, box in zip(ids.tolist(), xyxy, strict=True):
        np.testing.assert_array_equal(out.track_xyxy[out.track_id.tolist().index(tid)], box)
    np.testing.assert_array_equal(out.track_xyxy[3], clutter[0])  # no track: the detection box


def switch(
    gap: int,
    dx: float,
    fps: float = 30.0,
    link_distance: float | None = None,
    confirm_thresh: float | None = None,
) -> list[list[int]]:
    """One person tracked for 5 frames, hidden for ``gap`` frames, seen again ``dx`` px to the right
    (too far for IoU matching); returns link_id per frame from the reappearance on."""
    tracker = ByteTracker(fps, link_distance=link_distance, confirm_thresh=confirm_thresh)
    person = boxes((100, 10, 140, 110))
    for step in range(5):
        tracker.update(dets(person + np.float32([2 * step, 0, 2 * step, 0]), [0.9]))
    for _ in range(gap):
        tracker.update(Detections.empty())
    again = person + np.float32([dx, 0, dx, 0])
    links = []
    for _ in range(3):
        out = tracker.update(dets(again, [0.9]))
        assert out.link_id is not None
        links.append(out.link_id.tolist())
    return links


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        # Born on the first frame back, reported (confirmed) on the second, linked there only.
        ("id switch 60 px away", {"gap": 3, "dx": 60.0}, [[-1], [1], [-1]]),
        ("too far: 4 heights", {"gap": 3, "dx": 400.0}, [[-1], [-1], [-1]]),
        ("links off", {"gap": 3, "dx": 60.0, "link_distance": 0.0}, [[-1], [-1], [-1]]),
        ("lost track already removed", {"gap": 40, "dx": 60.0}, [[-1], [-1], [-1]]),
        ("at 5 fps, within its 5-frame lifetime", {"gap": 3, "dx": 60.0, "fps": 5.0}, [[-1], [1], [-1]]),
        (
            "at 5 fps, expired when the new track is reported",
            {"gap": 4, "dx": 60.0, "fps": 5.0},
            [[-1], [-1], [-1]],
        ),
        # Confirmed at birth: reported, and linked, on its first frame, while the lost track lives.
        (
            "at 5 fps, confirmed at birth",
            {"gap": 4, "dx": 60.0, "fps": 5.0, "confirm_thresh": 0.9},
            [[1], [-1], [-1]],
        ),
        (
            "at 30 fps confirm_thresh does nothing",
            {"gap": 3, "dx": 60.0, "confirm_thresh": 0.9},
            [[-1], [1], [-1]],
        ),
    ],
)
def test_new_track_is_linked_to_a_nearby_lost_track(
    case: str, kwargs: dict[str, float], expected: list[list[int]]
) -> None:
    assert switch(**kwargs) == expected, case  # type: ignore[arg-type]


def test_links_do_not_change_ids() -> None:
    # The same frames with links on and off give the same ids: links are a hint, not a re-match.
    def ids(link_distance: float) -> list[list[int]]:
        tracker = ByteTracker(30.0, link_distance=link_distance)
        out = []
        for step in range(40):
            shift = 0.0 if step < 20 else 70.0
            xyxy = walk(step)[:2] + np.float32([shift, 0, shift, 0]) if step % 7 else walk(step)[:0]
            out.append(tracker.update(dets(xyxy, [0.9] * len(xyxy))).track_id.tolist())
        return out

    assert ids(3.0) == ids(0.0)


@pytest.mark.parametrize(("fps", "kwargs", "same_id"), [
    (5.0, {}, True),  # 10 fps and below: matched by predicted-centre distance
    (5.0, {"center_gate": 0.0}, False),  # off: IoU only, as the official ByteTrack
    (30.0, {}, False),  # above 10 fps it never runs (official figures unchanged)
])
def test_centre_association_at_low_fps(fps: float, kwargs: dict[str, float], same_id: bool) -> None:
    # A walker whose boxes in successive frames do not overlap (45 px steps of a 40 px wide box).
    tracker = ByteTracker(fps, **kwargs)  # type: ignore[arg-type]
    ids = []
    for step in range(6):
        out = tracker.update(dets(boxes((100 + 45 * step, 10, 140 + 45 * step, 110)), [0.9]))
        ids.append(int(out.track_id[0]))
    assert (len(set(ids[1:])) == 1 and ids[1] > 0) is same_id, ids


def appears(fps: float, score: float, step_px: float, **kwargs: float | None) -> list[int]:
    """Ids of one walker (40 x 100 px boxes, ``step_px`` to the right per frame) who appears on the
    second frame (the first frame confirms every track at once), over three frames."""
    tracker = ByteTracker(fps, **kwargs)  # type: ignore[arg-type]
    tracker.update(Detections.empty())
    out = []
    for step in range(3):
        x = 100 + step_px * step
        out.append(int(tracker.update(dets(boxes((x, 10, x + 40, 110)), [score])).track_id[0]))
    return out


@pytest.mark.parametrize(
    ("case", "fps", "score", "kwargs", "expected"),
    [
        ("official: reported from its second frame", 5.0, 0.95, {}, [-1, 1, 1]),
        ("confident at 5 fps: reported at birth", 5.0, 0.95, {"confirm_thresh": 0.9}, [1, 1, 1]),
        ("exactly at the threshold (float32, as every score)", 5.0, 0.9, {"confirm_thresh": 0.9}, [1, 1, 1]),
        ("below the threshold: waits", 5.0, 0.85, {"confirm_thresh": 0.9}, [-1, 1, 1]),
        ("above 10 fps: never at birth", 30.0, 0.95, {"confirm_thresh": 0.9}, [-1, 1, 1]),
    ],
)
def test_confident_new_track_is_reported_at_birth_at_low_fps(
    case: str, fps: float, score: float, kwargs: dict[str, float], expected: list[int]
) -> None:
    assert appears(fps, score, 5.0, **kwargs) == expected, case


@pytest.mark.parametrize(
    ("case", "fps", "kwargs", "expected"),
    [
        ("5 fps: confirmed on its second frame by centre distance (step 5b)", 5.0, {}, [-1, 1, 1]),
        ("5 fps, centre association off: never confirmed", 5.0, {"center_gate": 0.0}, [-1, -1, -1]),
        ("30 fps: IoU only, as the official ByteTrack", 30.0, {}, [-1, -1, -1]),
    ],
)
def test_unconfirmed_track_is_confirmed_by_centre_distance_at_low_fps(
    case: str, fps: float, kwargs: dict[str, float], expected: list[int]
) -> None:
    # 45 px steps of a 40 px wide box: its birth box and the next detection do not overlap.
    assert appears(fps, 0.8, 45.0, **kwargs) == expected, case


@pytest.mark.parametrize(("fps", "expected"), [(5.0, 3.0), (10.0, 3.0), (14.0, 2.5), (30.0, 2.5)])
def test_default_link_distance_follows_the_frame_rate(fps: float, expected: float) -> None:
    assert ByteTracker(fps).link_distance == expected
    assert ByteTracker(fps, link_distance=4.0).link_distance == 4.0
