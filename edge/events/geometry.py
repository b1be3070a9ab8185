"""Vectorised plane geometry for lines and zones (image coordinates: x right, y down).

Every function works on whole arrays of points at once, so the analytics never loop over detections in
Python. Geometry is done in ``float64``: anchors are ``float32`` pixels, but cross products of 4K-frame
coordinates lose the sign of near-collinear cases in ``float32``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Point = tuple[float, float]


def cross(a: Point, b: Point, p: F64) -> F64:
    """``(M,)`` z-component of ``(b - a) x (p - a)`` for ``(M, 2)`` points ``p``.

    Positive means ``p`` lies on the right-hand side of the directed line a->b *as seen on screen*
    (y grows downwards), negative on the left, zero on the line. For a=(0,100), b=(640,100) a point
    below the line (y > 100) gives a positive value.
    """
    dx = b[0] - a[0]
    dy = b[1] - a[1]
    return dx * (p[:, 1] - a[1]) - dy * (p[:, 0] - a[0])


def signed_distance(a: Point, b: Point, p: F64) -> F64:
    """``(M,)`` signed distance in pixels of points ``p`` from the infinite line through a and b."""
    length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
    if length == 0.0:
        msg = f"degenerate line: both points are {a}"
        raise ValueError(msg)
    return cross(a, b, p) / length


def distance_to_segment(a: Point, b: Point, p: F64) -> F64:
    """``(M,)`` distance in pixels of points ``p`` from the closed segment ab (not the infinite line:
    beyond an end it is the distance to that end)."""
    dx = b[0] - a[0]
    dy = b[1] - a[1]
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        msg = f"degenerate line: both points are {a}"
        raise ValueError(msg)
    t = np.clip(((p[:, 0] - a[0]) * dx + (p[:, 1] - a[1]) * dy) / length2, 0.0, 1.0)
    return np.hypot(p[:, 0] - (a[0] + t * dx), p[:, 1] - (a[1] + t * dy))


def crosses_segment(a: Point, b: Point, p: F64, q: F64) -> npt.NDArray[np.bool_]:
    """``(M,)`` whether the motion segment p->q meets the closed segment ab.

    The caller has already established that ``p`` and ``q`` lie strictly on opposite sides of the line
    through a and b; what is left to decide is whether the motion passes *between* a and b (endpoints
    included, so a path exactly through an endpoint counts) rather than beyond either end. That is the
    case when a and b do not lie strictly on the same side of the line through p and q.
    """
    dx = q[:, 0] - p[:, 0]
    dy = q[:, 1] - p[:, 1]
    da = dx * (a[1] - p[:, 1]) - dy * (a[0] - p[:, 0])
    db = dx * (b[1] - p[:, 1]) - dy * (b[0] - p[:, 0])
    return (da * db) <= 0.0


def points_in_polygon(polygon: F64, p: F64) -> npt.NDArray[np.bool_]:
    """``(M,)`` whether each of the ``(M, 2)`` points lies inside the ``(K, 2)`` simple polygon.

    Even-odd ray casting over all points x all edges at once (``M x K`` temporaries; zones have a handful
    of vertices). Points exactly on an edge may fall either way, which the zone inertia absorbs.
    """
    if p.shape[0] == 0:
        return np.zeros(0, np.bool_)
    x0 = polygon[None, :, 0]
    y0 = polygon[None, :, 1]
    x1 = np.concatenate((x0[:, 1:], x0[:, :1]), axis=1)
    y1 = np.concatenate((y0[:, 1:], y0[:, :1]), axis=1)
    px = p[:, 0][:, None]
    py = p[:, 1][:, None]
    straddles = (y0 > py) != (y1 > py)
    # Where the edge does not straddle the ray the division is masked out below; guard it anyway.
    dy = np.where(y1 == y0, 1.0, y1 - y0)
    x_at = x0 + (py - y0) * (x1 - x0) / dy
    hits = straddles & (px < x_at)
    inside: npt.NDArray[np.bool_] = (np.count_nonzero(hits, axis=1) % 2) == 1
    return inside


def is_simple_polygon(polygon: F64) -> bool:
    """Whether the closed polygon has ≥ 3 distinct vertices, non-zero area and no self-intersection."""
    k = polygon.shape[0]
    if k < 3:
        return False
    x, y = polygon[:, 0], polygon[:, 1]
    area2 = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if area2 == 0.0:
        return False
    for i in range(k):
        a = (float(x[i]), float(y[i]))
        b = (float(x[(i + 1) % k]), float(y[(i + 1) % k]))
        for j in range(i + 1, k):
            if j in {i, (i + 1) % k} or (j + 1) % k == i:
                continue  # adjacent edges share a vertex
            c = np.array([[x[j], y[j]]])
            d = np.array([[x[(j + 1) % k], y[(j + 1) % k]]])
            s1 = cross(a, b, c)[0]
            s2 = cross(a, b, d)[0]
            if s1 * s2 > 0:
                continue
            if s1 == 0 and s2 == 0:
                # Collinear edges intersect only if their extents overlap.
                axis = 0 if abs(b[0] - a[0]) >= abs(b[1] - a[1]) else 1
                lo1, hi1 = sorted((a[axis], b[axis]))
                lo2, hi2 = sorted((float(c[0, axis]), float(d[0, axis])))
                if hi1 < lo2 or hi2 < lo1:
                    continue
                return False
            cc = (float(c[0, 0]), float(c[0, 1]))
            dd = (float(d[0, 0]), float(d[0, 1]))
            pa = np.array([a])
            pb = np.array([b])
            if cross(cc, dd, pa)[0] * cross(cc, dd, pb)[0] <= 0:
                return False
    return True
