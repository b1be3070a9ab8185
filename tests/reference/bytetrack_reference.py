"""Plain numpy/Python ByteTrack, written from the rules in docs/tracking.md, for parity tests only.

Deliberately written the slow, obvious way (one object per track, lists, matrix-form Kalman filter,
scipy's assignment) so that it shares no code with the Numba kernels it checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

W_POS = 1.0 / 20.0
W_VEL = 1.0 / 160.0
F = np.eye(8)
for _i in range(4):
    F[_i, _i + 4] = 1.0
H = np.eye(4, 8)


def box_to_xyah(b: np.ndarray) -> np.ndarray:
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2, b[1] + h / 2, w / h, h], dtype=np.float64)


def xyah_to_box(m: np.ndarray) -> np.ndarray:
    w = m[2] * m[3]
    h = m[3]
    x1 = m[0] - w / 2
    y1 = m[1] - h / 2
    return np.array([x1, y1, x1 + w, y1 + h])


def kf_initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = z[3]
    std = np.array(
        [
            2 * W_POS * h,
            2 * W_POS * h,
            1e-2,
            2 * W_POS * h,
            10 * W_VEL * h,
            10 * W_VEL * h,
            1e-5,
            10 * W_VEL * h,
        ]
    )
    return np.r_[z, np.zeros(4)], np.diag(std**2)


def kf_predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = mean[3]
    std = np.array([W_POS * h, W_POS * h, 1e-2, W_POS * h, W_VEL * h, W_VEL * h, 1e-5, W_VEL * h])
    return F @ mean, F @ cov @ F.T + np.diag(std**2)


def kf_update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = mean[3]
    r = np.diag(np.array([W_POS * h, W_POS * h, 1e-1, W_POS * h]) ** 2)
    s = H @ cov @ H.T + r
    gain = np.linalg.solve(s, H @ cov).T  # K = P H^T S^-1 (S symmetric)
    return mean + gain @ (z - H @ mean), cov - gain @ s @ gain.T


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = min(p[2], q[2]) - max(p[0], q[0])
            ih = min(p[3], q[3]) - max(p[1], q[1])
            if iw <= 0 or ih <= 0:
                continue
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def assign(cost: np.ndarray, thresh: float) -> list[tuple[int, int]]:
    """Pairs (row, col) of the min-cost assignment where a pair costing >= thresh is no match."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(np.minimum(cost, thresh))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < thresh]


@dataclass(eq=False)
class Track:
    tid: int
    mean: np.ndarray
    cov: np.ndarray
    state: str  # "tracked" | "lost"
    confirmed: bool
    last: int
    start: int
    row: int = -1

    @property
    def box(self) -> np.ndarray:
        return xyah_to_box(self.mean)


class ReferenceByteTrack:
    def __init__(
        self,
        frame_rate: float,
        track_thresh: float = 0.6,
        low_thresh: float = 0.1,
        match_thresh: float = 0.8,
        track_buffer: int = 30,
        fuse_score: bool = True,
        max_tracks: int = 1024,
        new_track_thresh: float | None = None,
        center_gate: float = 1.0,
        confirm_thresh: float | None = None,
    ) -> None:
        self.track_thresh = np.float32(track_thresh)
        # Steps (1b) and (3b), and confirmation at birth, run at 10 fps and below only (docs/tracking.md).
        self.center_gate = center_gate if frame_rate <= 10.0 else 0.0
        self.confirm_thresh = confirm_thresh if confirm_thresh is not None and frame_rate <= 10.0 else 2.0
        self.reported: dict[int, bool] = {}
        self.low_thresh = np.float32(low_thresh)
        self.new_thresh = np.float32(track_thresh + 0.1 if new_track_thresh is None else new_track_thresh)
        self.match_thresh = match_thresh
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.fuse = fuse_score
        self.max_tracks = max_tracks
        self.tracks: list[Track] = []  # every live track, in increasing id
        self.next_id = 1
        self.frame = 0
        self.dropped = 0
        self.removed: list[int] = []

    def _remove(self, t: Track) -> None:
        self.tracks.remove(t)
        if t.confirmed:
            self.removed.append(t.tid)

    def _cost(
        self, tracks: list[Track], rows: list[int], xyxy: np.ndarray, scores: np.ndarray, fuse: bool
    ) -> np.ndarray:
        tb = np.array([t.box for t in tracks]).reshape(-1, 4)
        db = xyxy[rows].astype(np.float64).reshape(-1, 4)
        sim = iou_matrix(tb, db)
        if fuse:
            sim = sim * scores[rows].astype(np.float64)[None, :]
        return 1.0 - sim

    def _center_cost(self, tracks: list[Track], rows: list[int], xyxy: np.ndarray) -> np.ndarray:
        gate = self.center_gate
        cost = np.full((len(tracks), len(rows)), gate)
        for i, t in enumerate(tracks):
            tb = t.box
            th = tb[3] - tb[1]
            for j, r in enumerate(rows):
                db = xyxy[r].astype(np.float64)
                dh = db[3] - db[1]
                if th > 0 and dh <= 1.5 * th and th <= 1.5 * dh:
                    cost[i, j] = np.hypot(*((db[:2] + db[2:]) / 2 - (tb[:2] + tb[2:]) / 2)) / th
        return cost

    def update(self, xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
        self.frame += 1
        self.removed = []
        n = len(xyxy)
        out = np.full(n, -1, np.int64)
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        high = [r for r in range(n) if valid[r] and scores[r] > self.track_thresh]
        low = [r for r in range(n) if valid[r] and self.low_thresh < scores[r] <= self.track_thresh]
        for t in self.tracks:
            t.row = -1

        tracked = [t for t in self.tracks if t.state == "tracked" and t.confirmed]
        lost = [t for t in self.tracks if t.state == "lost"]
        unconfirmed = [t for t in self.tracks if t.state == "tracked" and not t.confirmed]
        pool = tracked + lost
        for t in pool:
            m = t.mean.copy()
            if t.state == "lost":
                m[7] = 0.0
            t.mean, t.cov = kf_predict(m, t.cov)

        def match(t: Track, r: int) -> None:
            t.mean, t.cov = kf_update(t.mean, t.cov, box_to_xyah(xyxy[r].astype(np.float64)))
            t.state = "tracked"
            t.last = self.frame
            t.row = r

        # (1) high vs tracked + lost
        pairs = assign(self._cost(pool, high, xyxy, scores, self.fuse), self.match_thresh)
        used_t = {i for i, _ in pairs}
        used_d = {j for _, j in pairs}
        for i, j in pairs:
            match(pool[i], high[j])
            pool[i].confirmed = True
        rest = [t for i, t in enumerate(pool) if i not in used_t and t.state == "tracked"]
        high_left = [r for j, r in enumerate(high) if j not in used_d]

        # (1b) low frame rates: tracked vs leftover high by predicted-centre distance in track heights
        if self.center_gate > 0:
            pairs = assign(self._center_cost(rest, high_left, xyxy), self.center_gate)
            for i, j in pairs:
                match(rest[i], high_left[j])
            done_t = {i for i, _ in pairs}
            done_d = {j for _, j in pairs}
            rest = [t for i, t in enumerate(rest) if i not in done_t]
            high_left = [r for j, r in enumerate(high_left) if j not in done_d]

        # (2) low vs remaining tracked
        pairs = assign(self._cost(rest, low, xyxy, scores, False), 0.5)
        used_t = {i for i, _ in pairs}
        for i, j in pairs:
            match(rest[i], low[j])
        for i, t in enumerate(rest):
            if i not in used_t:
                t.state = "lost"

        # (3) leftover high vs unconfirmed (not predicted)
        pairs = assign(self._cost(unconfirmed, high_left, xyxy, scores, self.fuse), 0.7)
        used_t = {i for i, _ in pairs}
        used_d = {j for _, j in pairs}
        for i, j in pairs:
            match(unconfirmed[i], high_left[j])
            unconfirmed[i].confirmed = True
        unconfirmed = [t for i, t in enumerate(unconfirmed) if i not in used_t]
        high_left = [r for j, r in enumerate(high_left) if j not in used_d]
        # (3b) low frame rates: the unconfirmed left vs the high left, by centre distance
        if self.center_gate > 0:
            pairs = assign(self._center_cost(unconfirmed, high_left, xyxy), self.center_gate)
            for i, j in pairs:
                match(unconfirmed[i], high_left[j])
                unconfirmed[i].confirmed = True
            done_t = {i for i, _ in pairs}
            done_d = {j for _, j in pairs}
            unconfirmed = [t for i, t in enumerate(unconfirmed) if i not in done_t]
            high_left = [r for j, r in enumerate(high_left) if j not in done_d]
        for t in unconfirmed:
            self._remove(t)

        # (4) new tracks
        old = list(self.tracks)
        for r in high_left:
            if scores[r] < self.new_thresh:
                continue
            if len(self.tracks) >= self.max_tracks:
                self.dropped += 1
                continue
            mean, cov = kf_initiate(box_to_xyah(xyxy[r].astype(np.float64)))
            self.tracks.append(
                Track(
                    self.next_id,
                    mean,
                    cov,
                    "tracked",
                    self.frame == 1 or bool(scores[r] >= self.confirm_thresh),
                    self.frame,
                    self.frame,
                    r,
                )
            )
            self.next_id += 1

        # (5) expire lost tracks
        for t in old:
            if t.state == "lost" and self.frame - t.last > self.max_time_lost and t in self.tracks:
                self._remove(t)

        # duplicates
        tr = [t for t in self.tracks if t.state == "tracked"]
        lo = [t for t in self.tracks if t.state == "lost"]
        drop: list[Track] = []
        if tr and lo:
            dist = 1.0 - iou_matrix(np.array([t.box for t in tr]), np.array([t.box for t in lo]))
            for i, j in zip(*np.nonzero(dist < 0.15), strict=True):
                a, b = tr[i], lo[j]
                if a.last - a.start > b.last - b.start:
                    drop.append(b)
                else:
                    drop.append(a)
        for t in self.tracks[:]:
            if t in drop:
                self._remove(t)

        for t in self.tracks:
            if t.state == "tracked" and t.confirmed and t.row >= 0:
                out[t.row] = t.tid
        return out


def reference_extras(
    ref: ReferenceByteTrack, xyxy: np.ndarray, ids: np.ndarray, link_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """What ``ByteTracker.update`` adds after a frame, from the rule in docs/tracking.md, on the
    reference's track list: (Kalman box per row, link id per row). A track is new on the first frame
    it is reported."""
    box = np.asarray(xyxy, np.float64).copy()
    new_rows = set()
    for t in ref.tracks:
        if t.state == "tracked" and t.confirmed and t.last == ref.frame and t.row >= 0:
            box[t.row] = t.box
            if t.tid not in ref.reported:
                ref.reported[t.tid] = True
                new_rows.add(t.row)
    link = np.full(len(ids), -1, np.int64)
    lost = sorted((t for t in ref.tracks if t.state == "lost"), key=lambda t: t.tid)
    used: set[int] = set()
    for r in range(len(ids)):
        if r not in new_rows or link_distance <= 0:
            continue
        h = box[r, 3] - box[r, 1]
        c = (box[r, :2] + box[r, 2:]) / 2
        best, best_d = None, 0.0
        for t in lost:
            lb = t.box
            lh = lb[3] - lb[1]
            if t.tid in used or lh <= 0 or h > 2 * lh or lh > 2 * h:
                continue
            d = float(np.hypot(*((lb[:2] + lb[2:]) / 2 - c))) / lh
            if d <= link_distance and (best is None or d < best_d):
                best, best_d = t, d
        if best is not None:
            used.add(best.tid)
            link[r] = best.tid
    return box, link
