"""Line crossing: hysteresis per track, at most one count per direction, counts per direction and class.

See docs/analytics.md for the semantics with pictures. In short, for each track the counter keeps the
*committed side* of the line and the last anchor position seen on it. When the anchor shows up on the
other side (farther than ``min_distance``) a pending run starts; the run is committed after
``min_frames`` frames seen on the new side, and it is a crossing only if the motion from the last
committed position to the first position on the new side passes through the segment AB (or the
infinite line, with ``extend``). Seeing the committed side again cancels the run, so flicker around the
line never counts in either direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from edge.events._table import TrackTable
from edge.events.geometry import Point, cross, crosses_segment, distance_to_segment
from edge.types import ANCHORS

if TYPE_CHECKING:
    from collections.abc import Mapping

IN: int = 1
"""Direction code of a crossing to the right-hand side of A->B as seen on screen (y down)."""
OUT: int = -1
"""Direction code of a crossing to the left-hand side of A->B."""
DIRECTIONS: tuple[str, str] = ("in", "out")


@dataclass(frozen=True, slots=True)
class LineSpec:
    """One counting line in frame pixels.

    Attributes:
        name: unique per camera; the key of its counts (persisted, so renaming resets them).
        a, b: the segment's end points; ``in`` is the right-hand side of A->B on screen.
        anchor: the box point tested, one of :data:`edge.types.ANCHORS`. ``bottom_center`` (feet) suits
            people and cars seen from above-front; ``center`` suits top-down views.
        classes: class ids counted, ``None`` for all.
        labels: display labels for ``in`` and ``out`` (e.g. ``{"in": "enter", "out": "leave"}``).
        min_frames: frames at 30 fps the anchor must be seen on the new side before a crossing is
            committed (see :func:`frames_needed`). Higher rejects longer wiggles over the line and more
            id switches near it, and counts later. A track lost during the hold still counts when the
            tracker gives it up (:meth:`LineCounter.project`), about ``track_buffer`` later. 3 (0.1 s)
            was chosen on the development sets of docs/benchmarks.md.
        min_distance: pixels the anchor must be from the line to count as being on a side. Higher
            rejects box jitter of large objects; too high misses objects that clip the line at an angle.
        extend: treat AB as an infinite line (counts crossings beyond the end points too).
        count_repeats: count every committed crossing of a track, not just its first in each direction.
        backfill_seconds: how far back in time a new track's path is projected to find a crossing made
            before it was first seen (see :meth:`LineCounter.update`); 0 turns it off. Longer recovers
            people the detector or tracker picked up late, just past the line, but also counts people
            who appear just past it (out of a door right behind the line) without having crossed it.
        forward_seconds: how far ahead in time the path of a track the tracker gave up on is projected
            to find a crossing made after it was last seen (see :meth:`LineCounter.project`); 0 turns
            it off. Longer recovers people who vanished (occluded, out of the frame) while walking over
            the line, but also counts people who stopped unseen just before it. Such a crossing is
            reported when the tracker gives the track up (``tracker.track_buffer``, 2 s, after it was
            last seen), not when it happened. 1.5 s (0.5 s until stop 29) was chosen on the development
            sets of docs/benchmarks.md: 1.5 s took 51 / 64 wrong counts off at 30 / ~5 fps (the
            moving-camera sets gained at both rates, MOT15 held level); 2 s gained little more and 3 s
            lost on the tuning sequences.
    """

    name: str
    a: Point
    b: Point
    anchor: str = "bottom_center"
    classes: frozenset[int] | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: {"in": "in", "out": "out"})
    min_frames: int = 3
    min_distance: float = 0.0
    extend: bool = False
    count_repeats: bool = False
    backfill_seconds: float = 0.5
    forward_seconds: float = 1.5

    def __post_init__(self) -> None:
        # Normalise what callers may pass as lists/sets, so equal specs compare equal (reconfigure).
        object.__setattr__(self, "a", (float(self.a[0]), float(self.a[1])))
        object.__setattr__(self, "b", (float(self.b[0]), float(self.b[1])))
        if self.classes is not None:
            object.__setattr__(self, "classes", frozenset(int(c) for c in self.classes))
        object.__setattr__(self, "labels", {"in": "in", "out": "out", **dict(self.labels)})
        if not self.name:
            raise ValueError("line name must not be empty")
        if (float(self.a[0]), float(self.a[1])) == (float(self.b[0]), float(self.b[1])):
            msg = f"line {self.name!r}: points A and B are the same ({self.a})"
            raise ValueError(msg)
        if self.anchor not in ANCHORS:
            msg = f"line {self.name!r}: unknown anchor {self.anchor!r}, expected one of {', '.join(ANCHORS)}"
            raise ValueError(msg)
        if self.min_frames < 1:
            msg = f"line {self.name!r}: min_frames must be >= 1, got {self.min_frames}"
            raise ValueError(msg)
        if self.min_distance < 0:
            msg = f"line {self.name!r}: min_distance must be >= 0, got {self.min_distance}"
            raise ValueError(msg)
        if not self.backfill_seconds >= 0:
            msg = f"line {self.name!r}: backfill_seconds must be >= 0, got {self.backfill_seconds}"
            raise ValueError(msg)
        if not self.forward_seconds >= 0:
            msg = f"line {self.name!r}: forward_seconds must be >= 0, got {self.forward_seconds}"
            raise ValueError(msg)

    def label(self, direction: int) -> str:
        key = "in" if direction == IN else "out"
        return self.labels.get(key, key)


HOLD_FPS: float = 30.0
"""``min_frames`` is a hold counted at this rate (see :func:`frames_needed`)."""


def frames_needed(min_frames: int, frame_dt: float) -> int:
    """Sightings on the new side that commit a crossing when frames are ``frame_dt`` seconds apart.

    ``min_frames`` is counted at 30 fps: the hold lasts ``min_frames / 30`` s of video whatever the
    rate, so a camera processed at 5 fps needs ``ceil(min_frames * 5 / 30)`` sightings (1 for the
    default 3), not 3 frames = 0.6 s, during which a walker at 5 fps is often lost or already gone.
    Unknown spacing (``frame_dt <= 0``) counts frames as given.
    """
    if frame_dt <= 0.0:
        return min_frames
    return max(1, min(min_frames, math.ceil(min_frames / (HOLD_FPS * frame_dt) - 1e-9)))


BACKFILL_MEASURE_SECONDS: float = 0.3
"""A new track's velocity for the back-projection is its mean over its first this many seconds.
Shorter decides sooner but on noisier boxes (a jittering bottom edge reads as motion)."""

FORWARD_WINDOW_SECONDS: float = 1.0
"""The velocity of a track given up on is measured between its last sighting and one from up to this
long before (at least :data:`FORWARD_MIN_SPAN_SECONDS` before). Longer is steadier, shorter follows a
turn sooner."""
FORWARD_MIN_SPAN_SECONDS: float = 0.25
"""Tracks seen over less than this are not projected forward (too little to measure a velocity)."""

INHERIT_COUNTED_HEIGHTS: float = 1.5
"""A track linked to a lost one (an id switch) takes over the lost track's "already counted" flags for
a line only if it is first seen within this many of its own box heights of the segment; farther away
it starts with none (its committed side and last position are inherited either way). Near the line
the link is most likely the same passage, which must not count twice; far from it, it is often another
person (most links in a crowd are), whose own crossing the inherited flag would swallow. Higher
suppresses more of those; lower lets more re-found fragments of one person near the line count again.
Chosen on the development sets (1-2 heights all better than inheriting always; docs/benchmarks.md)."""

LINK_BACKWARDS_SPEED: float = 0.3
"""A lost track moving at least this many box heights per second (about half a slow walk) counts as
walking for the test of a link behind it (:meth:`LineCounter.inherit`). Lower takes jitter for a
direction; higher leaves slow walkers' links alone. 0.2-0.3 measured best on the development sets
(0.1 and 0.5 worse; docs/benchmarks.md)."""
LINK_BACKWARDS_MIN_JUMP: float = 0.25
"""A link's jump of at most this many box heights is never judged behind the walker: box jitter."""

_NOT_STARTED, _MEASURING, _DONE = 0, 1, 2


# The scalar twins of edge.events.geometry live here, beside the kernel that calls them, on purpose:
# Numba's on-disk cache keys a compiled kernel on its own source file only, so a kernel that called a
# compiled helper from another file would keep running the old helper after an in-place upgrade
# changed it (numba#1833; a documented limitation of cache=True).
@njit(cache=True, nogil=True)
def _side_of(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> float:
    """:func:`edge.events.geometry.cross` for one point (the same operations in the same order)."""
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


@njit(cache=True, nogil=True)
def _meets(ax: float, ay: float, bx: float, by: float, px: float, py: float, qx: float, qy: float) -> bool:
    """:func:`edge.events.geometry.crosses_segment` for one motion p->q."""
    dx = qx - px
    dy = qy - py
    da = dx * (ay - py) - dy * (ax - px)
    db = dx * (by - py) - dy * (bx - px)
    return da * db <= 0.0


@njit(cache=True, nogil=True)
def _advance(
    rows: np.ndarray,
    pts: np.ndarray,
    line: np.ndarray,
    ts: float,
    follow: bool,
    backfill: bool,
    back_horizon: float,
    need: int,
    extend: bool,
    side: np.ndarray,
    pos: np.ndarray,
    pending: np.ndarray,
    through: np.ndarray,
    origin: np.ndarray,
    first_pos: np.ndarray,
    first_ts: np.ndarray,
    last_pos: np.ndarray,
    last_ts: np.ndarray,
    ref_pos: np.ndarray,
    ref_ts: np.ndarray,
    back_k: np.ndarray,
    back_dir: np.ndarray,
    cross_k: np.ndarray,
    cross_dir: np.ndarray,
) -> tuple[int, int]:
    """The state machine of :meth:`LineCounter.update` for one frame's rows (track ids unique).

    ``line`` is ``(ax, ay, bx, by, min_distance in cross-product units)``. Writes the back-projected
    crossings (input index, direction) to ``back_k``/``back_dir`` and the committed ones to
    ``cross_k``/``cross_dir``, both in input order, and returns how many of each. Whether a
    direction was already counted is left to the caller (:meth:`LineCounter._fire`).
    """
    ax, ay, bx, by, md = line[0], line[1], line[2], line[3], line[4]
    n_back = 0
    n_cross = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        px = pts[k, 0]
        py = pts[k, 1]
        if follow:
            # The forward projection's sightings: the last one, and a reference up to
            # FORWARD_WINDOW_SECONDS older (it moves up to the previous sighting once that old).
            lt = last_ts[r]
            if lt < 0.0:
                ref_pos[r, 0] = px
                ref_pos[r, 1] = py
                ref_ts[r] = ts
            elif ts - ref_ts[r] >= FORWARD_WINDOW_SECONDS:
                ref_pos[r, 0] = last_pos[r, 0]
                ref_pos[r, 1] = last_pos[r, 1]
                ref_ts[r] = lt
            last_pos[r, 0] = px
            last_pos[r, 1] = py
            last_ts[r] = ts
        dist = _side_of(ax, ay, bx, by, px, py)
        cur = 1 if dist > md else (-1 if dist < -md else 0)
        committed = side[r]
        fresh = committed == 0 and cur != 0
        if backfill:
            born = fresh and origin[r] == _NOT_STARTED
            if born:
                origin[r] = _MEASURING
                first_pos[r, 0] = px
                first_pos[r, 1] = py
                first_ts[r] = ts
            age = ts - first_ts[r]
            if origin[r] == _MEASURING and not born and age >= BACKFILL_MEASURE_SECONDS - 1e-6:
                origin[r] = _DONE
                fx = first_pos[r, 0]
                fy = first_pos[r, 1]
                vx = (px - fx) / age
                vy = (py - fy) / age
                kx = fx - vx * back_horizon
                ky = fy - vy * back_horizon
                fs = np.sign(_side_of(ax, ay, bx, by, fx, fy))
                ks = np.sign(_side_of(ax, ay, bx, by, kx, ky))
                if (
                    fs != 0
                    and ks == -fs
                    and committed == fs
                    and pending[r] == 0
                    and _meets(ax, ay, bx, by, kx, ky, fx, fy)
                ):
                    back_k[n_back] = k
                    back_dir[n_back] = int(fs)
                    n_back += 1
        if fresh:
            side[r] = cur
        if fresh or (committed != 0 and cur == committed):
            # On the committed side: cancel any pending run and remember where it was.
            pos[r, 0] = px
            pos[r, 1] = py
            pending[r] = 0
        elif committed != 0 and cur == -committed:
            # On the other side: extend (or start) the pending run. Neutral sightings (on the line,
            # or within min_distance) neither extend nor cancel it.
            if pending[r] == 0:
                through[r] = extend or _meets(ax, ay, bx, by, pos[r, 0], pos[r, 1], px, py)
            pending[r] += 1
            if pending[r] >= need:
                went_through = through[r]
                side[r] = cur
                pos[r, 0] = px
                pos[r, 1] = py
                pending[r] = 0
                through[r] = False
                if went_through:  # otherwise it went round an end of the segment: no count
                    cross_k[n_cross] = k
                    cross_dir[n_cross] = cur
                    n_cross += 1
    return n_back, n_cross


_Ids = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]
_EMPTY_ROWS: npt.NDArray[np.intp] = np.zeros(0, np.intp)
_EMPTY_DIRS: npt.NDArray[np.int8] = np.zeros(0, np.int8)
_EMPTY_POINTS: npt.NDArray[np.float64] = np.zeros((0, 2), np.float64)


class LineCounter:
    """State machine of one line over all tracks of one camera.

    Args:
        spec: the line.
        max_tracks: bound of the per-track table (see :class:`edge.events._table.TrackTable`).
    """

    def __init__(self, spec: LineSpec, max_tracks: int = 10_000) -> None:
        self.spec = spec
        self._a = (float(spec.a[0]), float(spec.a[1]))
        self._b = (float(spec.b[0]), float(spec.b[1]))
        self._length = float(np.hypot(self._b[0] - self._a[0], self._b[1] - self._a[1]))
        # For the kernel: A, B and min_distance in the units of the cross product (scaled by |AB|).
        self._line = np.array([*self._a, *self._b, spec.min_distance * self._length], np.float64)
        self._classes = (
            None if spec.classes is None else np.fromiter(sorted(spec.classes), np.int32, len(spec.classes))
        )
        self.table = TrackTable(
            {
                "side": (np.int8, (), 0),  # committed side: +1 right (in), -1 left (out), 0 not yet known
                "pos": (np.float64, (2,), 0.0),  # last anchor seen on the committed side
                "pending": (np.int32, (), 0),  # frames seen on the other side in the current run
                "through": (np.bool_, (), False),  # the pending run's motion passes through AB
                "counted_in": (np.bool_, (), False),
                "counted_out": (np.bool_, (), False),
                "origin": (np.int8, (), _NOT_STARTED),  # back-projection of a new track's path
                "first_pos": (np.float64, (2,), 0.0),  # the track's first anchor on a side
                "first_ts": (np.float64, (), 0.0),  # and when it was seen there
                # Forward projection: the last sighting, and a reference sighting up to
                # FORWARD_WINDOW_SECONDS older that its velocity is measured from (-1: none yet).
                "last_pos": (np.float64, (2,), 0.0),
                "last_ts": (np.float64, (), -1.0),
                "ref_pos": (np.float64, (2,), 0.0),
                "ref_ts": (np.float64, (), -1.0),
            },
            max_rows=max_tracks,
        )
        # (direction, class_id) -> count; touched only when a crossing fires.
        self._counts: dict[tuple[int, int], int] = {}

    def counts(self) -> dict[str, dict[int, int]]:
        """``{"in": {class_id: n}, "out": {class_id: n}}``, a copy."""
        out: dict[str, dict[int, int]] = {"in": {}, "out": {}}
        for (direction, cls), n in sorted(self._counts.items()):
            out["in" if direction == IN else "out"][cls] = n
        return out

    def total(self, direction: int, class_id: int | None = None) -> int:
        """Count in one direction, for one class or (``None``) summed over classes."""
        if class_id is not None:
            return self._counts.get((direction, class_id), 0)
        return sum(n for (d, _c), n in self._counts.items() if d == direction)

    def set_counts(self, counts: Mapping[str, Mapping[int, int]]) -> None:
        """Replace the counts (restore after restart, or keep them over a reload)."""
        self._counts = {}
        for key, direction in (("in", IN), ("out", OUT)):
            for cls, n in counts.get(key, {}).items():
                if n:
                    self._counts[(direction, int(cls))] = int(n)

    def reset(self) -> None:
        """Zero the counts; per-track state (who already counted) is kept."""
        self._counts = {}

    def evict(self, track_ids: npt.NDArray[np.int64]) -> None:
        self.table.remove(track_ids)

    def project(
        self, track_ids: npt.NDArray[np.int64], class_id: npt.NDArray[np.int32]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int8], npt.NDArray[np.float64]]:
        """Crossings of tracks the tracker gave up on (call before :meth:`evict`; ``class_id`` is each
        track's class): the input rows that crossed, their directions and last anchors. Counts are
        updated.

        **A run under way** when the track was given up: it was last seen on the other side, through
        the segment, for fewer than ``min_frames`` frames, and nothing brought it back. It counts now:
        the hold is there to reject flicker, which a track that went on over the line and was lost
        there is not. (Before this, a longer hold lost every walker the detector dropped right after
        a line; see docs/benchmarks.md.)

        **Forward projection** (``forward_seconds``): a track last seen on its committed side, with
        no run to the other side under way, whose path from its last sighting projected
        ``forward_seconds`` ahead at its recent velocity (see :data:`FORWARD_WINDOW_SECONDS`) crosses
        AB, counts a crossing into the other side. People who vanish while walking over a line
        (occluded, out of the frame, missed by the detector) would otherwise never count. Needs
        capture times (the ``ts`` of :meth:`update`).

        A track continued by a linked successor has already handed its row over, so nothing is
        counted for it here.
        """
        if track_ids.shape[0] == 0 or len(self.table) == 0:
            return _EMPTY_ROWS, _EMPTY_DIRS, _EMPTY_POINTS
        idx, found = self.table.find(track_ids)
        if self._classes is not None:
            found &= np.isin(class_id, self._classes)
        inputs = np.flatnonzero(found)
        rows = idx[inputs]
        cols = self.table.cols
        side = cols["side"][rows]
        pending = cols["pending"][rows] > 0
        out_rows: list[int] = []
        out_dirs: list[int] = []
        out_pts: list[npt.NDArray[np.float64]] = []
        # Runs under way; their event carries the last sighting (known with capture times) or else
        # the last position on the old side.
        for k in np.flatnonzero((side != 0) & pending & cols["through"][rows]).tolist():
            r = int(rows[k])
            direction = -int(side[k])
            if self._fire(r, direction, int(class_id[int(inputs[k])]), self.spec.count_repeats):
                out_rows.append(int(inputs[k]))
                out_dirs.append(direction)
                out_pts.append(cols["last_pos"][r] if cols["last_ts"][r] >= 0.0 else cols["pos"][r])
        if self.spec.forward_seconds > 0.0:
            self._forward(inputs, rows, side, pending, class_id, out_rows, out_dirs, out_pts)
        if not out_rows:
            return _EMPTY_ROWS, _EMPTY_DIRS, _EMPTY_POINTS
        return np.array(out_rows, np.intp), np.array(out_dirs, np.int8), np.array(out_pts, np.float64)

    def _forward(
        self,
        inputs: npt.NDArray[np.intp],
        rows: npt.NDArray[np.intp],
        side: npt.NDArray[np.int8],
        pending: npt.NDArray[np.bool_],
        class_id: npt.NDArray[np.int32],
        out_rows: list[int],
        out_dirs: list[int],
        out_pts: list[npt.NDArray[np.float64]],
    ) -> None:
        """The forward projection of :meth:`project`; appends what it counts to the ``out_`` lists."""
        cols = self.table.cols
        measured, velocities = self._velocity(rows)
        cand = np.flatnonzero((side != 0) & ~pending & measured)
        if cand.shape[0] == 0:
            return
        rr = rows[cand]
        last = cols["last_pos"][rr]
        velocity = velocities[cand]
        ahead = last + velocity * self.spec.forward_seconds
        s0 = np.sign(cross(self._a, self._b, last)).astype(np.int8)
        s1 = np.sign(cross(self._a, self._b, ahead)).astype(np.int8)
        over = np.flatnonzero((s0 == side[cand]) & (s1 == -side[cand]))
        if over.shape[0] == 0:
            return
        hit = over[crosses_segment(self._a, self._b, last[over], ahead[over])]
        for k in hit.tolist():  # once per counted crossing
            direction = -int(side[cand[k]])
            row = int(inputs[cand[k]])
            if not self._fire(int(rr[k]), direction, int(class_id[row]), self.spec.count_repeats):
                continue
            out_rows.append(row)
            out_dirs.append(direction)
            out_pts.append(last[k])

    def inherit(
        self,
        child: npt.NDArray[np.int64],
        parent: npt.NDArray[np.int64],
        frame_no: int,
        child_anchors: npt.NDArray[np.float64],
        child_heights: npt.NDArray[np.float64],
    ) -> None:
        """Give each new track ``child[i]`` the state of the lost track ``parent[i]``, which is dropped.

        The child continues the parent's passage: same committed side and last position (so a crossing
        made in the gap between them is judged from where the parent was) and, if its first anchor
        (``child_anchors[i]``, this line's anchor rule) is within :data:`INHERIT_COUNTED_HEIGHTS` of
        its box height (``child_heights[i]``) of the segment, the same "already counted" flags (so one
        passage never counts twice). The parent's row goes: should the tracker find the parent again,
        it starts fresh and cannot count the passage a second time. Children already known to this
        line and parents it never saw are skipped. The child's velocity for the forward projection is
        its own, measured from its first sighting (a link may join two people).

        **A link behind the walker** is not the same passage: if the parent was walking (its velocity,
        measured as for the forward projection, at least :data:`LINK_BACKWARDS_SPEED` child heights
        per second) and the child appeared behind its last sighting (the jump from there makes an
        angle over 90 degrees with that velocity and is longer than :data:`LINK_BACKWARDS_MIN_JUMP`
        heights), the child starts with no committed side and no flags: the jump back is not a
        crossing, and what the parent counted is not the child's. The parent's row still goes.
        """
        if child.shape[0] == 0:
            return
        near = distance_to_segment(self._a, self._b, child_anchors) <= INHERIT_COUNTED_HEIGHTS * child_heights
        cols = self.table.cols
        behind = self._behind(child, parent, child_anchors, child_heights)
        # Far ones first, their flags cleared at once: the second hand-over moves rows about.
        for sel, keeps_counted in ((~near, False), (near, True)):
            if not sel.any():
                continue
            rows = self.table.hand_over(child[sel], parent[sel], frame_no)
            cols["last_ts"][rows] = -1.0
            cols["ref_ts"][rows] = -1.0
            if not keeps_counted:
                cols["counted_in"][rows] = False
                cols["counted_out"][rows] = False
        if behind.shape[0]:
            rows = self.table.find(behind)[0]  # all handed over just now
            cols["side"][rows] = 0
            cols["pending"][rows] = 0
            cols["through"][rows] = False
            cols["counted_in"][rows] = False
            cols["counted_out"][rows] = False

    def _velocity(self, rows: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.bool_], _Floats]:
        """Each row's recent velocity in pixels per second, from its last sighting and the reference
        up to :data:`FORWARD_WINDOW_SECONDS` before it, and whether it is measured at all (the two at
        least :data:`FORWARD_MIN_SPAN_SECONDS` apart; unmeasured rows' velocities mean nothing)."""
        cols = self.table.cols
        span = cols["last_ts"][rows] - cols["ref_ts"][rows]
        measured = (cols["ref_ts"][rows] >= 0.0) & (span >= FORWARD_MIN_SPAN_SECONDS - 1e-6)
        velocity = (cols["last_pos"][rows] - cols["ref_pos"][rows]) / np.maximum(span, 1e-9)[:, None]
        return measured, velocity

    def _behind(self, child: _Ids, parent: _Ids, child_anchors: _Floats, child_heights: _Floats) -> _Ids:
        """The children that :meth:`inherit` is about to give a parent's row and that appeared behind
        their walking parent (see there)."""
        pidx, pfound = self.table.find(parent)
        ok = pfound & ~self.table.find(child)[1]
        if not ok.any():
            return child[:0]
        rows = pidx[ok]
        measured, velocity = self._velocity(rows)
        jump = child_anchors[ok] - self.table.cols["last_pos"][rows]
        heights = child_heights[ok]
        behind: npt.NDArray[np.bool_] = (
            measured
            & (np.hypot(velocity[:, 0], velocity[:, 1]) >= LINK_BACKWARDS_SPEED * heights)
            & (np.hypot(jump[:, 0], jump[:, 1]) > LINK_BACKWARDS_MIN_JUMP * heights)
            & ((velocity * jump).sum(axis=1) < 0.0)
        )
        out: _Ids = child[ok][behind]
        return out

    def update(
        self,
        track_id: npt.NDArray[np.int64],
        class_id: npt.NDArray[np.int32],
        anchors: npt.NDArray[np.float64],
        frame_no: int,
        frame_dt: float = 0.0,
        ts: float | None = None,
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int8]]:
        """Advance every track seen in this frame; return the input rows that crossed and their direction.

        ``anchors`` is ``float64 (N, 2)`` of this line's anchor rule. Rows without a confirmed track
        (``-1``) or of a class the line ignores are skipped. ``frame_dt`` is the seconds between
        processed frames (0: unknown), which scales the hold (see :func:`frames_needed`). ``ts`` is the
        frame's capture time in seconds (``None``: unknown, which turns the back-projection off).
        Counts are updated before returning. A track id appears at most once per frame (as the
        tracker reports them); the rows are advanced in one compiled pass (:func:`_advance`), since
        a dozen small NumPy operations per line and frame cost more than the work they do.

        **Back-projection** (``backfill_seconds``): a track first seen on side S, not inherited from a
        lost one, has its mean velocity measured over its first :data:`BACKFILL_MEASURE_SECONDS`; if
        its path projected ``backfill_seconds`` (plus one frame interval: the tracker reports a track
        one frame after it first detected it) back from where it was first seen crosses AB from the
        other side, and it has not moved back since, it counts then as a crossing into S. The
        detector often finds a person only a few frames after they stepped over a line (occluded,
        too small, or cut off at the frame's edge): without this no track ever saw that crossing.
        """
        ok = track_id >= 0
        if self._classes is not None:
            ok &= np.isin(class_id, self._classes)
        sel = np.flatnonzero(ok)
        if sel.shape[0] == 0:
            return _EMPTY_ROWS, _EMPTY_DIRS
        rows = self.table.rows_for(track_id[sel], frame_no)
        cols = self.table.cols
        n = sel.shape[0]
        back_k = np.empty(n, np.intp)
        back_dir = np.empty(n, np.int8)
        cross_k = np.empty(n, np.intp)
        cross_dir = np.empty(n, np.int8)
        n_back, n_cross = _advance(
            rows, np.ascontiguousarray(anchors[sel], np.float64), self._line,
            0.0 if ts is None else float(ts),
            ts is not None and self.spec.forward_seconds > 0.0,
            ts is not None and self.spec.backfill_seconds > 0.0,
            # The tracker reports a new track on its second frame: it was detected one frame earlier.
            float(self.spec.backfill_seconds + max(frame_dt, 0.0)),
            frames_needed(self.spec.min_frames, frame_dt), bool(self.spec.extend),
            cols["side"], cols["pos"], cols["pending"], cols["through"], cols["origin"],
            cols["first_pos"], cols["first_ts"], cols["last_pos"], cols["last_ts"], cols["ref_pos"],
            cols["ref_ts"], back_k, back_dir, cross_k, cross_dir,
        )  # fmt: skip
        if n_back == 0 and n_cross == 0:
            return _EMPTY_ROWS, _EMPTY_DIRS
        # Fired crossings: the only place that loops in Python, once per event. Back-projected ones
        # first (a back-projected crossing is the track's first by construction: never repeated).
        fired_rows: list[int] = []
        fired_dirs: list[int] = []
        for ks, dirs, repeats in (
            (back_k[:n_back], back_dir[:n_back], False),
            (cross_k[:n_cross], cross_dir[:n_cross], self.spec.count_repeats),
        ):
            for k, direction in zip(ks.tolist(), dirs.tolist(), strict=True):
                row = int(sel[k])
                if self._fire(int(rows[k]), direction, int(class_id[row]), repeats):
                    fired_rows.append(row)
                    fired_dirs.append(direction)
        if not fired_rows:
            return _EMPTY_ROWS, _EMPTY_DIRS
        return np.array(fired_rows, np.intp), np.array(fired_dirs, np.int8)

    def _fire(self, row: int, direction: int, class_id: int, repeats: bool) -> bool:
        """Count a crossing of table row ``row`` unless it already counted that direction (and
        ``repeats`` is off); returns whether it counted."""
        flag = self.table.cols["counted_in" if direction == IN else "counted_out"]
        if not repeats and bool(flag[row]):
            return False
        flag[row] = True
        key = (direction, class_id)
        self._counts[key] = self._counts.get(key, 0) + 1
        return True
