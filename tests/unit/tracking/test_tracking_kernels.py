"""Table-driven checks of the Numba kernels against plain numpy / scipy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from edge.tracking import kernels as k


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges do not overlap
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
        ((0, 0, 10, 10), (2, 2, 4, 4), 4 / 100),  # contained
        ((0, 0, 0, 10), (0, 0, 0, 10), 0.0),  # zero area
    ],
)
def test_iou(a: tuple[float, ...], b: tuple[float, ...], want: float) -> None:
    assert k.iou(*map(float, a), *map(float, b)) == pytest.approx(want)
    assert k.iou(*map(float, b), *map(float, a)) == pytest.approx(want)


def _lsa(cost: np.ndarray) -> list[tuple[int, int]]:
    nr, nc = cost.shape
    if nr > nc:
        t = np.ascontiguousarray(cost.T)
        return sorted((int(c), int(r)) for r, c in _lsa_square(t))
    return _lsa_square(np.ascontiguousarray(cost))


def _lsa_square(cost: np.ndarray) -> list[tuple[int, int]]:
    nr, nc = cost.shape
    big = max(nr, nc)
    col4row = np.zeros(big, np.int64)
    k.solve_lsa(
        cost, nr, nc, col4row, np.zeros(3 * big), np.zeros(3 * big, np.int64), np.zeros(2 * big, np.bool_)
    )
    return [(r, int(col4row[r])) for r in range(nr)]


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 7), (7, 4), (12, 12), (30, 18)])
@pytest.mark.parametrize("ties", [False, True])
def test_assignment_matches_scipy_including_ties(shape: tuple[int, int], ties: bool) -> None:
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for _ in range(20):
        cost = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.random(shape)
        rows, cols = linear_sum_assignment(cost)
        assert _lsa(cost) == list(zip(rows.tolist(), cols.tolist(), strict=True))


def _clipped(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    nr, nc = cost.shape
    big = max(nr, nc, 1)
    match_r = np.zeros(big, np.int64)
    match_c = np.zeros(big, np.int64)
    k.linear_assignment_clipped(
        cost,
        nr,
        nc,
        thresh,
        match_r,
        match_c,
        np.zeros(max(nr * nc, 1)),
        np.zeros(big, np.int64),
        np.zeros(3 * big),
        np.zeros(3 * big, np.int64),
        np.zeros(2 * big, np.bool_),
    )
    return match_r[:nr], match_c[:nc]


@pytest.mark.parametrize(
    ("cost", "thresh", "rows"),
    [
        ([[0.1, 0.9], [0.9, 0.2]], 0.8, [0, 1]),
        ([[0.1, 0.9], [0.9, 0.85]], 0.8, [0, -1]),  # over the limit: no match
        ([[0.8]], 0.8, [-1]),  # at the limit: no match
        ([[0.3, 0.35], [0.35, 0.9]], 0.8, [1, 0]),  # 0.35 + 0.35 < 0.3 + (0.8 unmatched row + col)
        ([[0.1, 0.2, 0.3]], 0.8, [0]),
        ([[0.5], [0.1], [0.3]], 0.8, [-1, 0, -1]),
    ],
)
def test_clipped_assignment_leaves_expensive_pairs_unmatched(cost: Any, thresh: float, rows: Any) -> None:
    match_r, match_c = _clipped(np.array(cost, np.float64), thresh)
    assert match_r.tolist() == rows
    for r, c in enumerate(match_r):
        if c >= 0:
            assert match_c[c] == r


def test_clipped_assignment_of_empty_matrices() -> None:
    r, c = _clipped(np.zeros((0, 3)), 0.8)
    assert r.tolist() == []
    assert c.tolist() == [-1, -1, -1]
    r, c = _clipped(np.zeros((2, 0)), 0.8)
    assert r.tolist() == [-1, -1]


def test_kalman_matches_matrix_form(reference: Any) -> None:
    box = np.array([100.0, 50.0, 140.0, 150.0])
    mean = np.zeros((2, 8))
    cov = np.zeros((2, 8, 8))
    k.kalman_initiate(mean, cov, 1, *box)
    m_ref, c_ref = reference.kf_initiate(reference.box_to_xyah(box))
    np.testing.assert_allclose(mean[1], m_ref)
    np.testing.assert_allclose(cov[1], c_ref)
    kwork = np.zeros(96)
    rng = np.random.default_rng(0)
    for step in range(30):
        k.kalman_predict(mean, cov, np.array([1], np.int64), 1)
        m_ref, c_ref = reference.kf_predict(m_ref, c_ref)
        np.testing.assert_allclose(mean[1], m_ref, rtol=1e-10, err_msg=f"predict {step}")
        np.testing.assert_allclose(cov[1], c_ref, rtol=1e-10, atol=1e-12)
        meas = box + step * 3.0 + rng.normal(0, 1, 4)
        k.kalman_update(mean, cov, 1, *meas, kwork)
        m_ref, c_ref = reference.kf_update(m_ref, c_ref, reference.box_to_xyah(meas))
        np.testing.assert_allclose(mean[1], m_ref, rtol=1e-9, err_msg=f"update {step}")
        np.testing.assert_allclose(cov[1], c_ref, rtol=1e-8, atol=1e-10)
    # Velocity is learnt: the track moves about 3 px per frame in x.
    assert mean[1, 4] == pytest.approx(3.0, abs=0.5)
    assert not mean[0].any()  # other slots untouched
