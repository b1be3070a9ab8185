"""TrailBuffer: chronological trails, eviction on removal, and a hard memory bound."""

from __future__ import annotations

import numpy as np
import pytest

from edge.draw import TrailBuffer


def ids(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def pts(*xy: tuple[float, float]) -> np.ndarray:
    return np.array(xy, np.float32).reshape(-1, 2)


def as_dict(buf: TrailBuffer) -> dict[int, list[list[int]]]:
    return {tid: p.tolist() for tid, p in buf.trails()}


def test_points_come_back_oldest_first_and_wrap_at_length():
    buf = TrailBuffer(max_tracks=4, length=3)
    for i in range(5):
        buf.update(ids(9), pts((i, 10 * i)))
    assert as_dict(buf) == {9: [[2, 20], [3, 30], [4, 40]]}


def test_single_point_trails_are_not_listed_and_untracked_rows_ignored():
    buf = TrailBuffer(max_tracks=4, length=4)
    buf.update(ids(1, -1), pts((1, 1), (2, 2)))
    assert as_dict(buf) == {}
    assert len(buf) == 1
    buf.update(ids(1, -1), pts((3, 3), (2, 2)))
    assert as_dict(buf) == {1: [[1, 1], [3, 3]]}


def test_tracks_are_independent_and_removed_ids_are_evicted():
    buf = TrailBuffer(max_tracks=4, length=4)
    buf.update(ids(1, 2), pts((0, 0), (100, 100)))
    buf.update(ids(2, 1), pts((101, 101), (1, 1)))
    assert as_dict(buf) == {1: [[0, 0], [1, 1]], 2: [[100, 100], [101, 101]]}
    buf.remove([1])
    assert set(as_dict(buf)) == {2}
    assert len(buf) == 1
    # A recycled id starts a fresh trail.
    buf.update(ids(1), pts((50, 50)))
    buf.update(ids(1), pts((51, 51)))
    assert as_dict(buf)[1] == [[50, 50], [51, 51]]


def test_capacity_is_a_hard_bound_and_least_recently_seen_is_recycled():
    buf = TrailBuffer(max_tracks=2, length=4)
    buf.update(ids(1, 2), pts((0, 0), (0, 0)))
    buf.update(ids(2), pts((1, 1)))  # 1 is now the least recently seen
    buf.update(ids(3), pts((5, 5)))
    assert len(buf) == 2
    assert buf.evicted == 1
    buf.update(ids(2, 3), pts((2, 2), (6, 6)))
    assert set(as_dict(buf)) == {2, 3}


def test_more_new_tracks_in_one_frame_than_capacity_keeps_the_bound():
    buf = TrailBuffer(max_tracks=3, length=4)
    buf.update(ids(1, 2, 3, 4, 5), pts(*[(i, i) for i in range(5)]))
    assert len(buf) == 3


def test_soak_memory_stays_bounded():
    buf = TrailBuffer(max_tracks=16, length=8)
    arrays = (buf._ids.nbytes, buf._points.nbytes)
    rng = np.random.default_rng(0)
    for frame in range(3000):
        live = np.arange(frame // 10, frame // 10 + 20, dtype=np.int64)  # ids churn steadily
        buf.update(live, rng.uniform(0, 1000, (20, 2)).astype(np.float32))
        if frame % 7 == 0:
            buf.remove(live[:3])
        assert len(buf) <= 16
    assert (buf._ids.nbytes, buf._points.nbytes) == arrays
    assert all(len(p) <= 8 for _, p in buf.trails())


def test_rejects_useless_sizes():
    with pytest.raises(ValueError, match="max_tracks"):
        TrailBuffer(max_tracks=0)
    with pytest.raises(ValueError, match="length"):
        TrailBuffer(length=1)
