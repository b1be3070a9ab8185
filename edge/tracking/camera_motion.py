"""Camera motion from the detections alone: a global shift voted by the tracks.

A camera that pans, or rides on a car, moves every object in the image by about the same amount
between two frames. At 5 fps that is often more than a box width, every track's prediction lands
beside its detection, and ByteTrack loses them all at once (MOT17-05, -10, -11, -13). At 30 fps it is a
few pixels, which the Kalman velocity soon follows, except when the camera starts or stops turning.
The usual remedy (BoT-SORT's GMC) estimates the motion from image features; this one needs only the
boxes, so it works the same on a live camera and on a replayed ``det.txt``:

1. Each confirmed, tracked track predicts its centre (Kalman mean + one step of velocity).
2. Each pair (one of the :data:`CANDIDATE_TRACKS` tallest tracks, a high detection of similar height)
   proposes a shift: the detection's centre minus the track's predicted centre.
3. A shift's *support* is the number of tracks that, moved by it, land within ``tol`` of their own
   height of some detection of similar height.
4. The best shift wins only if it is supported by at least :data:`MIN_SUPPORT` tracks and
   :data:`MIN_FRACTION` of them, by :data:`ZERO_GAIN` times as many tracks as no shift at all, and
   by :data:`ZERO_MARGIN` more: a static camera, where people move each their own way, keeps its
   predictions. It is refined to the median displacement of its supporters and applied to every live
   track (tracked, lost and unconfirmed) before the association, when it is at least
   :data:`MIN_SHIFT` of the median track height.

Cost: at most ``CANDIDATE_TRACKS x D`` candidates, each checked against ``T x D`` pairs (about 0.5 ms
with 40 people in view). :class:`edge.tracking.ByteTracker` runs it at every rate, with a tolerance of
0.5 heights at 10 fps and below and 0.1 above (``camera_motion_tol``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

CANDIDATE_TRACKS = 10
"""Tallest tracks whose pairs propose shifts (tall = near = measured best); bounds the cost."""
HEIGHT_RATIO = 1.3
"""A detection and a track pair up only if their heights are within this factor."""
MIN_SUPPORT = 3
"""Fewest tracks that must agree on a shift: below it there is no telling camera from people."""
MIN_FRACTION = 0.4
"""Fraction of the tracked tracks that must agree on a shift."""
ZERO_GAIN = 1.5
"""A shift must explain this many times the tracks that no shift explains."""
ZERO_MARGIN = 2
"""... and at least this many more tracks."""
MIN_SHIFT = 0.1
"""Shifts shorter than this fraction of the median track height are not applied (noise)."""


@njit(cache=True, nogil=True)
def _nearest(t: int, sx: float, sy: float, tc: np.ndarray, dc: np.ndarray, n_d: int, tol: float) -> int:
    """The detection of similar height nearest to track ``t`` shifted by (sx, sy), within ``tol``
    heights; -1 if none."""
    h = tc[t, 2]
    best_dd = (tol * h) ** 2
    found = -1
    for d in range(n_d):
        ratio = dc[d, 2] / h
        if ratio > HEIGHT_RATIO or ratio * HEIGHT_RATIO < 1.0:
            continue
        dx = dc[d, 0] - tc[t, 0] - sx
        dy = dc[d, 1] - tc[t, 1] - sy
        dd = dx * dx + dy * dy
        if dd <= best_dd:
            best_dd = dd
            found = d
    return found


@njit(cache=True, nogil=True)
def _support(sx: float, sy: float, tc: np.ndarray, n_t: int, dc: np.ndarray, n_d: int, tol: float) -> int:
    """Tracks that, shifted by (sx, sy), land within ``tol`` heights of a detection of similar height."""
    count = 0
    for t in range(n_t):
        if _nearest(t, sx, sy, tc, dc, n_d, tol) >= 0:
            count += 1
    return count


@njit(cache=True, nogil=True)
def shift_tracks(
    xyxy: np.ndarray,
    scores: np.ndarray,
    n: int,
    track_thresh: float,
    tol: float,
    mean: np.ndarray,
    state: np.ndarray,
    activated: np.ndarray,
    live: np.ndarray,
    n_live: int,
    tracked: int,
) -> tuple[float, float]:
    """Estimate the camera's shift since the last frame and add it to every live track's mean.

    ``tracked`` is the tracker's state code of a tracked track (``edge.tracking.kernels.TRACKED``). It
    is an argument, not an import, because Numba's on-disk cache freezes a global from another file
    and does not notice when that file changes (numba#1833; see tests/unit/test_numba_cache.py).

    Returns the shift applied in pixels, ``(0, 0)`` when none is (see the module docstring).
    """
    for r in range(n):
        # An invalid row makes the tracker's step refuse the whole frame and change nothing: so must this.
        for c in range(4):
            if not math.isfinite(xyxy[r, c]):
                return 0.0, 0.0
        if not math.isfinite(scores[r]) or xyxy[r, 2] < xyxy[r, 0] or xyxy[r, 3] < xyxy[r, 1]:
            return 0.0, 0.0
    tc = np.empty((max(n_live, 1), 3), np.float64)  # predicted centre x, y, height
    n_t = 0
    for k in range(n_live):
        s = live[k]
        if state[s] == tracked and activated[s] and mean[s, 3] > 0.0:
            tc[n_t, 0] = mean[s, 0] + mean[s, 4]
            tc[n_t, 1] = mean[s, 1] + mean[s, 5]
            tc[n_t, 2] = mean[s, 3]
            n_t += 1
    if n_t < MIN_SUPPORT:
        return 0.0, 0.0
    dc = np.empty((max(n, 1), 3), np.float64)
    n_d = 0
    for r in range(n):
        h = float(xyxy[r, 3]) - float(xyxy[r, 1])
        if scores[r] > track_thresh and h > 0.0 and xyxy[r, 2] > xyxy[r, 0]:
            dc[n_d, 0] = 0.5 * (float(xyxy[r, 0]) + float(xyxy[r, 2]))
            dc[n_d, 1] = 0.5 * (float(xyxy[r, 1]) + float(xyxy[r, 3]))
            dc[n_d, 2] = h
            n_d += 1
    if n_d < MIN_SUPPORT:
        return 0.0, 0.0

    # No shift can be supported by more than every track: when no shift at all already explains
    # too many of them to be beaten (the usual case on a static camera), stop before the search.
    zero = _support(0.0, 0.0, tc, n_t, dc, n_d, tol)
    if n_t < ZERO_GAIN * zero or n_t - zero < ZERO_MARGIN:
        return 0.0, 0.0

    order = np.argsort(-tc[:n_t, 2])
    best = -1
    bx = 0.0
    by = 0.0
    for i in range(min(n_t, CANDIDATE_TRACKS)):
        t = order[i]
        h = tc[t, 2]
        for d in range(n_d):
            ratio = dc[d, 2] / h
            if ratio > HEIGHT_RATIO or ratio * HEIGHT_RATIO < 1.0:
                continue
            sx = dc[d, 0] - tc[t, 0]
            sy = dc[d, 1] - tc[t, 1]
            sup = _support(sx, sy, tc, n_t, dc, n_d, tol)
            if sup > best:
                best = sup
                bx = sx
                by = sy
    if best < max(MIN_SUPPORT, MIN_FRACTION * n_t) or best < ZERO_GAIN * zero or best - zero < ZERO_MARGIN:
        return 0.0, 0.0

    # Refine: the median displacement of the supporters (each to its nearest fitting detection).
    xs = np.empty(n_t, np.float64)
    ys = np.empty(n_t, np.float64)
    m = 0
    for t in range(n_t):
        found = _nearest(t, bx, by, tc, dc, n_d, tol)
        if found >= 0:
            xs[m] = dc[found, 0] - tc[t, 0]
            ys[m] = dc[found, 1] - tc[t, 1]
            m += 1
    sx = float(np.median(xs[:m]))
    sy = float(np.median(ys[:m]))
    if math.hypot(sx, sy) < MIN_SHIFT * float(np.median(tc[:n_t, 2])):
        return 0.0, 0.0
    for k in range(n_live):
        s = live[k]
        mean[s, 0] += sx
        mean[s, 1] += sy
    return sx, sy
