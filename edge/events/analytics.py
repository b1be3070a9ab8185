"""One camera's lines and zones behind one call per frame.

:class:`CameraAnalytics` turns the tracker's output of a frame into typed events, keeps the counts,
and evicts per-track state when the tracker removes tracks. It does no I/O: persisting the counts is
:mod:`edge.events.store`'s job, publishing is the publisher's.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.events._table import TrackTable
from edge.events.lines import IN, LineCounter, LineSpec
from edge.events.model import LineCrossing, ZoneEnter, ZoneExit, ZoneLoitering, iso_ms
from edge.events.zones import ENTER, EXIT_LEFT, EXIT_LOST, ZoneHit, ZoneSpec, ZoneTracker
from edge.types import Detections, anchor_points

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from edge.events.model import Event
    from edge.metrics import Metrics

log = logging.getLogger(__name__)

AMODAL_TOLERANCE: float = 0.3
"""A tracked box more than this fraction shorter than its track's reference height is taken as cut
off at the bottom (legs hidden by a bench, a car, another person): its bottom anchors are placed at
top + reference height. Lower catches smaller occlusions but also treats a crouch or a sloppy box as
one; 0.15 to 0.75 were measured (docs/benchmarks.md)."""
AMODAL_TAU_S: float = 1.0
"""Time constant (s) with which the reference height follows a track that gets smaller (walking
away). Longer holds the reference through longer occlusions; shorter follows real shrinking sooner."""
AMODAL_MIN_WIDTH: float = 0.8
"""A short box is only taken as cut off at the bottom if it is at least this fraction of its track's
reference width: hidden legs leave the shoulders as wide as before. A box that is both much shorter
and narrower is a smaller object, most often another person farther away that the track has moved
to, and its track's references restart from it. Lower keeps the estimate for more boxes (a walker's
stride widens the full box), higher drops more stale references. 0.8 and 0.9 measured the same
(docs/benchmarks.md)."""
AMODAL_TOP_MARGIN: float = 0.1
"""A box whose top is within this fraction of its reference height of the image's top edge is cut
off by the frame at the top, not hidden at the bottom: its bottom is the feet and is kept."""

CLASS_VOTE_SECONDS: float = 0.5
"""Cap of a track's class vote (see :meth:`CameraAnalytics._vote`), in seconds of sightings: a track
seen as one class for this long keeps it through up to this long of another class. Higher resists
longer flicker, lower follows a real change (a detector settling on a class) sooner. Counted in time,
so a flicker of 0.2 s is one frame at 5 fps and six at 30 fps, and behaves the same."""

Counts = dict[str, Any]
"""Snapshot of the persistent counters, JSON-ready::

    {"lines": {name: {"in": {class_id: n}, "out": {class_id: n}}},
     "zones": {name: {"entries": {class_id: n}}}}
"""

# Shared empty inputs for frames without detections (never written to).
_NO_IDS: npt.NDArray[np.int64] = np.zeros(0, np.int64)
_NO_CLS: npt.NDArray[np.int32] = np.zeros(0, np.int32)
_NO_CONF: npt.NDArray[np.float32] = np.zeros(0, np.float32)
_NO_BOXES: npt.NDArray[np.float32] = np.zeros((0, 4), np.float32)
_NO_POINTS: npt.NDArray[np.float64] = np.zeros((0, 2), np.float64)
_NO_ROWS: npt.NDArray[np.intp] = np.zeros(0, np.intp)
for _a in (_NO_IDS, _NO_CLS, _NO_CONF, _NO_BOXES, _NO_POINTS, _NO_ROWS):
    _a.flags.writeable = False


class CameraAnalytics:
    """All lines and zones of one camera.

    Args:
        camera: camera name, copied into every event and metric label.
        lines: counting lines (names unique).
        zones: zones (names unique).
        run_id: id of this process run (new per start); part of every ``event_id``.
        class_names: class id -> name for events and metric labels; unknown ids render as the number.
        metrics: where crossings, zone events and occupancy are exported; ``None`` for none.
        max_tracks: bound of each line's and zone's per-track table (a safety net; eviction on the
            tracker's removed ids is what keeps them small).
        track_boxes: take anchors from the tracker's Kalman box (``Detections.track_xyxy``) instead of
            the detection box. Smoother, but it lags a walker by a frame or two, which cost more than
            the smoothing gained on the MOT17 line grid (docs/analytics.md); off by default.
        amodal: place the bottom of a tracked box that is much shorter than its track's reference
            height at top + reference height (legs hidden behind something), see
            :data:`AMODAL_TOLERANCE`. Applies to boxes from the tracker only.
    """

    def __init__(
        self,
        camera: str,
        lines: Sequence[LineSpec] = (),
        zones: Sequence[ZoneSpec] = (),
        *,
        run_id: str,
        class_names: Mapping[int, str] | Sequence[str] = (),
        metrics: Metrics | None = None,
        max_tracks: int = 10_000,
        track_boxes: bool = False,
        amodal: bool = True,
    ) -> None:
        self.camera = camera
        self.run_id = run_id
        self._names: dict[int, str] = (
            dict(class_names.items()) if hasattr(class_names, "items") else dict(enumerate(class_names))
        )
        self._metrics = metrics
        self._max_tracks = max_tracks
        self._track_boxes = track_boxes
        self._amodal = amodal
        # Per track: voted class, its vote, the feet reference height, and the last box and score
        # seen (for the event of a crossing counted after the track is gone, LineCounter.project).
        self._classes = TrackTable(
            {
                "cls": (np.int32, (), -1),
                "votes": (np.float32, (), 0.0),
                "href": (np.float32, (), 0.0),
                "wref": (np.float32, (), 0.0),
                "box": (np.float32, (4,), 0.0),
                "conf": (np.float32, (), 0.0),
            },
            max_rows=max_tracks,
        )
        self._voted: npt.NDArray[np.int32] = _NO_CLS
        self._last_mono: float | None = None
        self._frame_dt = 0.0  # smoothed seconds between processed frames; 0 until known
        self._seq = 0
        self._exported: dict[str, set[int]] = {}  # zone -> class ids whose occupancy gauge exists
        self.lines: dict[str, LineCounter] = {}
        self.zones: dict[str, ZoneTracker] = {}
        self.reconfigure(lines, zones)

    # ---- configuration -------------------------------------------------------------------------

    def reconfigure(self, lines: Sequence[LineSpec], zones: Sequence[ZoneSpec]) -> None:
        """Swap in new lines and zones (SIGHUP reload).

        Counts of lines and zones whose name persists are kept; an unchanged spec also keeps its
        per-track state, a changed one starts its tracks afresh (their old sides mean nothing on the new
        geometry). A zone whose polygon, anchor, classes and inertia are unchanged keeps its per-track
        state even when ``loiter_seconds`` or ``max_gap_seconds`` changed: no new enter, no extra
        entry. Lines and zones no longer configured are dropped with their counts.
        """
        _unique("line", [s.name for s in lines])
        _unique("zone", [s.name for s in zones])
        new_lines: dict[str, LineCounter] = {}
        for spec in lines:
            old = self.lines.get(spec.name)
            if old is not None and old.spec == spec:
                new_lines[spec.name] = old
                continue
            counter = LineCounter(spec, self._max_tracks)
            if old is not None:
                counter.set_counts(old.counts())
            new_lines[spec.name] = counter
        new_zones: dict[str, ZoneTracker] = {}
        for zspec in zones:
            zold = self.zones.get(zspec.name)
            if zold is not None and zold.same_geometry(zspec):
                # Only timing changed (loiter_seconds, max_gap_seconds): every track's visit goes on,
                # so a reload does not re-enter the tracks inside or add to the entry counts.
                zold.respec(zspec)
                new_zones[zspec.name] = zold
                continue
            zone = ZoneTracker(zspec, self._max_tracks)
            if zold is not None:
                zone.set_entries(zold.entries())
            new_zones[zspec.name] = zone
        self.lines = new_lines
        self.zones = new_zones
        self._anchors = sorted({s.anchor for s in lines} | {s.anchor for s in zones})

    # ---- counters ------------------------------------------------------------------------------

    def counts(self) -> Counts:
        """Snapshot of the persistent counters (see :data:`Counts`)."""
        return {
            "lines": {name: c.counts() for name, c in self.lines.items()},
            "zones": {name: {"entries": z.entries()} for name, z in self.zones.items()},
        }

    def occupancy(self) -> dict[str, dict[int, int]]:
        """``{zone: {class_id: tracks inside}}`` right now."""
        return {name: z.occupancy() for name, z in self.zones.items()}

    def restore(self, counts: Mapping[str, Any]) -> None:
        """Load counters saved by :meth:`counts`; names not configured any more are ignored."""
        for name, line_counts in counts.get("lines", {}).items():
            if name in self.lines:
                self.lines[name].set_counts(
                    {d: {int(c): int(n) for c, n in line_counts.get(d, {}).items()} for d in ("in", "out")}
                )
        for name, zone_counts in counts.get("zones", {}).items():
            if name in self.zones:
                entries = zone_counts.get("entries", {})
                self.zones[name].set_entries({int(c): int(n) for c, n in entries.items()})

    def reset_line(self, name: str) -> None:
        """Zero one line's counts (raises ``KeyError`` for an unknown line)."""
        self.lines[name].reset()

    def reset_zone(self, name: str) -> None:
        """Zero one zone's entry totals (occupancy is live state and is kept)."""
        self.zones[name].reset()

    def reset(self) -> None:
        """Zero every counter of this camera."""
        for c in self.lines.values():
            c.reset()
        for z in self.zones.values():
            z.reset()

    def evict(self, track_ids: Iterable[int] | npt.NDArray[np.int64]) -> None:
        """Forget per-track state of these tracks in every line and zone, without events."""
        ids = np.fromiter(track_ids, np.int64) if not isinstance(track_ids, np.ndarray) else track_ids
        for c in self.lines.values():
            c.evict(ids.astype(np.int64, copy=False))
        for z in self.zones.values():
            z.evict(ids.astype(np.int64, copy=False))

    def state_sizes(self) -> dict[str, int]:
        """Rows of per-track state per line/zone (``line:NAME`` / ``zone:NAME``); for bounds tests."""
        sizes = {f"line:{n}": len(c.table) for n, c in self.lines.items()}
        sizes.update({f"zone:{n}": len(z.table) for n, z in self.zones.items()})
        return sizes

    # ---- the per-frame call --------------------------------------------------------------------

    def update(
        self,
        dets: Detections,
        removed_ids: npt.NDArray[np.int64] | Sequence[int] = _NO_IDS,
        frame_no: int = 0,
        ts_wall: float = 0.0,
        ts_mono: float = 0.0,
    ) -> list[Event]:
        """Feed one frame's tracked detections; return the events it produced, in order.

        Args:
            dets: the tracker's output (``track_id`` filled, ``-1`` for unconfirmed rows).
            removed_ids: tracks the tracker removed at this frame; their state is evicted here, and
                zones emit ``zone_exit`` with reason ``lost`` for those still inside.
            frame_no: the source's frame number, copied into events.
            ts_wall: capture time (Unix seconds) for event timestamps.
            ts_mono: capture time on the monotonic clock, for dwell times.
        """
        removed = np.asarray(removed_ids, np.int64).reshape(-1)
        self._observe_rate(ts_mono)
        events: list[Event] = []
        if not self.lines and not self.zones:
            return events
        if len(dets):
            self._vote(dets, frame_no)
            dets = Detections(
                dets.xyxy,
                dets.confidence,
                self._voted,
                dets.track_id,
                dets.track_xyxy,
                dets.link_id,
            )
        gone = self._gone(removed) if removed.shape[0] and self.lines else None
        boxes = dets.xyxy if dets.track_xyxy is None or not self._track_boxes else dets.track_xyxy
        if self._amodal and dets.track_xyxy is not None and len(dets):
            # Only boxes from the tracker (which sets track_xyxy): ground truth built from
            # annotations is already amodal and is used as it is (edge evaluate).
            boxes = self._feet(boxes, dets.track_id)
        anchors = {a: anchor_points(boxes, a).astype(np.float64) for a in self._anchors} if len(dets) else {}
        links = None
        linked = _NO_ROWS
        if dets.link_id is not None and len(dets):
            linked = np.flatnonzero((dets.link_id >= 0) & (dets.track_id >= 0))
            if linked.shape[0]:
                # Child ids, lost (parent) ids and the children's box heights, the same for every line.
                heights = (boxes[linked, 3] - boxes[linked, 1]).astype(np.float64)
                links = (dets.track_id[linked], dets.link_id[linked], heights)
        for counter in self.lines.values():
            if len(dets):
                if links is not None:
                    counter.inherit(
                        links[0], links[1], frame_no, anchors[counter.spec.anchor][linked], links[2]
                    )
                rows, dirs = counter.update(
                    dets.track_id,
                    dets.class_id,
                    anchors[counter.spec.anchor],
                    frame_no,
                    self._frame_dt,
                    ts_mono if self._frame_dt > 0.0 else None,
                )
                pts = anchors[counter.spec.anchor]
                events.extend(
                    self._crossing(counter, dets, pts, row, direction, frame_no, ts_wall)
                    for row, direction in zip(rows.tolist(), dirs.tolist(), strict=True)
                )
            if removed.shape[0]:
                if gone is not None:
                    events.extend(self._projected(counter, gone, frame_no, ts_wall))
                counter.evict(removed)
        for zone in self.zones.values():
            if links is not None:
                zone.inherit(links[0], links[1], frame_no)
            if len(dets):
                hits = zone.update(
                    dets.track_id,
                    dets.class_id,
                    dets.confidence,
                    dets.xyxy,
                    anchors[zone.spec.anchor],
                    removed,
                    frame_no,
                    ts_mono,
                )
            else:
                hits = zone.update(
                    _NO_IDS, _NO_CLS, _NO_CONF, _NO_BOXES, _NO_POINTS, removed, frame_no, ts_mono
                )
            events.extend(self._zone_event(zone, hit, frame_no, ts_wall) for hit in hits)
            if self._metrics is not None and (hits or removed.shape[0]):
                self._export_occupancy(zone)
        if removed.shape[0]:
            self._classes.remove(removed)
        return events

    def _gone(self, removed: npt.NDArray[np.int64]) -> Detections:
        """The removed tracks as last seen: box, score and voted class."""
        idx, found = self._classes.find(removed)
        rows = idx[found]
        cols = self._classes.cols
        return Detections(
            cols["box"][rows].astype(np.float32),
            cols["conf"][rows].astype(np.float32),
            cols["cls"][rows].astype(np.int32),
            removed[found],
        )

    def _projected(
        self, counter: LineCounter, gone: Detections, frame_no: int, ts_wall: float
    ) -> list[LineCrossing]:
        """Events of the crossings the line projects for tracks the tracker gave up on."""
        rows, dirs, last = counter.project(gone.track_id, gone.class_id)
        if rows.shape[0] == 0:
            return []
        anchors = np.zeros((len(gone), 2), np.float64)
        anchors[rows] = last
        return [
            self._crossing(counter, gone, anchors, row, direction, frame_no, ts_wall)
            for row, direction in zip(rows.tolist(), dirs.tolist(), strict=True)
        ]

    def _vote(self, dets: Detections, frame_no: int) -> None:
        """Set ``self._voted`` to each row's class by a running vote of its track (rows without a track
        keep the detector's class).

        Each track keeps a class and a vote, in seconds, capped at :data:`CLASS_VOTE_SECONDS`: a
        sighting of that class adds the frame interval, any other class takes it away, and a vote
        that reaches 0 hands the track to the class just seen. A person seen as "bicycle" for two
        frames stays a person; a real change of the detector's mind wins after at most
        ``CLASS_VOTE_SECONDS``.
        """
        voted = dets.class_id.copy()
        sel = np.flatnonzero(dets.track_id >= 0)
        if sel.shape[0]:
            rows = self._classes.rows_for(dets.track_id[sel], frame_no)
            cols = self._classes.cols
            seen = dets.class_id[sel]
            cls, votes = cols["cls"][rows], cols["votes"][rows]
            dt = np.float32(self._frame_dt if self._frame_dt > 0 else 1.0 / 30.0)
            same = cls == seen
            votes = np.where(same, np.minimum(votes + dt, np.float32(CLASS_VOTE_SECONDS)), votes - dt)
            flip = votes <= 0
            cls = np.where(flip, seen, cls)
            votes[flip] = dt
            cols["cls"][rows] = cls
            cols["votes"][rows] = votes
            cols["box"][rows] = dets.xyxy[sel]
            cols["conf"][rows] = dets.confidence[sel]
            voted[sel] = cls
        self._voted = voted

    def _feet(
        self, boxes: npt.NDArray[np.float32], track_id: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Boxes whose bottom is where the feet are: a tracked box much shorter than its track's
        reference height is extended down to top + reference (see :data:`AMODAL_TOLERANCE`)."""
        sel = np.flatnonzero(track_id >= 0)
        if sel.shape[0] == 0:
            return boxes
        idx, _found = self._classes.find(track_id[sel])
        href = self._classes.cols["href"]
        wref = self._classes.cols["wref"]
        top = boxes[sel, 1]
        h = boxes[sel, 3] - top
        w = boxes[sel, 2] - boxes[sel, 0]
        ref = href[idx]
        ref_w = wref[idx]
        out = boxes.copy()
        shorter = (ref > 0) & (h < (1.0 - AMODAL_TOLERANCE) * ref)
        # Shorter and narrower: not hidden legs but a smaller object (on the development sets nearly
        # every such box was another person the track had moved to, whose own feet the box shows).
        smaller = shorter & (w < AMODAL_MIN_WIDTH * ref_w)
        short = shorter & ~smaller & (top > AMODAL_TOP_MARGIN * ref)
        out[sel[short], 3] = top[short] + ref[short]
        dt = self._frame_dt if self._frame_dt > 0 else 1.0 / 30.0
        # The references grow fast (a walker coming closer), shrink with a time constant of
        # AMODAL_TAU_S (walking away), and 4x slower still through a short box, so an occlusion
        # does not teach them the occluded height; a track that really shrank is followed anyway.
        # A smaller object restarts them.
        tau = np.where(short, 4.0 * AMODAL_TAU_S, AMODAL_TAU_S)
        down = (1.0 - np.exp(-dt / tau)).astype(np.float32)
        href[idx] = _follow(ref, h, down, smaller)
        wref[idx] = _follow(ref_w, w, down, smaller)
        return out

    def _observe_rate(self, ts_mono: float) -> None:
        # The processed frame spacing, smoothed over ~8 frames: capture jitter and a dropped frame
        # barely move it, a changed fps cap settles within a second or two.
        last, self._last_mono = self._last_mono, ts_mono
        if last is None or not ts_mono > last or ts_mono - last > 5.0:
            return
        dt = ts_mono - last
        self._frame_dt = dt if self._frame_dt == 0.0 else self._frame_dt + 0.125 * (dt - self._frame_dt)

    # ---- event construction (only when something fired) ----------------------------------------

    def _class_name(self, class_id: int) -> str:
        return self._names.get(class_id, str(class_id))

    def _common(
        self,
        frame_no: int,
        ts_wall: float,
        track_id: int,
        class_id: int,
        confidence: float,
        box: Sequence[float],
        anchor: Sequence[float],
    ) -> dict[str, Any]:
        seq = self._seq
        self._seq += 1
        return {
            "event_id": f"{self.run_id}-{self.camera}-{seq}",
            "run_id": self.run_id,
            "seq": seq,
            "camera": self.camera,
            "ts": iso_ms(ts_wall),
            "ts_ms": round(ts_wall * 1000.0),
            "frame": frame_no,
            "track_id": track_id,
            "class_id": class_id,
            "class_name": self._class_name(class_id),
            "confidence": round(float(confidence), 4),
            "bbox": tuple(round(float(v), 1) for v in box),
            "anchor_xy": (round(float(anchor[0]), 1), round(float(anchor[1]), 1)),
        }

    def _crossing(
        self,
        counter: LineCounter,
        dets: Detections,
        anchors: npt.NDArray[np.float64],
        row: int,
        direction: int,
        frame_no: int,
        ts_wall: float,
    ) -> LineCrossing:
        cls = int(dets.class_id[row])
        key = "in" if direction == IN else "out"
        spec = counter.spec
        if self._metrics is not None:
            self._metrics.line_crossings.labels(
                camera=self.camera, line=spec.name, direction=key, class_name=self._class_name(cls)
            ).inc()
        return LineCrossing(
            **self._common(
                frame_no,
                ts_wall,
                int(dets.track_id[row]),
                cls,
                float(dets.confidence[row]),
                dets.xyxy[row].tolist(),
                anchors[row].tolist(),
            ),
            line=spec.name,
            direction=key,
            label=spec.label(direction),
            counts={"in": counter.total(IN, cls), "out": counter.total(-IN, cls)},
            counts_all={"in": counter.total(IN), "out": counter.total(-IN)},
        )

    def _zone_event(self, zone: ZoneTracker, hit: ZoneHit, frame_no: int, ts_wall: float) -> Event:
        common = self._common(
            frame_no, ts_wall, hit.track_id, hit.class_id, hit.confidence, hit.xyxy, hit.anchor
        )
        occupancy_all = sum(zone.occupancy().values())
        zone_fields: dict[str, Any] = {
            "zone": zone.spec.name,
            "occupancy": zone.occupancy_of(hit.class_id),
            "occupancy_all": occupancy_all,
            "entries": zone.entries().get(hit.class_id, 0),
        }
        dwell = round(hit.dwell_s, 3)
        event: Event
        if hit.kind == ENTER:
            start = ts_wall - hit.since_s
            event = ZoneEnter(
                **common, **zone_fields, visit_start=iso_ms(start), visit_start_ms=round(start * 1000.0)
            )
            kind = "zone_enter"
        elif hit.kind in {EXIT_LEFT, EXIT_LOST}:
            reason = "left" if hit.kind == EXIT_LEFT else "lost"
            event = ZoneExit(**common, **zone_fields, reason=reason, dwell_s=dwell)
            kind = "zone_exit"
        else:
            event = ZoneLoitering(**common, **zone_fields, dwell_s=dwell)
            kind = "zone_loitering"
        if self._metrics is not None:
            self._metrics.zone_events.labels(camera=self.camera, zone=zone.spec.name, type=kind).inc()
        return event

    def _export_occupancy(self, zone: ZoneTracker) -> None:
        assert self._metrics is not None
        occupancy = zone.occupancy()
        # Classes seen in this zone before are set too, so a class that left drops to 0.
        shown = self._exported.setdefault(zone.spec.name, set())
        shown.update(occupancy)
        for cls in shown:
            self._metrics.zone_occupancy.labels(
                camera=self.camera, zone=zone.spec.name, class_name=self._class_name(cls)
            ).set(occupancy.get(cls, 0))


def _follow(
    ref: npt.NDArray[np.float32],
    size: npt.NDArray[np.float32],
    down: npt.NDArray[np.float32],
    restart: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float32]:
    """A feet reference (height or width) after one sighting of ``size``: halfway up at once, down by
    the fraction ``down``; the size itself on the first sighting and where ``restart``."""
    moved = np.where(size > ref, ref + np.float32(0.5) * (size - ref), ref + down * (size - ref))
    return np.where((ref == 0) | restart, size, moved).astype(np.float32)


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            msg = f"duplicate {what} name {n!r}"
            raise ValueError(msg)
        seen.add(n)


def warmup() -> float:
    """Compile (or load from Numba's on-disk cache) the line and zone kernels; returns the seconds it
    took.

    Otherwise the first frame with a tracked object pays for it: about 3 s cold on a 2-core VM, 0.1-0.2 s
    from the cache. The daemon calls it (with the tracker's) before ``READY=1``, where systemd's
    watchdog is not armed yet. Idempotent: about 0 once warm.
    """
    t0 = time.perf_counter()
    _compile()
    elapsed = time.perf_counter() - t0
    log.debug("analytics kernels ready in %.3f s", elapsed)
    return elapsed


@functools.cache
def _compile() -> None:
    # One tracked box through one line and one zone runs both kernels once; the dtypes are the ones
    # every update passes, so this is the only signature they compile for.
    square = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))
    analytics = CameraAnalytics(
        "warmup", [LineSpec("l", (0.0, 50.0), (100.0, 50.0))], [ZoneSpec("z", square)], run_id="warmup"
    )
    dets = Detections.from_arrays([[10.0, 10.0, 20.0, 40.0]], [0.9], [0], [1])
    analytics.update(dets, frame_no=1, ts_mono=0.0)
