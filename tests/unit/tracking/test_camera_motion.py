"""Camera motion voted by the tracks (edge/tracking/camera_motion.py), through ByteTracker."""

from __future__ import annotations

import numpy as np
import pytest

from edge.tracking import ByteTracker

W, H = 30.0, 80.0  # a person's box


def crowd(xs: list[float], y: float = 300.0) -> np.ndarray:
    return np.array([[x, y, x + W, y + H] for x in xs], np.float32)


def run(frames: list[np.ndarray], fps: float = 5.0, **kw: object) -> tuple[ByteTracker, list[np.ndarray]]:
    tracker = ByteTracker(fps, **kw)  # type: ignore[arg-type]
    ids = [tracker.update_arrays(f, np.full(len(f), 0.9, np.float32)) for f in frames]
    return tracker, ids


PEOPLE = [100.0, 250.0, 400.0, 550.0, 700.0, 850.0]
PAN = [0.0, 0.0, 0.0, 100.0, 200.0, 300.0, 400.0]  # still, then a sudden pan of 100 px per frame


@pytest.mark.parametrize("fps", [5.0, 30.0])
@pytest.mark.parametrize(("camera_motion", "same_ids"), [(True, True), (False, False)])
def test_panning_camera_keeps_every_id(fps: float, camera_motion: bool, same_ids: bool) -> None:
    """Six people standing 150 px apart; the camera starts panning 100 px (3 box widths) per frame."""
    frames = [crowd([x - pan for x in PEOPLE]) for pan in PAN]
    _tracker, ids = run(frames, fps, camera_motion=camera_motion)
    assert all(i >= 0 for i in ids[1])
    assert (ids[-1].tolist() == ids[1].tolist()) is same_ids


@pytest.mark.parametrize(("fps", "step"), [(5.0, 20.0), (30.0, 4.0)])
def test_static_camera_people_walking_apart_is_not_shifted(fps: float, step: float) -> None:
    """Half walk left, half right: no shift has the support of most tracks."""
    steps = [-step, step, -step, step, -step, step]
    frames = [crowd([x + s * t for x, s in zip(PEOPLE, steps, strict=True)]) for t in range(12)]
    tracker, ids = run(frames, fps, camera_motion=True)
    assert tracker.last_shift == (0.0, 0.0)
    assert ids[-1].tolist() == ids[1].tolist()


@pytest.mark.parametrize(("fps", "step"), [(5.0, 20.0), (30.0, 4.0)])
def test_static_camera_crowd_walking_together_is_not_shifted(fps: float, step: float) -> None:
    """Everyone walks the same way at a steady pace: their own velocities explain it, nothing to vote."""
    tracker = ByteTracker(fps, camera_motion=True)
    shifts = []
    for t in range(12):
        frame = crowd([x + step * t for x in PEOPLE])
        tracker.update_arrays(frame, np.full(len(frame), 0.9, np.float32))
        shifts.append(tracker.last_shift)
    # The first frames teach the tracks their velocity; from then on no shift is voted.
    assert all(s == (0.0, 0.0) for s in shifts[4:]), shifts


def test_too_few_tracks_are_not_a_camera() -> None:
    frames = [crowd([x - 45.0 * t for x in PEOPLE[:2]]) for t in range(4)]
    tracker, _ = run(frames, camera_motion=True)
    assert tracker.last_shift == (0.0, 0.0)


@pytest.mark.parametrize(("fps", "tol"), [(5.0, 0.5), (10.0, 0.5), (14.0, 0.1), (30.0, 0.1)])
def test_default_tolerance_follows_the_frame_rate(fps: float, tol: float) -> None:
    tracker = ByteTracker(fps, camera_motion=True)
    assert tracker.camera_motion is True
    assert tracker.camera_motion_tol == tol
    assert ByteTracker(fps, camera_motion=True, camera_motion_tol=0.3).camera_motion_tol == 0.3


def test_rejected_frame_changes_nothing() -> None:
    frames = [crowd([x - 45.0 * t for x in PEOPLE]) for t in range(3)]
    tracker, _ = run(frames, camera_motion=True)
    before = tracker._state.mean.copy()
    bad = crowd([x - 45.0 * 3 for x in PEOPLE])
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tracker.update_arrays(bad, np.full(len(bad), 0.9, np.float32))
    np.testing.assert_array_equal(tracker._state.mean, before)


def test_tolerance_is_validated() -> None:
    with pytest.raises(ValueError, match="camera_motion_tol"):
        ByteTracker(5.0, camera_motion=True, camera_motion_tol=0.0)
