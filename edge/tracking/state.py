"""Fixed-capacity struct-of-arrays state of one tracker, and its grow-only scratch buffers.

A track is a slot index into parallel arrays; there is no per-track Python object and no list that
grows with the number of tracks ever seen (the official ByteTrack keeps every removed track forever,
ByteTrack#328). Capacity is ``max_tracks`` slots, allocated once; freed slots go back to a free stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.tracking import kernels as k


@dataclass(slots=True, eq=False)
class TrackState:
    """Every array is indexed by slot (``capacity`` rows) unless said otherwise.

    Attributes:
        mean: ``float64 (C, 8)`` Kalman mean ``cx, cy, a, h`` and their velocities.
        cov: ``float64 (C, 8, 8)`` Kalman covariance.
        track_id: ``int64 (C,)`` id of the track in the slot.
        state: ``int8 (C,)`` FREE / TRACKED / LOST (see :mod:`edge.tracking.kernels`).
        activated: ``bool (C,)`` the track is confirmed (matched on two frames, or born on frame 1).
        last_frame: ``int64 (C,)`` frame of its last match.
        start_frame: ``int64 (C,)`` frame it was born.
        det_row: ``int64 (C,)`` detection row matched in the last frame, -1 for none.
        boxes: ``float64 (C, 4)`` box of each slot as x1, y1, x2, y2, from the Kalman mean.
        reported: ``int64 (C,)`` id last reported from the slot (0: none); a track whose id differs is
            new to the caller (see :func:`edge.tracking.kernels.extras`).
        live: ``int64 (C,)`` used slots in increasing track id; ``counters[C_N_LIVE]`` are valid.
        free: ``int64 (C,)`` stack of free slots; ``counters[C_N_FREE]`` are valid.
        counters: ``int64 (N_COUNTERS,)`` live count, next id, frame number, dropped, removed, free.
        removed: ``int64 (C,)`` ids removed in the last frame; ``counters[C_N_REMOVED]`` are valid.
    """

    capacity: int
    mean: npt.NDArray[np.float64] = field(init=False)
    cov: npt.NDArray[np.float64] = field(init=False)
    track_id: npt.NDArray[np.int64] = field(init=False)
    state: npt.NDArray[np.int8] = field(init=False)
    activated: npt.NDArray[np.bool_] = field(init=False)
    last_frame: npt.NDArray[np.int64] = field(init=False)
    start_frame: npt.NDArray[np.int64] = field(init=False)
    det_row: npt.NDArray[np.int64] = field(init=False)
    boxes: npt.NDArray[np.float64] = field(init=False)
    reported: npt.NDArray[np.int64] = field(init=False)
    live: npt.NDArray[np.int64] = field(init=False)
    free: npt.NDArray[np.int64] = field(init=False)
    counters: npt.NDArray[np.int64] = field(init=False)
    removed: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        c = self.capacity
        if c < 1:
            raise ValueError(f"max_tracks must be >= 1, got {c}")
        self.mean = np.zeros((c, 8), np.float64)
        self.cov = np.zeros((c, 8, 8), np.float64)
        self.track_id = np.zeros(c, np.int64)
        self.state = np.zeros(c, np.int8)
        self.activated = np.zeros(c, np.bool_)
        self.last_frame = np.zeros(c, np.int64)
        self.start_frame = np.zeros(c, np.int64)
        self.det_row = np.full(c, -1, np.int64)
        self.boxes = np.zeros((c, 4), np.float64)
        self.reported = np.zeros(c, np.int64)
        self.live = np.zeros(c, np.int64)
        self.free = np.zeros(c, np.int64)
        self.counters = np.zeros(k.N_COUNTERS, np.int64)
        self.removed = np.zeros(c, np.int64)
        self.clear()

    def clear(self) -> None:
        """Forget every track and restart ids at 1 and frames at 0 (no reallocation)."""
        self.state[:] = k.FREE
        self.activated[:] = False
        self.det_row[:] = -1
        self.reported[:] = 0
        # Slots are handed out from the top of the stack: reversed so slot 0 goes first.
        self.free[:] = np.arange(self.capacity - 1, -1, -1, dtype=np.int64)
        self.counters[:] = 0
        self.counters[k.C_NEXT_ID] = 1
        self.counters[k.C_N_FREE] = self.capacity

    @property
    def n_live(self) -> int:
        """Slots in use (tracked, unconfirmed and lost tracks)."""
        return int(self.counters[k.C_N_LIVE])

    def nbytes(self) -> int:
        """Bytes held by the state arrays (constant for the life of the tracker)."""
        return sum(
            a.nbytes
            for a in (
                self.mean,
                self.cov,
                self.track_id,
                self.state,
                self.activated,
                self.last_frame,
                self.start_frame,
                self.det_row,
                self.boxes,
                self.reported,
                self.live,
                self.free,
                self.counters,
                self.removed,
            )
        )


@dataclass(slots=True, eq=False)
class Scratch:
    """Per-frame work buffers, sized for ``capacity`` tracks and ``det_capacity`` detections.

    They grow (to the next power of two) only when a frame needs more room than any before, so the
    steady state allocates nothing. The cost matrices need ``live tracks x detections`` floats, so they
    are sized by what frames really needed, not by ``capacity x detections`` (which could reach hundreds
    of megabytes for a large ``max_tracks`` and one frame with thousands of boxes).
    """

    capacity: int
    det_capacity: int = 0
    xyxy: npt.NDArray[np.float32] = field(init=False)
    scores: npt.NDArray[np.float32] = field(init=False)
    det_idx: npt.NDArray[np.int64] = field(init=False)
    pool: npt.NDArray[np.int64] = field(init=False)
    cost: npt.NDArray[np.float64] = field(init=False)
    tbuf: npt.NDArray[np.float64] = field(init=False)
    match_r: npt.NDArray[np.int64] = field(init=False)
    match_c: npt.NDArray[np.int64] = field(init=False)
    col4row: npt.NDArray[np.int64] = field(init=False)
    work_f: npt.NDArray[np.float64] = field(init=False)
    work_i: npt.NDArray[np.int64] = field(init=False)
    work_b: npt.NDArray[np.bool_] = field(init=False)
    kwork: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.pool = np.zeros(3 * self.capacity, np.int64)
        self.kwork = np.zeros(96, np.float64)
        self.cost = np.zeros(256, np.float64)
        self.tbuf = np.zeros(256, np.float64)
        self._allocate(max(self.det_capacity, 16))

    def _allocate(self, det_capacity: int) -> None:
        self.det_capacity = det_capacity
        big = max(self.capacity, det_capacity)
        self.xyxy = np.zeros((det_capacity, 4), np.float32)
        self.scores = np.zeros(det_capacity, np.float32)
        self.det_idx = np.zeros(3 * det_capacity, np.int64)
        self.match_r = np.zeros(big, np.int64)
        self.match_c = np.zeros(big, np.int64)
        self.col4row = np.zeros(big, np.int64)
        self.work_f = np.zeros(3 * big, np.float64)
        self.work_i = np.zeros(3 * big, np.int64)
        self.work_b = np.zeros(2 * big, np.bool_)

    def ensure(self, n: int, n_live: int) -> None:
        """Make room for ``n`` detections against ``n_live`` tracks (every cost matrix of the frame has
        at most ``n_live`` rows and ``n`` columns)."""
        if n > self.det_capacity:
            self._allocate(1 << (n - 1).bit_length())
        need = n * n_live
        if need > self.cost.shape[0]:
            size = 1 << (need - 1).bit_length()
            self.cost = np.zeros(size, np.float64)
            self.tbuf = np.zeros(size, np.float64)
