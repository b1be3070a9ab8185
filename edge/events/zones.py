"""Zones: enter/exit with inertia, dwell time, loitering, occupancy per class.

A track is *inside* once its anchor has been seen inside the polygon on ``inertia`` frames in a row and
*outside* again after ``inertia`` frames seen outside, or when the tracker removes it. Frames on which
the track is not detected at all (a dropout) neither extend nor break the run, so a 1-frame detector miss
never toggles a zone. Dwell time runs from the first frame of the inside run to the first frame of the
outside run (or to the last sighting of a removed track), on the monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from edge.events._table import TrackTable
from edge.events.geometry import Point, is_simple_polygon
from edge.types import ANCHORS

if TYPE_CHECKING:
    from collections.abc import Mapping

ENTER: int = 1
EXIT_LEFT: int = 2
EXIT_LOST: int = 3
LOITER: int = 4


# This scalar twin of edge.events.geometry.points_in_polygon lives here, beside the kernel that calls
# it, on purpose: Numba's on-disk cache keys a compiled kernel on its own source file only, so a
# kernel that called a compiled helper from another file would keep running the old helper after an
# in-place upgrade changed it (numba#1833; a documented limitation of cache=True).
@njit(cache=True, nogil=True)
def _inside(poly: np.ndarray, px: float, py: float) -> bool:
    """:func:`edge.events.geometry.points_in_polygon` for one point (the same even-odd ray casting,
    the same operations)."""
    k = poly.shape[0]
    inside = False
    for e in range(k):
        x0 = poly[e, 0]
        y0 = poly[e, 1]
        x1 = poly[(e + 1) % k, 0]
        y1 = poly[(e + 1) % k, 1]
        dy = 1.0 if y1 == y0 else y1 - y0
        x_at = x0 + (py - y0) * (x1 - x0) / dy
        if ((y0 > py) != (y1 > py)) and px < x_at:
            inside = not inside
    return inside


@njit(cache=True, nogil=True)
def _advance(
    rows: np.ndarray,
    pts: np.ndarray,
    poly: np.ndarray,
    now: float,
    max_gap: float,
    inertia: int,
    seen: np.ndarray,
    run: np.ndarray,
    run_start: np.ndarray,
    inside: np.ndarray,
    flips: np.ndarray,
) -> int:
    """The run bookkeeping of :meth:`ZoneTracker.update` for one frame's rows (track ids unique):
    writes the rows whose run reached ``inertia`` (they change sides) to ``flips``, in input order,
    and returns how many."""
    n_flips = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        # A run does not bridge a long gap: the sighting after it starts the run again, so the
        # run's start (the visit's start on enter) is never older than the sightings behind it.
        if seen[r] < now - max_gap:
            run[r] = 0
        seen[r] = now
        if _inside(poly, pts[k, 0], pts[k, 1]) == inside[r]:
            run[r] = 0
            continue
        if run[r] == 0:
            run_start[r] = now
        run[r] += 1
        if run[r] >= inertia:
            flips[n_flips] = r
            n_flips += 1
    return n_flips


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """One zone in frame pixels.

    Attributes:
        name: unique per camera; the key of its totals (persisted).
        polygon: ≥ 3 vertices of a simple polygon, in order.
        anchor: the box point tested, one of :data:`edge.types.ANCHORS`.
        classes: class ids considered, ``None`` for all.
        inertia: frames seen inside (outside) before enter (exit) fires. Higher rejects boxes that graze
            the border and 1-frame mis-detections; it also delays every event by that many frames.
        loiter_seconds: dwell after which one ``zone_loitering`` event fires per visit; ``None`` for never.
        max_gap_seconds: longest gap between two sightings that a run of sightings (towards enter or
            exit) bridges; after a longer gap the run starts again at the next sighting. Longer keeps a
            run alive through longer detector misses; shorter makes a visit's start time (and so its
            dwell and loitering) never include time the object was not seen. The default, 1 s, is the
            default tracker's lost-track lifetime (``track_buffer`` 30 frames at 30 fps): a gap the
            tracker bridges with the same id is one the run bridges.
    """

    name: str
    polygon: tuple[Point, ...]
    anchor: str = "bottom_center"
    classes: frozenset[int] | None = None
    inertia: int = 3
    loiter_seconds: float | None = None
    max_gap_seconds: float = 1.0

    def __post_init__(self) -> None:
        # Normalise what callers may pass as lists/sets, so equal specs compare equal (reconfigure).
        object.__setattr__(self, "polygon", tuple((float(x), float(y)) for x, y in self.polygon))
        if self.classes is not None:
            object.__setattr__(self, "classes", frozenset(int(c) for c in self.classes))
        if not self.name:
            raise ValueError("zone name must not be empty")
        poly = np.asarray(self.polygon, np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or not is_simple_polygon(poly):
            msg = f"zone {self.name!r}: polygon must be >= 3 points forming a simple polygon"
            raise ValueError(msg)
        if self.anchor not in ANCHORS:
            msg = f"zone {self.name!r}: unknown anchor {self.anchor!r}, expected one of {', '.join(ANCHORS)}"
            raise ValueError(msg)
        if self.inertia < 1:
            msg = f"zone {self.name!r}: inertia must be >= 1, got {self.inertia}"
            raise ValueError(msg)
        if not self.max_gap_seconds > 0:
            msg = f"zone {self.name!r}: max_gap_seconds must be > 0, got {self.max_gap_seconds}"
            raise ValueError(msg)
        if self.loiter_seconds is not None and self.loiter_seconds <= 0:
            msg = f"zone {self.name!r}: loiter_seconds must be > 0, got {self.loiter_seconds}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ZoneHit:
    """One zone transition, built only when one fires (rare), carrying what the event needs."""

    kind: int  # ENTER, EXIT_LEFT, EXIT_LOST or LOITER
    track_id: int
    class_id: int
    confidence: float
    xyxy: tuple[float, float, float, float]
    anchor: tuple[float, float]
    dwell_s: float
    since_s: float = 0.0  # ENTER: seconds from the visit's first inside sighting to now


class ZoneTracker:
    """State machine of one zone over all tracks of one camera.

    Args:
        spec: the zone.
        max_tracks: bound of the per-track table.
    """

    def __init__(self, spec: ZoneSpec, max_tracks: int = 10_000) -> None:
        self.spec = spec
        self._poly = np.asarray(spec.polygon, np.float64)
        self._classes = (
            None if spec.classes is None else np.fromiter(sorted(spec.classes), np.int32, len(spec.classes))
        )
        self.table = TrackTable(
            {
                "inside": (np.bool_, (), False),  # committed state
                "run": (np.int32, (), 0),  # frames seen in the other state, in a row
                "run_start": (np.float64, (), 0.0),  # monotonic time of the run's first frame
                "entered": (np.float64, (), 0.0),  # monotonic time the committed inside visit began
                "loitered": (np.bool_, (), False),
                "seen": (np.float64, (), 0.0),  # monotonic time of the last sighting
                "xyxy": (np.float32, (4,), 0.0),  # last sighting, for events of unseen tracks
                "anchor": (np.float64, (2,), 0.0),
                "conf": (np.float32, (), 0.0),
                "cls": (np.int32, (), 0),
            },
            max_rows=max_tracks,
        )
        self._entries: dict[int, int] = {}  # class_id -> visits that entered

    def entries(self) -> dict[int, int]:
        return dict(sorted(self._entries.items()))

    def set_entries(self, entries: Mapping[int, int]) -> None:
        self._entries = {int(c): int(n) for c, n in entries.items() if n}

    def reset(self) -> None:
        self._entries = {}

    def occupancy(self) -> dict[int, int]:
        """``{class_id: tracks inside}`` (tracks inside but momentarily undetected still count)."""
        inside = self.table.cols["inside"].astype(np.bool_)
        if not inside.any():
            return {}
        classes, n = np.unique(self.table.cols["cls"][inside], return_counts=True)
        return {int(c): int(k) for c, k in zip(classes, n, strict=True)}

    def occupancy_of(self, class_id: int) -> int:
        cols = self.table.cols
        return int(np.count_nonzero(cols["inside"] & (cols["cls"] == class_id)))

    def same_geometry(self, spec: ZoneSpec) -> bool:
        """Whether ``spec`` tests the same tracks the same way (polygon, anchor, classes, inertia), so
        this zone's per-track state stays true under it."""
        old = self.spec
        return (old.polygon, old.anchor, old.classes, old.inertia) == (
            spec.polygon,
            spec.anchor,
            spec.classes,
            spec.inertia,
        )

    def respec(self, spec: ZoneSpec) -> None:
        """Take a spec of the same geometry (see :meth:`same_geometry`) keeping every track's state.

        Tracks already past a new, lower ``loiter_seconds`` loiter on the next update; tracks that
        already loitered in this visit do not loiter again.
        """
        if not self.same_geometry(spec):
            msg = f"zone {spec.name!r}: respec needs the same polygon, anchor, classes and inertia"
            raise ValueError(msg)
        self.spec = spec

    def inherit(self, child: npt.NDArray[np.int64], parent: npt.NDArray[np.int64], frame_no: int) -> None:
        """Continue each lost track ``parent[i]``'s visit under the new id ``child[i]`` (an id switch).

        The child gets the parent's state (inside or not, the run, the visit's start, loitered), the
        parent's row goes without an exit: one visit, one enter, one entry, one exit. Children already
        known to this zone and parents it never saw are skipped.
        """
        self.table.hand_over(child, parent, frame_no)

    def evict(self, track_ids: npt.NDArray[np.int64]) -> None:
        """Forget tracks without emitting events."""
        self.table.remove(track_ids)

    def _hit(self, kind: int, row: int, dwell: float) -> ZoneHit:
        cols = self.table.cols
        box = cols["xyxy"][row]
        anchor = cols["anchor"][row]
        return ZoneHit(
            kind=kind,
            track_id=int(self.table.ids[row]),
            class_id=int(cols["cls"][row]),
            confidence=float(cols["conf"][row]),
            xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            anchor=(float(anchor[0]), float(anchor[1])),
            dwell_s=max(0.0, dwell),
        )

    def update(
        self,
        track_id: npt.NDArray[np.int64],
        class_id: npt.NDArray[np.int32],
        confidence: npt.NDArray[np.float32],
        xyxy: npt.NDArray[np.float32],
        anchors: npt.NDArray[np.float64],
        removed: npt.NDArray[np.int64],
        frame_no: int,
        now: float,
    ) -> list[ZoneHit]:
        """Advance the tracks seen in this frame, then retire ``removed``; return what fired."""
        hits: list[ZoneHit] = []
        cols = self.table.cols
        ok = track_id >= 0
        if self._classes is not None:
            ok &= np.isin(class_id, self._classes)
        sel = np.flatnonzero(ok)
        if sel.shape[0]:
            rows = self.table.rows_for(track_id[sel], frame_no)
            cols = self.table.cols
            pts = anchors[sel]
            cols["xyxy"][rows] = xyxy[sel]
            cols["anchor"][rows] = pts
            cols["conf"][rows] = confidence[sel]
            cols["cls"][rows] = class_id[sel]
            flips = np.empty(sel.shape[0], np.intp)
            n_flips = _advance(
                rows, np.ascontiguousarray(pts, np.float64), self._poly, float(now),
                float(self.spec.max_gap_seconds), int(self.spec.inertia), cols["seen"], cols["run"],
                cols["run_start"], cols["inside"], flips,
            )  # fmt: skip
            if n_flips:
                flip = flips[:n_flips]
                for r in flip.tolist():
                    cols["run"][r] = 0
                    if cols["inside"][r]:
                        cols["inside"][r] = False
                        hits.append(self._hit(EXIT_LEFT, r, cols["run_start"][r] - cols["entered"][r]))
                    else:
                        cols["inside"][r] = True
                        cols["entered"][r] = cols["run_start"][r]
                        cols["loitered"][r] = False
                        cls = int(cols["cls"][r])
                        self._entries[cls] = self._entries.get(cls, 0) + 1
                        hit = self._hit(ENTER, r, 0.0)
                        hits.append(replace(hit, since_s=max(0.0, now - float(cols["entered"][r]))))
        if self.spec.loiter_seconds is not None and len(self.table):
            due = cols["inside"] & ~cols["loitered"] & (now - cols["entered"] >= self.spec.loiter_seconds)
            for r in np.flatnonzero(due).tolist():
                cols["loitered"][r] = True
                hits.append(self._hit(LOITER, r, now - cols["entered"][r]))
        if removed.shape[0] and len(self.table):
            idx, found = self.table.find(removed)
            gone = idx[found]
            hits.extend(
                self._hit(EXIT_LOST, r, cols["seen"][r] - cols["entered"][r])
                for r in gone[cols["inside"][gone]].tolist()
            )
            self.table.remove(removed)
        return hits
