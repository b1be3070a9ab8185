"""Numba kernels of the ByteTrack tracker: Kalman filter, IoU, score fusion, assignment, one frame step.

Every kernel is a free function compiled with ``@njit(cache=True, nogil=True)``: compiled once per
machine into ``__pycache__`` (later processes load it in a fraction of a second) and run without the GIL,
so a tracker thread never blocks the asyncio loop or another camera's tracker.

The whole frame runs in one call (:func:`step`) because a Numba call costs about a microsecond of
dispatch per call; a per-stage Python loop would spend more time dispatching than computing.

The Kalman filter is the one of the official ByteTrack / DeepSORT: state ``(cx, cy, a, h, vcx, vcy, va,
vh)`` with ``a = w / h``, constant velocity, noise standard deviations proportional to the box height
(1/20 for positions, 1/160 for velocities).

Nothing here allocates: every buffer comes in from :class:`edge.tracking.state.TrackState` and
:class:`edge.tracking.state.Scratch`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

STD_WEIGHT_POSITION = 1.0 / 20.0
STD_WEIGHT_VELOCITY = 1.0 / 160.0

# Track states stored in ``TrackState.state``.
FREE = 0
TRACKED = 1
LOST = 2

# ``params`` vector layout (float64), filled by ByteTracker.
P_TRACK_THRESH = 0
P_LOW_THRESH = 1
P_MATCH_THRESH = 2
P_NEW_THRESH = 3
P_MAX_TIME_LOST = 4
P_FUSE = 5
P_SECOND_THRESH = 6
P_UNCONFIRMED_THRESH = 7
P_DUPLICATE_IOU_DIST = 8
P_CENTER_GATE = 9
P_CONFIRM_THRESH = 10
N_PARAMS = 11

# ``counters`` vector layout (int64).
C_N_LIVE = 0
C_NEXT_ID = 1
C_FRAME = 2
C_DROPPED = 3
C_N_REMOVED = 4
C_N_FREE = 5
N_COUNTERS = 6

# Status codes returned by :func:`step`; the failing row is ``status // 4`` (see :func:`decode_status`).
OK = 0
ERR_NONFINITE = 1
ERR_NEGATIVE_SIZE = 2


@njit(cache=True, nogil=True)
def kalman_initiate(
    mean: np.ndarray, cov: np.ndarray, slot: int, x1: float, y1: float, x2: float, y2: float
) -> None:
    """Start slot ``slot`` at the box ``x1, y1, x2, y2`` with zero velocity and a height-scaled covariance."""
    w = x2 - x1
    h = y2 - y1
    mean[slot, 0] = x1 + w / 2.0
    mean[slot, 1] = y1 + h / 2.0
    mean[slot, 2] = w / h
    mean[slot, 3] = h
    for k in range(4, 8):
        mean[slot, k] = 0.0
    for r in range(8):
        for c in range(8):
            cov[slot, r, c] = 0.0
    sp = 2.0 * STD_WEIGHT_POSITION * h
    sv = 10.0 * STD_WEIGHT_VELOCITY * h
    cov[slot, 0, 0] = sp * sp
    cov[slot, 1, 1] = sp * sp
    cov[slot, 2, 2] = 1e-2 * 1e-2
    cov[slot, 3, 3] = sp * sp
    cov[slot, 4, 4] = sv * sv
    cov[slot, 5, 5] = sv * sv
    cov[slot, 6, 6] = 1e-5 * 1e-5
    cov[slot, 7, 7] = sv * sv


@njit(cache=True, nogil=True)
def kalman_predict(mean: np.ndarray, cov: np.ndarray, slots: np.ndarray, n: int) -> None:
    """Advance ``slots[:n]`` one frame: ``x += v``, ``P = F P F^T + Q`` (F = [[I, I], [0, I]])."""
    for s in range(n):
        i = slots[s]
        h = mean[i, 3]
        sp = STD_WEIGHT_POSITION * h
        sv = STD_WEIGHT_VELOCITY * h
        for k in range(4):
            mean[i, k] += mean[i, k + 4]
        # P' = F P F^T with F = [[I, I], [0, I]]: add the lower block rows to the upper ones, then the
        # right block columns to the left ones.
        for r in range(4):
            for c in range(8):
                cov[i, r, c] += cov[i, r + 4, c]
        for r in range(8):
            for c in range(4):
                cov[i, r, c] += cov[i, r, c + 4]
        cov[i, 0, 0] += sp * sp
        cov[i, 1, 1] += sp * sp
        cov[i, 2, 2] += 1e-2 * 1e-2
        cov[i, 3, 3] += sp * sp
        cov[i, 4, 4] += sv * sv
        cov[i, 5, 5] += sv * sv
        cov[i, 6, 6] += 1e-5 * 1e-5
        cov[i, 7, 7] += sv * sv


@njit(cache=True, nogil=True)
def kalman_update(
    mean: np.ndarray,
    cov: np.ndarray,
    slot: int,
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    kwork: np.ndarray,
) -> None:
    """Correct slot ``slot`` with the measured box (Cholesky solve of the 4x4 innovation covariance).

    ``kwork`` is 96 floats of scratch, so the update allocates nothing.
    """
    w = x2 - x1
    h = y2 - y1
    z0 = x1 + w / 2.0
    z1 = y1 + h / 2.0
    z2 = w / h
    z3 = h
    m3 = mean[slot, 3]
    r_pos = (STD_WEIGHT_POSITION * m3) ** 2
    # S = H P H^T + R, the top-left 4x4 block plus measurement noise.
    S = kwork[0:16].reshape((4, 4))
    for r in range(4):
        for c in range(4):
            S[r, c] = cov[slot, r, c]
    S[0, 0] += r_pos
    S[1, 1] += r_pos
    S[2, 2] += 1e-1 * 1e-1
    S[3, 3] += r_pos
    # Cholesky S = L L^T.
    L = kwork[16:32].reshape((4, 4))
    L[:] = 0.0
    for r in range(4):
        for c in range(r + 1):
            acc = S[r, c]
            for k in range(c):
                acc -= L[r, k] * L[c, k]
            if r == c:
                L[r, r] = math.sqrt(acc)
            else:
                L[r, c] = acc / L[c, c]
    # X = S^-1 (H P): solve L Y = HP, then L^T X = Y; the gain is K = X^T (8x4).
    X = kwork[32:64].reshape((4, 8))
    for c in range(8):
        for r in range(4):
            acc = cov[slot, r, c]
            for k in range(r):
                acc -= L[r, k] * X[k, c]
            X[r, c] = acc / L[r, r]
        for r in range(3, -1, -1):
            acc = X[r, c]
            for k in range(r + 1, 4):
                acc -= L[k, r] * X[k, c]
            X[r, c] = acc / L[r, r]
    y0 = z0 - mean[slot, 0]
    y1_ = z1 - mean[slot, 1]
    y2_ = z2 - mean[slot, 2]
    y3 = z3 - mean[slot, 3]
    for r in range(8):
        mean[slot, r] += X[0, r] * y0 + X[1, r] * y1_ + X[2, r] * y2_ + X[3, r] * y3
    # P -= K S K^T, with S K^T computed once (4x8).
    SK = kwork[64:96].reshape((4, 8))
    for r in range(4):
        for c in range(8):
            SK[r, c] = S[r, 0] * X[0, c] + S[r, 1] * X[1, c] + S[r, 2] * X[2, c] + S[r, 3] * X[3, c]
    for r in range(8):
        for c in range(8):
            cov[slot, r, c] -= (
                X[0, r] * SK[0, c] + X[1, r] * SK[1, c] + X[2, r] * SK[2, c] + X[3, r] * SK[3, c]
            )


@njit(cache=True, nogil=True)
def mean_to_xyxy(mean: np.ndarray, slot: int, out: np.ndarray, row: int) -> None:
    """Write the box of slot ``slot`` (from its Kalman mean) into ``out[row]`` as x1, y1, x2, y2."""
    w = mean[slot, 2] * mean[slot, 3]
    h = mean[slot, 3]
    x1 = mean[slot, 0] - w / 2.0
    y1 = mean[slot, 1] - h / 2.0
    out[row, 0] = x1
    out[row, 1] = y1
    out[row, 2] = x1 + w
    out[row, 3] = y1 + h


@njit(cache=True, nogil=True)
def iou(
    ax1: float, ay1: float, ax2: float, ay2: float, bx1: float, by1: float, bx2: float, by2: float
) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0 when they do not overlap)."""
    iw = min(ax2, bx2) - max(ax1, bx1)
    if iw <= 0.0:
        return 0.0
    ih = min(ay2, by2) - max(ay1, by1)
    if ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if union <= 0.0:
        return 0.0
    return inter / union


@njit(cache=True, nogil=True)
def iou_cost(
    track_boxes: np.ndarray,
    tracks: np.ndarray,
    n_tracks: int,
    dets: np.ndarray,
    det_rows: np.ndarray,
    n_dets: int,
    scores: np.ndarray,
    fuse: bool,
    cost: np.ndarray,
) -> None:
    """``cost[i, j] = 1 - IoU(track i, det j)``, or ``1 - IoU * score_j`` with score fusion.

    ``track_boxes`` is indexed by slot (``tracks[i]``), ``dets``/``scores`` by row (``det_rows[j]``).
    """
    for i in range(n_tracks):
        s = tracks[i]
        tx1 = track_boxes[s, 0]
        ty1 = track_boxes[s, 1]
        tx2 = track_boxes[s, 2]
        ty2 = track_boxes[s, 3]
        for j in range(n_dets):
            r = det_rows[j]
            v = iou(
                tx1, ty1, tx2, ty2, float(dets[r, 0]), float(dets[r, 1]), float(dets[r, 2]), float(dets[r, 3])
            )
            if fuse:
                v = v * float(scores[r])
            cost[i, j] = 1.0 - v


@njit(cache=True, nogil=True)
def center_cost(
    track_boxes: np.ndarray,
    tracks: np.ndarray,
    n_tracks: int,
    dets: np.ndarray,
    det_rows: np.ndarray,
    n_dets: int,
    gate: float,
    cost: np.ndarray,
) -> None:
    """``cost[i, j]`` = distance between the centres of track i's box and det j, in heights of the
    track's box; ``gate`` (never a match) where the heights differ by more than 1.5x."""
    for i in range(n_tracks):
        s = tracks[i]
        th = track_boxes[s, 3] - track_boxes[s, 1]
        tcx = 0.5 * (track_boxes[s, 0] + track_boxes[s, 2])
        tcy = 0.5 * (track_boxes[s, 1] + track_boxes[s, 3])
        for j in range(n_dets):
            r = det_rows[j]
            dh = float(dets[r, 3]) - float(dets[r, 1])
            if th <= 0.0 or dh > 1.5 * th or th > 1.5 * dh:
                cost[i, j] = gate
                continue
            dx = 0.5 * (float(dets[r, 0]) + float(dets[r, 2])) - tcx
            dy = 0.5 * (float(dets[r, 1]) + float(dets[r, 3])) - tcy
            cost[i, j] = math.sqrt(dx * dx + dy * dy) / th


@njit(cache=True, nogil=True)
def _augmenting_path(
    nc: int,
    cost: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    path: np.ndarray,
    row4col: np.ndarray,
    spc: np.ndarray,
    i: int,
    SR: np.ndarray,
    SC: np.ndarray,
    remaining: np.ndarray,
) -> tuple[int, float]:
    """Shortest augmenting path from row ``i`` (Crouse 2016, the algorithm of scipy's
    ``linear_sum_assignment``, with the same tie-breaking so both give the same answer on ties)."""
    min_val = 0.0
    num_remaining = nc
    for it in range(nc):
        remaining[it] = nc - it - 1
    SR[:] = False
    SC[:] = False
    spc[:] = np.inf
    sink = -1
    while sink == -1:
        index = -1
        lowest = np.inf
        SR[i] = True
        for it in range(num_remaining):
            j = remaining[it]
            r = min_val + cost[i, j] - u[i] - v[j]
            if r < spc[j]:
                path[j] = i
                spc[j] = r
            if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                lowest = spc[j]
                index = it
        min_val = lowest
        if min_val == np.inf:
            return -1, min_val
        j = remaining[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        SC[j] = True
        num_remaining -= 1
        remaining[index] = remaining[num_remaining]
    return sink, min_val


@njit(cache=True, nogil=True)
def solve_lsa(
    cost: np.ndarray,
    nr: int,
    nc: int,
    col4row: np.ndarray,
    work_f: np.ndarray,
    work_i: np.ndarray,
    work_b: np.ndarray,
) -> None:
    """Minimum-cost assignment of a dense ``nr x nc`` matrix with ``nr <= nc`` (every row assigned).

    ``col4row[:nr]`` receives each row's column. ``work_f`` needs ``nr + 2 nc`` floats, ``work_i``
    ``3 nc`` ints, ``work_b`` ``nr + nc`` bools.
    """
    u = work_f[:nr]
    v = work_f[nr : nr + nc]
    spc = work_f[nr + nc : nr + 2 * nc]
    path = work_i[:nc]
    row4col = work_i[nc : 2 * nc]
    remaining = work_i[2 * nc : 3 * nc]
    SR = work_b[:nr]
    SC = work_b[nr : nr + nc]
    u[:] = 0.0
    v[:] = 0.0
    path[:] = -1
    row4col[:] = -1
    col4row[:nr] = -1
    for cur_row in range(nr):
        sink, min_val = _augmenting_path(nc, cost, u, v, path, row4col, spc, cur_row, SR, SC, remaining)
        if sink < 0:
            return
        u[cur_row] += min_val
        for i in range(nr):
            if SR[i] and i != cur_row:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if SC[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            tmp = col4row[i]
            col4row[i] = j
            j = tmp
            if i == cur_row:
                break


@njit(cache=True, nogil=True)
def linear_assignment_clipped(
    cost: np.ndarray,
    nr: int,
    nc: int,
    thresh: float,
    match_r: np.ndarray,
    match_c: np.ndarray,
    tbuf: np.ndarray,
    col4row: np.ndarray,
    work_f: np.ndarray,
    work_i: np.ndarray,
    work_b: np.ndarray,
) -> None:
    """Assign rows to columns minimising total cost, where a pair costing ``>= thresh`` is no match.

    Equivalent to the official ByteTrack's ``lap.lapjv(extend_cost=True, cost_limit=thresh)``: leaving
    a row and a column unmatched costs ``thresh``, so clipping costs at ``thresh`` and solving the dense
    problem gives the same optimum. Writes ``match_r[:nr]`` (column or -1) and ``match_c[:nc]`` (row or
    -1). ``tbuf`` is scratch of at least ``nr * nc`` floats for the transposed/clipped matrix.
    """
    match_r[:nr] = -1
    match_c[:nc] = -1
    if nr == 0 or nc == 0:
        return
    if nr <= nc:
        clipped = tbuf[: nr * nc].reshape((nr, nc))
        for i in range(nr):
            for j in range(nc):
                clipped[i, j] = min(cost[i, j], thresh)
        solve_lsa(clipped, nr, nc, col4row, work_f, work_i, work_b)
        for i in range(nr):
            j = col4row[i]
            if j >= 0 and cost[i, j] < thresh:
                match_r[i] = j
                match_c[j] = i
    else:
        # scipy transposes a tall matrix; doing the same keeps tie-breaking identical.
        clipped = tbuf[: nr * nc].reshape((nc, nr))
        for j in range(nc):
            for i in range(nr):
                clipped[j, i] = min(cost[i, j], thresh)
        solve_lsa(clipped, nc, nr, col4row, work_f, work_i, work_b)
        for j in range(nc):
            i = col4row[j]
            if i >= 0 and cost[i, j] < thresh:
                match_r[i] = j
                match_c[j] = i


@njit(cache=True, nogil=True)
def _validate(xyxy: np.ndarray, scores: np.ndarray, n: int) -> int:
    for r in range(n):
        x1 = xyxy[r, 0]
        y1 = xyxy[r, 1]
        x2 = xyxy[r, 2]
        y2 = xyxy[r, 3]
        if not (
            math.isfinite(x1)
            and math.isfinite(y1)
            and math.isfinite(x2)
            and math.isfinite(y2)
            and math.isfinite(scores[r])
        ):
            return r * 4 + ERR_NONFINITE
        if x2 < x1 or y2 < y1:
            return r * 4 + ERR_NEGATIVE_SIZE
    return OK


@njit(cache=True, nogil=True)
def _remove(
    slot: int,
    state: np.ndarray,
    activated: np.ndarray,
    track_id: np.ndarray,
    removed: np.ndarray,
    counters: np.ndarray,
) -> None:
    """Free ``slot`` and report its id if downstream ever saw it (it was confirmed)."""
    if activated[slot]:
        removed[counters[C_N_REMOVED]] = track_id[slot]
        counters[C_N_REMOVED] += 1
    state[slot] = FREE


@njit(cache=True, nogil=True)
def _compact(live: np.ndarray, n_live: int, state: np.ndarray, free: np.ndarray, counters: np.ndarray) -> int:
    """Drop freed slots from ``live[:n_live]`` (keeping increasing id order), push them on the free
    stack, return the new live count."""
    w = 0
    for k in range(n_live):
        s = live[k]
        if state[s] == FREE:
            free[counters[C_N_FREE]] = s
            counters[C_N_FREE] += 1
        else:
            live[w] = s
            w += 1
    return w


@njit(cache=True, nogil=True)
def _take_detection(
    mean: np.ndarray,
    cov: np.ndarray,
    s: int,
    xyxy: np.ndarray,
    r: int,
    kwork: np.ndarray,
    last_frame: np.ndarray,
    det_row: np.ndarray,
    frame: int,
) -> None:
    """Track slot ``s`` matched detection row ``r``: Kalman update, seen this frame, output row."""
    kalman_update(
        mean, cov, s, float(xyxy[r, 0]), float(xyxy[r, 1]), float(xyxy[r, 2]), float(xyxy[r, 3]), kwork
    )
    last_frame[s] = frame
    det_row[s] = r


@njit(cache=True, nogil=True)
def _keep_unmatched(items: np.ndarray, n: int, match: np.ndarray) -> int:
    """Compact ``items[:n]`` in place to those whose ``match`` is -1 (order kept); return how many."""
    w = 0
    for i in range(n):
        if match[i] < 0:
            items[w] = items[i]
            w += 1
    return w


@njit(cache=True, nogil=True)
def _centre_round(
    tracks: np.ndarray,
    n_tracks: int,
    rows: np.ndarray,
    n_rows: int,
    gate: float,
    confirm: bool,
    xyxy: np.ndarray,
    boxes: np.ndarray,
    mean: np.ndarray,
    cov: np.ndarray,
    kwork: np.ndarray,
    last_frame: np.ndarray,
    det_row: np.ndarray,
    activated: np.ndarray,
    frame: int,
    cost: np.ndarray,
    tbuf: np.ndarray,
    match_r: np.ndarray,
    match_c: np.ndarray,
    col4row: np.ndarray,
    work_f: np.ndarray,
    work_i: np.ndarray,
    work_b: np.ndarray,
) -> tuple[int, int]:
    """Match ``tracks[:n_tracks]`` to detection ``rows[:n_rows]`` by centre distance in heights of the
    track's box (limit ``gate``; steps 3b and 5b of docs/tracking.md); matched tracks take their
    detection (and are confirmed with ``confirm``). Both lists are compacted to what is left; returns
    their new lengths."""
    c = cost[: n_tracks * n_rows].reshape((n_tracks, n_rows))
    center_cost(boxes, tracks, n_tracks, xyxy, rows, n_rows, gate, c)
    linear_assignment_clipped(
        c, n_tracks, n_rows, gate, match_r, match_c, tbuf, col4row, work_f, work_i, work_b
    )
    for i in range(n_tracks):
        j = match_r[i]
        if j >= 0:
            s = tracks[i]
            _take_detection(mean, cov, s, xyxy, rows[j], kwork, last_frame, det_row, frame)
            if confirm:
                activated[s] = True
    return _keep_unmatched(tracks, n_tracks, match_r), _keep_unmatched(rows, n_rows, match_c)


@njit(cache=True, nogil=True)
def step(
    xyxy: np.ndarray,
    scores: np.ndarray,
    n: int,
    params: np.ndarray,
    mean: np.ndarray,
    cov: np.ndarray,
    track_id: np.ndarray,
    state: np.ndarray,
    activated: np.ndarray,
    last_frame: np.ndarray,
    start_frame: np.ndarray,
    det_row: np.ndarray,
    live: np.ndarray,
    free: np.ndarray,
    counters: np.ndarray,
    boxes: np.ndarray,
    removed: np.ndarray,
    out_ids: np.ndarray,
    det_idx: np.ndarray,
    pool: np.ndarray,
    cost: np.ndarray,
    tbuf: np.ndarray,
    match_r: np.ndarray,
    match_c: np.ndarray,
    col4row: np.ndarray,
    work_f: np.ndarray,
    work_i: np.ndarray,
    work_b: np.ndarray,
    kwork: np.ndarray,
) -> int:
    """Run one ByteTrack frame on ``xyxy[:n]``, ``scores[:n]``; fill ``out_ids[:n]``.

    Returns :data:`OK`, or ``row * 4 + code`` for the first invalid row (nothing is changed then).
    The rules are written out in docs/tracking.md. State arrays are indexed by slot; ``live[:n_live]``
    lists the used slots in increasing track id, which fixes the row order of every cost matrix.
    """
    status = _validate(xyxy, scores, n)
    if status != OK:
        return status
    track_thresh = np.float32(params[P_TRACK_THRESH])
    low_thresh = np.float32(params[P_LOW_THRESH])
    new_thresh = np.float32(params[P_NEW_THRESH])
    confirm_thresh = np.float32(params[P_CONFIRM_THRESH])
    match_thresh = params[P_MATCH_THRESH]
    max_time_lost = params[P_MAX_TIME_LOST]
    fuse = params[P_FUSE] != 0.0
    capacity = mean.shape[0]

    counters[C_FRAME] += 1
    frame = counters[C_FRAME]
    counters[C_N_REMOVED] = 0
    n_live = counters[C_N_LIVE]

    # Detections: high (score > track_thresh) then low (low_thresh < score <= track_thresh), row order.
    # Zero-area boxes are skipped: they cannot be measured (aspect ratio w / h).
    hi = det_idx[:n]
    lo = det_idx[n : 2 * n]
    n_hi = 0
    n_lo = 0
    for r in range(n):
        out_ids[r] = -1
        if xyxy[r, 2] <= xyxy[r, 0] or xyxy[r, 3] <= xyxy[r, 1]:
            continue
        s = scores[r]
        if s > track_thresh:
            hi[n_hi] = r
            n_hi += 1
        elif s > low_thresh:
            lo[n_lo] = r
            n_lo += 1

    # Pool: confirmed tracked tracks, then lost ones, each in increasing id; unconfirmed kept apart.
    n_pool = 0
    for k in range(n_live):
        s = live[k]
        det_row[s] = -1
        if state[s] == TRACKED and activated[s]:
            pool[n_pool] = s
            n_pool += 1
    n_conf = n_pool
    for k in range(n_live):
        s = live[k]
        if state[s] == LOST:
            pool[n_pool] = s
            n_pool += 1
    unconf = pool[capacity : 2 * capacity]
    n_unconf = 0
    for k in range(n_live):
        s = live[k]
        if state[s] == TRACKED and not activated[s]:
            unconf[n_unconf] = s
            n_unconf += 1

    # Predict the pool; a lost track coasts without height velocity (official rule).
    for k in range(n_conf, n_pool):
        mean[pool[k], 7] = 0.0
    kalman_predict(mean, cov, pool, n_pool)
    for k in range(n_pool):
        mean_to_xyxy(mean, pool[k], boxes, pool[k])

    # (1) high detections against tracked + lost.
    c = cost[: n_pool * n_hi].reshape((n_pool, n_hi))
    iou_cost(boxes, pool, n_pool, xyxy, hi, n_hi, scores, fuse, c)
    linear_assignment_clipped(
        c, n_pool, n_hi, match_thresh, match_r, match_c, tbuf, col4row, work_f, work_i, work_b
    )
    rest = pool[2 * capacity : 3 * capacity]  # tracked tracks left for the low detections
    n_rest = 0
    gate = params[P_CENTER_GATE]
    for k in range(n_pool):
        s = pool[k]
        j = match_r[k]
        if j >= 0:
            r = hi[j]
            _take_detection(mean, cov, s, xyxy, r, kwork, last_frame, det_row, frame)
            state[s] = TRACKED
            activated[s] = True
        elif k < n_conf:
            rest[n_rest] = s
            n_rest += 1
    # High detections left over, in row order.
    hi_left = det_idx[2 * n : 3 * n]
    n_hi_left = 0
    for j in range(n_hi):
        if match_c[j] < 0:
            hi_left[n_hi_left] = hi[j]
            n_hi_left += 1
    if gate > 0.0:
        # (1b) low frame rates only: tracked tracks and high detections IoU left unmatched, by
        # predicted-centre distance in track heights (cost >= gate never matches; heights within
        # 1.5x). Lost tracks are left out: matching their coasting boxes by distance cost IDF1.
        n_rest, n_hi_left = _centre_round(
            rest, n_rest, hi_left, n_hi_left, gate, False, xyxy, boxes, mean, cov, kwork, last_frame,
            det_row, activated, frame, cost, tbuf, match_r, match_c, col4row, work_f, work_i, work_b,
        )  # fmt: skip

    # (2) low detections against the tracked tracks still unmatched, plain IoU, limit 0.5.
    c = cost[: n_rest * n_lo].reshape((n_rest, n_lo))
    iou_cost(boxes, rest, n_rest, xyxy, lo, n_lo, scores, False, c)
    linear_assignment_clipped(
        c, n_rest, n_lo, params[P_SECOND_THRESH], match_r, match_c, tbuf, col4row, work_f, work_i, work_b
    )
    for k in range(n_rest):
        s = rest[k]
        j = match_r[k]
        if j >= 0:
            r = lo[j]
            _take_detection(mean, cov, s, xyxy, r, kwork, last_frame, det_row, frame)
        else:
            state[s] = LOST

    # (3) leftover high detections against unconfirmed tracks (not predicted: official rule).
    for k in range(n_unconf):
        mean_to_xyxy(mean, unconf[k], boxes, unconf[k])
    c = cost[: n_unconf * n_hi_left].reshape((n_unconf, n_hi_left))
    iou_cost(boxes, unconf, n_unconf, xyxy, hi_left, n_hi_left, scores, fuse, c)
    linear_assignment_clipped(
        c,
        n_unconf,
        n_hi_left,
        params[P_UNCONFIRMED_THRESH],
        match_r,
        match_c,
        tbuf,
        col4row,
        work_f,
        work_i,
        work_b,
    )
    for k in range(n_unconf):
        j = match_r[k]
        if j >= 0:
            s = unconf[k]
            _take_detection(mean, cov, s, xyxy, hi_left[j], kwork, last_frame, det_row, frame)
            activated[s] = True
    n_unconf = _keep_unmatched(unconf, n_unconf, match_r)
    n_hi_left = _keep_unmatched(hi_left, n_hi_left, match_c)
    if gate > 0.0:
        # (5b) low frame rates only: the same centre-distance fallback for the unconfirmed tracks IoU
        # left unmatched (their box is where they were born, one frame ago). At 5 fps a walker moves
        # out of its own box between two frames and would otherwise never be confirmed.
        n_unconf, n_hi_left = _centre_round(
            unconf, n_unconf, hi_left, n_hi_left, gate, True, xyxy, boxes, mean, cov, kwork, last_frame,
            det_row, activated, frame, cost, tbuf, match_r, match_c, col4row, work_f, work_i, work_b,
        )  # fmt: skip
    for k in range(n_unconf):
        _remove(unconf[k], state, activated, track_id, removed, counters)

    # (4) new tracks from the remaining high detections that pass the new-track threshold; slots of
    # the unconfirmed tracks just removed are free again.
    n_live = _compact(live, n_live, state, free, counters)
    n_new_start = n_live
    for j in range(n_hi_left):
        r = hi_left[j]
        if scores[r] < new_thresh:
            continue
        if counters[C_N_FREE] == 0:
            counters[C_DROPPED] += 1
            continue
        counters[C_N_FREE] -= 1
        s = free[counters[C_N_FREE]]
        kalman_initiate(
            mean, cov, s, float(xyxy[r, 0]), float(xyxy[r, 1]), float(xyxy[r, 2]), float(xyxy[r, 3])
        )
        track_id[s] = counters[C_NEXT_ID]
        counters[C_NEXT_ID] += 1
        state[s] = TRACKED
        # Confirmed at birth on the first frame (official), or at low frame rates when the detection
        # is confident enough (P_CONFIRM_THRESH > 1 turns that off).
        activated[s] = frame == 1 or scores[r] >= confirm_thresh
        last_frame[s] = frame
        start_frame[s] = frame
        det_row[s] = r
        live[n_live] = s
        n_live += 1

    # (5) lost tracks past max_time_lost are removed.
    for k in range(n_new_start):
        s = live[k]
        if state[s] == LOST and frame - last_frame[s] > max_time_lost:
            _remove(s, state, activated, track_id, removed, counters)

    # Duplicates: a tracked and a lost track with IoU > 0.85 keep only the one tracked for longer
    # (the tracked one loses ties). Decisions are collected first, then applied, as the official code.
    drop = work_b[:capacity]
    drop[:] = False
    for k in range(n_live):
        s = live[k]
        if state[s] == TRACKED:
            mean_to_xyxy(mean, s, boxes, s)
    for a in range(n_live):
        sa = live[a]
        if state[sa] != TRACKED:
            continue
        for b in range(n_live):
            sb = live[b]
            if state[sb] != LOST:
                continue
            d = 1.0 - iou(
                boxes[sa, 0],
                boxes[sa, 1],
                boxes[sa, 2],
                boxes[sa, 3],
                boxes[sb, 0],
                boxes[sb, 1],
                boxes[sb, 2],
                boxes[sb, 3],
            )
            if d < params[P_DUPLICATE_IOU_DIST]:
                if last_frame[sa] - start_frame[sa] > last_frame[sb] - start_frame[sb]:
                    drop[sb] = True
                else:
                    drop[sa] = True
    for k in range(n_live):
        s = live[k]
        if drop[s] and state[s] != FREE:
            _remove(s, state, activated, track_id, removed, counters)

    # Output: each confirmed track matched this frame labels its detection row.
    for k in range(n_live):
        s = live[k]
        if state[s] == TRACKED and activated[s] and det_row[s] >= 0:
            out_ids[det_row[s]] = track_id[s]

    counters[C_N_LIVE] = _compact(live, n_live, state, free, counters)
    return OK


@njit(cache=True, nogil=True)
def extras(
    xyxy: np.ndarray,
    n: int,
    link_distance: float,
    state: np.ndarray,
    activated: np.ndarray,
    last_frame: np.ndarray,
    det_row: np.ndarray,
    boxes: np.ndarray,
    track_id: np.ndarray,
    reported: np.ndarray,
    live: np.ndarray,
    counters: np.ndarray,
    used: np.ndarray,
    out_box: np.ndarray,
    out_link: np.ndarray,
) -> None:
    """After :func:`step`: each row's Kalman box and ``link_id``.

    ``out_box[r]`` is the Kalman box of the confirmed track matched to row r this frame, else the
    detection box. A track is *new* on the first frame it is reported (``reported[slot]``, the id last
    reported from each slot, is not its id yet). In row order, each new track's row gets in
    ``out_link`` the id of the nearest lost, confirmed track not linked yet whose predicted box centre
    lies within ``link_distance`` of its own heights (the lost box's height) and whose height is within
    a factor 2; ``-1`` elsewhere. ``used`` is scratch of the state's capacity.
    """
    frame = counters[C_FRAME]
    n_live = counters[C_N_LIVE]
    for r in range(n):
        for c in range(4):
            out_box[r, c] = xyxy[r, c]
        out_link[r] = -1
    for k in range(n_live):
        s = live[k]
        used[s] = False
        if state[s] == TRACKED and activated[s] and last_frame[s] == frame and det_row[s] >= 0:
            for c in range(4):
                out_box[det_row[s], c] = boxes[s, c]
            if reported[s] != track_id[s]:
                reported[s] = track_id[s]
                out_link[det_row[s]] = -2  # new: looked at below
    for r in range(n):
        if out_link[r] != -2:
            continue
        out_link[r] = -1
        if link_distance <= 0.0:
            continue
        h = float(out_box[r, 3]) - float(out_box[r, 1])
        cx = 0.5 * (float(out_box[r, 0]) + float(out_box[r, 2]))
        cy = 0.5 * (float(out_box[r, 1]) + float(out_box[r, 3]))
        best = -1
        best_d = 0.0
        for k in range(n_live):
            s = live[k]
            if state[s] != LOST or not activated[s] or used[s]:
                continue
            lh = boxes[s, 3] - boxes[s, 1]
            if lh <= 0.0 or h > 2.0 * lh or lh > 2.0 * h:
                continue
            dx = 0.5 * (boxes[s, 0] + boxes[s, 2]) - cx
            dy = 0.5 * (boxes[s, 1] + boxes[s, 3]) - cy
            d = math.sqrt(dx * dx + dy * dy) / lh
            if d <= link_distance and (best < 0 or d < best_d):
                best = s
                best_d = d
        if best >= 0:
            used[best] = True
            out_link[r] = track_id[best]
