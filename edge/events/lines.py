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

from edge.events._table import TrackTable
from edge.events.geometry import Point, cross, crosses_segment
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
        min_frames: frames the anchor must be seen on the new side before a crossing is committed.
            Higher rejects more flicker and more id switches near the line but misses tracks that cross
            and vanish within fewer frames; at low fps use 1-2.
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
            last seen), not when it happened.
    """

    name: str
    a: Point
    b: Point
    anchor: str = "bottom_center"
    classes: frozenset[int] | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: {"in": "in", "out": "out"})
    min_frames: int = 2
    min_distance: float = 0.0
    extend: bool = False
    count_repeats: bool = False
    backfill_seconds: float = 0.5
    forward_seconds: float = 0.5

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
    default 2), not 2 frames = 0.4 s, during which a walker at 5 fps is often lost or already gone.
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

_NOT_STARTED, _MEASURING, _DONE = 0, 1, 2

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

        **Forward projection** (``forward_seconds``): a track last seen on its committed side, with
        no run to the other side under way, whose path from its last sighting projected
        ``forward_seconds`` ahead at its recent velocity (see :data:`FORWARD_WINDOW_SECONDS`) crosses
        AB, counts a crossing into the other side. People who vanish while walking over a line
        (occluded, out of the frame, missed by the detector) would otherwise never count. A track
        continued by a linked successor has already handed its row over, so nothing is projected
        for it. Needs capture times (the ``ts`` of :meth:`update`).
        """
        if self.spec.forward_seconds <= 0.0 or track_ids.shape[0] == 0 or len(self.table) == 0:
            return _EMPTY_ROWS, _EMPTY_DIRS, _EMPTY_POINTS
        idx, found = self.table.find(track_ids)
        if self._classes is not None:
            found &= np.isin(class_id, self._classes)
        inputs = np.flatnonzero(found)
        rows = idx[inputs]
        cols = self.table.cols
        side = cols["side"][rows]
        span = cols["last_ts"][rows] - cols["ref_ts"][rows]
        cand = np.flatnonzero(
            (side != 0)
            & (cols["pending"][rows] == 0)
            & (cols["ref_ts"][rows] >= 0.0)
            & (span >= FORWARD_MIN_SPAN_SECONDS - 1e-6)
        )
        if cand.shape[0] == 0:
            return _EMPTY_ROWS, _EMPTY_DIRS, _EMPTY_POINTS
        rr = rows[cand]
        last = cols["last_pos"][rr]
        velocity = (last - cols["ref_pos"][rr]) / span[cand, None]
        ahead = last + velocity * self.spec.forward_seconds
        s0 = np.sign(cross(self._a, self._b, last)).astype(np.int8)
        s1 = np.sign(cross(self._a, self._b, ahead)).astype(np.int8)
        over = np.flatnonzero((s0 == side[cand]) & (s1 == -side[cand]))
        if over.shape[0] == 0:
            return _EMPTY_ROWS, _EMPTY_DIRS, _EMPTY_POINTS
        hit = over[crosses_segment(self._a, self._b, last[over], ahead[over])]
        out_rows: list[int] = []
        out_dirs: list[int] = []
        out_pts: list[npt.NDArray[np.float64]] = []
        for k in hit.tolist():  # once per counted crossing
            direction = -int(side[cand[k]])
            row = int(inputs[cand[k]])
            if not self._fire(int(rr[k]), direction, int(class_id[row]), self.spec.count_repeats):
                continue
            out_rows.append(row)
            out_dirs.append(direction)
            out_pts.append(last[k])
        if not out_rows:
            return _EMPTY_ROWS, _EMPTY_DIRS, _EMPTY_POINTS
        return np.array(out_rows, np.intp), np.array(out_dirs, np.int8), np.array(out_pts, np.float64)

    def inherit(self, child: npt.NDArray[np.int64], parent: npt.NDArray[np.int64], frame_no: int) -> None:
        """Give each new track ``child[i]`` the state of the lost track ``parent[i]``, which is dropped.

        The child continues the parent's passage: same committed side and last position (so a crossing
        made in the gap between them is judged from where the parent was), same "already counted"
        flags (so one passage never counts twice). The parent's row goes: should the tracker find the
        parent again, it starts fresh and cannot count the passage a second time. Children already
        known to this line and parents it never saw are skipped. The child's velocity for the forward
        projection is its own, measured from its first sighting (a link may join two people).
        """
        rows = self.table.hand_over(child, parent, frame_no)
        self.table.cols["last_ts"][rows] = -1.0
        self.table.cols["ref_ts"][rows] = -1.0

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
        Counts are updated before returning.

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
        ids = track_id[sel]
        pts = anchors[sel]
        rows = self.table.rows_for(ids, frame_no)
        cols = self.table.cols
        if ts is not None and self.spec.forward_seconds > 0.0:
            self._follow(rows, pts, ts)

        dist = cross(self._a, self._b, pts)  # scaled by |AB|, as is the threshold below
        md = self.spec.min_distance * self._length
        cur = np.zeros(sel.shape[0], np.int8)
        cur[dist > md] = 1
        cur[dist < -md] = -1
        committed = cols["side"][rows]

        # First sighting on either side: adopt it, nothing to count yet (back-projection aside).
        fresh = (committed == 0) & (cur != 0)
        back_rows, back_dirs = self._backfill(rows, sel, class_id, pts, committed, fresh, ts, frame_dt)
        # Seen on the committed side: cancel any pending run and remember where it was.
        same = (committed != 0) & (cur == committed)
        stay = rows[fresh | same]
        cols["side"][rows[fresh]] = cur[fresh]
        cols["pos"][stay] = pts[fresh | same]
        cols["pending"][stay] = 0

        # Seen on the other side: extend (or start) the pending run. Neutral sightings (on the line,
        # or within min_distance) neither extend nor cancel it.
        other = np.flatnonzero((committed != 0) & (cur == -committed))
        if other.shape[0] == 0:
            return _merge(back_rows, back_dirs, [], [])
        orow = rows[other]
        starts = cols["pending"][orow] == 0
        if starts.any():
            srow = orow[starts]
            if self.spec.extend:
                cols["through"][srow] = True
            else:
                prev = cols["pos"][srow]
                cols["through"][srow] = crosses_segment(self._a, self._b, prev, pts[other[starts]])
        cols["pending"][orow] += 1
        done = cols["pending"][orow] >= frames_needed(self.spec.min_frames, frame_dt)
        if not done.any():
            return _merge(back_rows, back_dirs, [], [])
        drow = orow[done]
        dnew = cur[other[done]]
        through = cols["through"][drow].copy()
        cols["side"][drow] = dnew
        cols["pos"][drow] = pts[other[done]]
        cols["pending"][drow] = 0
        cols["through"][drow] = False
        if not through.any():
            # Went round an end of the segment: the side changes, no count.
            return _merge(back_rows, back_dirs, [], [])

        # Committed crossings: the only place that loops in Python, once per fired event.
        fired_rows: list[int] = []
        fired_dirs: list[int] = []
        input_rows = sel[other[done]]
        for k in np.flatnonzero(through):
            direction = int(dnew[k])
            row = int(input_rows[k])
            if not self._fire(int(drow[k]), direction, int(class_id[row]), self.spec.count_repeats):
                continue
            fired_rows.append(row)
            fired_dirs.append(direction)
        return _merge(back_rows, back_dirs, fired_rows, fired_dirs)

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

    def _follow(self, rows: npt.NDArray[np.intp], pts: npt.NDArray[np.float64], ts: float) -> None:
        """Keep each track's last sighting and a reference sighting for :meth:`project`."""
        cols = self.table.cols
        last_ts = cols["last_ts"][rows]
        new = last_ts < 0.0
        # The reference moves up to the previous sighting once it is FORWARD_WINDOW_SECONDS old, so
        # the velocity is measured over the last 0-1 s (at least FORWARD_MIN_SPAN_SECONDS).
        move = ~new & (ts - cols["ref_ts"][rows] >= FORWARD_WINDOW_SECONDS)
        cols["ref_pos"][rows[move]] = cols["last_pos"][rows[move]]
        cols["ref_ts"][rows[move]] = last_ts[move]
        cols["ref_pos"][rows[new]] = pts[new]
        cols["ref_ts"][rows[new]] = ts
        cols["last_pos"][rows] = pts
        cols["last_ts"][rows] = ts

    def _backfill(
        self,
        rows: npt.NDArray[np.intp],
        sel: npt.NDArray[np.intp],
        class_id: npt.NDArray[np.int32],
        pts: npt.NDArray[np.float64],
        committed: npt.NDArray[np.int8],
        fresh: npt.NDArray[np.bool_],
        ts: float | None,
        frame_dt: float = 0.0,
    ) -> tuple[list[int], list[int]]:
        """The back-projection of :meth:`update`: (input rows, directions) of the crossings it counts."""
        if ts is None or self.spec.backfill_seconds <= 0.0:
            return [], []
        cols = self.table.cols
        origin = cols["origin"]
        # Rows inherited from a lost track carry its origin state: a passage it began is not new.
        born = fresh & (origin[rows] == _NOT_STARTED)
        origin[rows[born]] = _MEASURING
        cols["first_pos"][rows[born]] = pts[born]
        cols["first_ts"][rows[born]] = ts
        age = ts - cols["first_ts"][rows]
        ripe = np.flatnonzero(
            (origin[rows] == _MEASURING) & ~born & (age >= BACKFILL_MEASURE_SECONDS - 1e-6)
        )
        if ripe.shape[0] == 0:
            return [], []
        rr = rows[ripe]
        origin[rr] = _DONE
        first = cols["first_pos"][rr]
        velocity = (pts[ripe] - first) / age[ripe, None]
        # The tracker reports a new track on its second frame: it was detected one frame earlier.
        back = first - velocity * (self.spec.backfill_seconds + max(frame_dt, 0.0))
        first_side = np.sign(cross(self._a, self._b, first)).astype(np.int8)
        back_side = np.sign(cross(self._a, self._b, back)).astype(np.int8)
        # Still on the side it was first seen on, with no run to the other side under way.
        cand = np.flatnonzero(
            (first_side != 0)
            & (back_side == -first_side)
            & (committed[ripe] == first_side)
            & (cols["pending"][rr] == 0)
        )
        if cand.shape[0] == 0:
            return [], []
        hit = cand[crosses_segment(self._a, self._b, back[cand], first[cand])]
        out_rows: list[int] = []
        out_dirs: list[int] = []
        for k in hit.tolist():  # once per counted crossing
            direction = int(first_side[k])
            row = int(sel[ripe[k]])
            # Never repeated: a back-projected crossing is the track's first, by construction.
            if not self._fire(int(rr[k]), direction, int(class_id[row]), False):
                continue
            out_rows.append(row)
            out_dirs.append(direction)
        return out_rows, out_dirs


def _merge(
    rows_a: list[int], dirs_a: list[int], rows_b: list[int], dirs_b: list[int]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int8]]:
    if not rows_a and not rows_b:
        return _EMPTY_ROWS, _EMPTY_DIRS
    return np.array(rows_a + rows_b, np.intp), np.array(dirs_a + dirs_b, np.int8)
