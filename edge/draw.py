"""Drawing the pipeline's view of a frame: boxes, trails, lines, zones and a header.

Pure OpenCV drawing on BGR ``uint8`` images, fed with arrays (:class:`edge.types.Detections`) and plain
counts, so it serves both ``edge annotate`` (offline MP4) and the live debug stream (``render_jpeg``). It
imports no other stage: the caller maps the analytics' counts onto :class:`SceneState`.

What can be prepared once is prepared once: per-camera geometry (int32 polylines, zone masks and blend
buffers for the frame size, text positions) lives in :class:`Scene`; trails live in a fixed-capacity
:class:`TrailBuffer`. What remains per frame is one OpenCV call per box, label and trail, which is the
cost of drawing them at all.

Colours are BGR. :data:`OVERLAY_COLOR` is used for the configured geometry (lines, zones) and for a solid
marker in the header, so a screenshot test can look for it; track colours never come close to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from edge.types import NO_TRACK, Detections

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

Color = tuple[int, int, int]

OVERLAY_COLOR: Color = (255, 0, 255)
"""BGR magenta: lines, zone outlines and fills, and the header marker.

Chosen because it is rare in real scenes and survives JPEG/MPEG chroma subsampling well on the solid
header marker (``HEADER_MARKER_WIDTH`` x header height pixels), which is what the debug-view screenshot
test checks for. Track colours in :data:`TRACK_PALETTE` are at least 120 apart from it (L-inf in BGR).
"""

UNTRACKED_COLOR: Color = (160, 160, 160)
"""Grey for detections that are not (yet) part of a confirmed track (``track_id == -1``)."""

TRACK_PALETTE: tuple[Color, ...] = (
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
    (147, 69, 52),
    (255, 115, 100),
    (236, 24, 0),
    (0, 255, 255),
    (0, 128, 255),
    (0, 200, 0),
    (255, 255, 0),
    (200, 100, 0),
)
"""Distinct BGR colours cycled by track id (``id % len``), so one object keeps its colour."""

HEADER_MARKER_WIDTH = 12
"""Width in pixels of the solid :data:`OVERLAY_COLOR` block at the left of the header."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE: Color = (255, 255, 255)
_BLACK: Color = (0, 0, 0)


def track_color(track_id: int) -> Color:
    """The colour of a track (stable for its lifetime); :data:`UNTRACKED_COLOR` for ``-1``."""
    if track_id < 0:
        return UNTRACKED_COLOR
    return TRACK_PALETTE[track_id % len(TRACK_PALETTE)]


class TrailBuffer:
    """Recent anchor points of each live track, in fixed-size arrays (one per camera).

    Memory is bounded by ``max_tracks * length`` points whatever the input: a track's trail is dropped
    when the tracker reports it removed (:meth:`remove`), and when more tracks than ``max_tracks`` are
    alive at once the least recently seen trail is recycled (counted in :attr:`evicted`).

    Each trail is a ring stored twice side by side (``2 * length`` slots), so the last ``n`` points are
    always one contiguous, chronologically ordered slice that OpenCV can draw without a copy.

    Args:
        max_tracks: trails kept at once. Raise it for crowded scenes (more memory, more drawing); lower it
            and trails of old tracks are recycled early.
        length: points per trail. Longer shows more history but costs one more line segment per point.

    Not thread-safe: one camera's drawing thread owns it.
    """

    def __init__(self, *, max_tracks: int = 256, length: int = 32) -> None:
        if max_tracks < 1 or length < 2:
            raise ValueError(f"TrailBuffer needs max_tracks >= 1 and length >= 2, got {max_tracks}, {length}")
        self.max_tracks = max_tracks
        self.length = length
        self._ids = np.full(max_tracks, NO_TRACK, np.int64)
        self._points = np.zeros((max_tracks, 2 * length, 2), np.int32)
        self._head = np.zeros(max_tracks, np.int64)
        self._count = np.zeros(max_tracks, np.int64)
        self._seen = np.zeros(max_tracks, np.int64)
        self._tick = 0
        self.evicted = 0
        """Trails recycled because ``max_tracks`` tracks were alive at once."""

    def __len__(self) -> int:
        return int(np.count_nonzero(self._ids != NO_TRACK))

    def clear(self) -> None:
        self._ids.fill(NO_TRACK)
        self._count.fill(0)

    def update(self, track_ids: npt.NDArray[np.int64], points: npt.NDArray[np.float32]) -> None:
        """Append ``points[i]`` (``(N, 2)`` pixels) to the trail of ``track_ids[i]`` (``(N,)``).

        Rows with ``track_id == -1`` are ignored; ids are expected unique within one call, as a tracker
        gives them.
        """
        self._tick += 1
        keep = track_ids != NO_TRACK
        ids = track_ids[keep]
        if ids.size == 0:
            return
        pts = points[keep]
        # (N, C) comparison: N and C are a few hundred at most, cheaper than keeping a dict in step.
        match = ids[:, None] == self._ids[None, :]
        found = match.any(axis=1)
        slots = match.argmax(axis=1)
        new = np.flatnonzero(~found)
        if new.size:
            # Free slots first, then the least recently seen ones not updated in this call.
            protected = np.zeros(self.max_tracks, np.bool_)
            protected[slots[found]] = True
            free = np.flatnonzero(self._ids == NO_TRACK)
            candidates = np.flatnonzero(~protected & (self._ids != NO_TRACK))
            lru = candidates[np.argsort(self._seen[candidates], kind="stable")]
            pool = np.concatenate((free, lru))[: new.size]
            self.evicted += int(max(0, pool.size - free.size))
            if pool.size < new.size:
                # More new tracks in one frame than capacity: the surplus gets no trail this frame.
                new = new[: pool.size]
            slots[new] = pool
            self._ids[pool] = ids[new]
            self._count[pool] = 0
            self._head[pool] = 0
            found[new] = True
        slots = slots[found]
        pts_i = np.rint(pts[found]).astype(np.int32)
        head = self._head[slots]
        self._points[slots, head] = pts_i
        self._points[slots, head + self.length] = pts_i
        self._head[slots] = (head + 1) % self.length
        self._count[slots] = np.minimum(self._count[slots] + 1, self.length)
        self._seen[slots] = self._tick

    def add(self, dets: Detections, anchor: str = "bottom_center") -> None:
        """Append the ``anchor`` point of each tracked row of ``dets`` (see :meth:`update`)."""
        self.update(dets.track_id, dets.anchors(anchor))

    def remove(self, track_ids: Sequence[int] | npt.NDArray[np.int64]) -> None:
        """Forget the trails of tracks the tracker removed."""
        ids = np.asarray(track_ids, dtype=np.int64)
        if ids.size == 0:
            return
        gone = np.isin(self._ids, ids) & (self._ids != NO_TRACK)
        self._ids[gone] = NO_TRACK
        self._count[gone] = 0

    def trails(self) -> Iterator[tuple[int, npt.NDArray[np.int32]]]:
        """``(track_id, int32 (n, 2) points oldest first)`` for every trail of two points or more.

        The arrays are views into the buffer, valid until the next :meth:`update`.
        """
        for slot in np.flatnonzero((self._ids != NO_TRACK) & (self._count >= 2)):
            n = int(self._count[slot])
            end = int(self._head[slot]) + self.length
            yield int(self._ids[slot]), self._points[slot, end - n : end]


@dataclass(frozen=True, slots=True)
class LineGeometry:
    """A counting line from ``start`` to ``end`` in frame pixels.

    The arrow at the line's middle points to the side that counts as "in": the right-hand side of
    ``start -> end`` as seen on screen (y down), as :class:`edge.events.lines.LineSpec` defines it.
    ``labels`` are the display names of the ``in`` and ``out`` counts.
    """

    name: str
    start: tuple[float, float]
    end: tuple[float, float]
    labels: tuple[str, str] = ("in", "out")


@dataclass(frozen=True, slots=True)
class ZoneGeometry:
    """A polygon zone, vertices in frame pixels."""

    name: str
    polygon: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class SceneState:
    """The per-frame numbers drawn on top of the geometry (the analytics snapshot).

    Attributes:
        frame_no: shown in the header (capture ``seq`` or the video frame index).
        fps: processed frames per second shown in the header, ``None`` to leave it out.
        line_counts: line name -> ``(in, out)`` totals; lines not named show ``0``.
        zone_occupancy: zone name -> objects inside now; zones not named show ``0``.
    """

    frame_no: int
    fps: float | None = None
    line_counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    zone_occupancy: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _PreparedLine:
    name: str
    p1: tuple[int, int]
    p2: tuple[int, int]
    mid: tuple[int, int]
    arrow_tip: tuple[int, int]
    labels: tuple[str, str]


@dataclass(slots=True)
class _PreparedZone:
    name: str
    points: npt.NDArray[np.int32]
    label_at: tuple[int, int]
    # Blend region, clipped to the frame; empty when the zone lies outside it.
    y0: int = 0
    y1: int = 0
    x0: int = 0
    x1: int = 0
    mask: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0, 3), np.bool_))
    fill: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8))
    scratch: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8))


class Scene:
    """One camera's overlay: its geometry prepared once, drawn on every frame.

    Args:
        camera: name shown in the header.
        lines: counting lines to draw with their in/out counts.
        zones: zones to fill translucently with their occupancy.
        class_names: model class names for box labels (index = ``class_id``); ids beyond it print as
            numbers.
        anchor: box point trails follow, one of :data:`edge.types.ANCHORS`; use the analytics' anchor so
            the trail shows the point that crosses lines.
        zone_alpha: zone fill opacity 0..1; higher is easier to see, lower hides less of the scene.
        thickness: line width in pixels of boxes, lines and trails; thicker reads better on large frames.
        font_scale: OpenCV font scale of labels (0.5 suits 540p..1080p).

    Not thread-safe: zone blend buffers and the JPEG canvas are reused between calls, so one camera's
    drawing happens in one thread at a time.
    """

    def __init__(
        self,
        camera: str,
        lines: Sequence[LineGeometry] = (),
        zones: Sequence[ZoneGeometry] = (),
        *,
        class_names: Sequence[str] = (),
        anchor: str = "bottom_center",
        zone_alpha: float = 0.25,
        thickness: int = 2,
        font_scale: float = 0.5,
    ) -> None:
        if not 0.0 <= zone_alpha <= 1.0:
            raise ValueError(f"zone_alpha must be within 0..1, got {zone_alpha}")
        self.camera = camera
        self.class_names = tuple(class_names)
        self.anchor = anchor
        self.zone_alpha = zone_alpha
        self.thickness = thickness
        self.font_scale = font_scale
        self._lines = [self._prepare_line(line) for line in lines]
        self._zones = [self._prepare_zone(zone) for zone in zones]
        self._shape: tuple[int, int] = (0, 0)
        self._canvas = np.zeros((0, 0, 3), np.uint8)

    # ---- preparation -------------------------------------------------------------------------------

    @staticmethod
    def _prepare_line(line: LineGeometry) -> _PreparedLine:
        a = np.asarray(line.start, np.float64)
        b = np.asarray(line.end, np.float64)
        mid = (a + b) / 2.0
        d = b - a
        norm = float(np.hypot(d[0], d[1])) or 1.0
        # Right of start->end on screen (y down) is (-dy, dx); 30 px or a third of the line, if shorter.
        right = np.array([-d[1], d[0]]) / norm
        tip = mid + right * min(30.0, norm / 3.0)
        return _PreparedLine(
            name=line.name,
            p1=(round(a[0]), round(a[1])),
            p2=(round(b[0]), round(b[1])),
            mid=(round(mid[0]), round(mid[1])),
            arrow_tip=(round(tip[0]), round(tip[1])),
            labels=line.labels,
        )

    @staticmethod
    def _prepare_zone(zone: ZoneGeometry) -> _PreparedZone:
        pts = np.rint(np.asarray(zone.polygon, np.float64)).astype(np.int32).reshape(-1, 2)
        if pts.shape[0] < 3:
            raise ValueError(f"zone {zone.name!r} needs at least 3 points, got {pts.shape[0]}")
        top = pts[np.argmin(pts[:, 1])]
        return _PreparedZone(name=zone.name, points=pts, label_at=(int(top[0]), int(top[1])))

    def _fit(self, height: int, width: int) -> None:
        """Build zone masks and blend buffers for this frame size (once, or when the size changes)."""
        self._shape = (height, width)
        for zone in self._zones:
            x0 = max(int(zone.points[:, 0].min()), 0)
            y0 = max(int(zone.points[:, 1].min()), 0)
            x1 = min(int(zone.points[:, 0].max()) + 1, width)
            y1 = min(int(zone.points[:, 1].max()) + 1, height)
            if x1 <= x0 or y1 <= y0:
                zone.y0 = zone.y1 = zone.x0 = zone.x1 = 0
                continue
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [zone.points - np.array([x0, y0], np.int32)], 1)
            zone.y0, zone.y1, zone.x0, zone.x1 = y0, y1, x0, x1
            # A full (h, w, 3) mask: numpy's masked copy is ~8x slower when it must broadcast (h, w, 1).
            zone.mask = np.repeat(mask.astype(np.bool_)[:, :, None], 3, axis=2)
            zone.fill = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
            zone.fill[:] = OVERLAY_COLOR
            zone.scratch = np.empty_like(zone.fill)

    # ---- drawing -----------------------------------------------------------------------------------

    def draw(
        self,
        image: npt.NDArray[np.uint8],
        dets: Detections,
        state: SceneState,
        trails: TrailBuffer | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Draw everything on ``image`` in place (zones, lines, trails, boxes, header); returns it."""
        h, w = image.shape[:2]
        if (h, w) != self._shape:
            self._fit(h, w)
        self.draw_zones(image, state.zone_occupancy)
        self.draw_lines(image, state.line_counts)
        if trails is not None:
            self.draw_trails(image, trails)
        self.draw_boxes(image, dets)
        self.draw_header(image, state.frame_no, state.fps)
        return image

    def render_jpeg(
        self,
        image: npt.NDArray[np.uint8],
        dets: Detections,
        state: SceneState,
        trails: TrailBuffer | None = None,
        quality: int = 70,
    ) -> bytes:
        """Draw on a copy of ``image`` (left untouched: the pipeline still owns it) and JPEG-encode it.

        ``quality`` 0..100: lower is smaller and faster to send, higher shows thin lines more crisply.
        """
        if self._canvas.shape != image.shape:
            self._canvas = np.empty_like(image)
        np.copyto(self._canvas, image)
        self.draw(self._canvas, dets, state, trails)
        ok, buf = cv2.imencode(".jpg", self._canvas, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError("cv2.imencode failed to encode a JPEG")
        return bytes(buf)

    def draw_zones(self, image: npt.NDArray[np.uint8], occupancy: Mapping[str, int]) -> None:
        a = self.zone_alpha
        for zone in self._zones:
            if zone.y1 > zone.y0:
                roi = image[zone.y0 : zone.y1, zone.x0 : zone.x1]
                cv2.addWeighted(roi, 1.0 - a, zone.fill, a, 0.0, dst=zone.scratch)
                np.copyto(roi, zone.scratch, where=zone.mask)
            cv2.polylines(
                image,
                [zone.points],
                isClosed=True,
                color=OVERLAY_COLOR,
                thickness=self.thickness,
                lineType=cv2.LINE_AA,
            )
            self._label(image, f"{zone.name}: {occupancy.get(zone.name, 0)}", zone.label_at, OVERLAY_COLOR)

    def draw_lines(self, image: npt.NDArray[np.uint8], counts: Mapping[str, tuple[int, int]]) -> None:
        for line in self._lines:
            cv2.line(image, line.p1, line.p2, OVERLAY_COLOR, self.thickness, cv2.LINE_AA)
            cv2.arrowedLine(
                image, line.mid, line.arrow_tip, OVERLAY_COLOR, self.thickness, cv2.LINE_AA, 0, 0.3
            )
            n_in, n_out = counts.get(line.name, (0, 0))
            l_in, l_out = line.labels
            self._label(image, f"{line.name} {l_in} {n_in} {l_out} {n_out}", line.mid, OVERLAY_COLOR)

    def draw_trails(self, image: npt.NDArray[np.uint8], trails: TrailBuffer) -> None:
        for track_id, points in trails.trails():
            cv2.polylines(
                image,
                [points],
                isClosed=False,
                color=track_color(track_id),
                thickness=self.thickness,
                lineType=cv2.LINE_AA,
            )

    def draw_boxes(self, image: npt.NDArray[np.uint8], dets: Detections) -> None:
        if len(dets) == 0:
            return
        # One conversion for all rows; the loop below only hands Python ints to OpenCV.
        boxes = np.rint(dets.xyxy).astype(np.int32).tolist()
        ids = dets.track_id.tolist()
        classes = dets.class_id.tolist()
        scores = dets.confidence.tolist()
        names = self.class_names
        for (x1, y1, x2, y2), tid, cls, score in zip(boxes, ids, classes, scores, strict=True):
            color = track_color(tid)
            # Thickness 2 is drawn centred on the edge; LINE_8 keeps the edge pixels exactly ``color``.
            cv2.rectangle(image, (x1, y1), (x2, y2), color, self.thickness, cv2.LINE_8)
            name = names[cls] if 0 <= cls < len(names) else str(cls)
            text = f"{tid} {name} {score:.2f}" if tid != NO_TRACK else f"{name} {score:.2f}"
            self._label(image, text, (x1, y1), color)

    def draw_header(self, image: npt.NDArray[np.uint8], frame_no: int, fps: float | None) -> None:
        text = f"{self.camera}  frame {frame_no}" + (f"  {fps:.1f} fps" if fps is not None else "")
        (tw, th), base = cv2.getTextSize(text, _FONT, self.font_scale, 1)
        height = max(th + base + 8, 24)
        right = HEADER_MARKER_WIDTH + tw + 12
        cv2.rectangle(image, (0, 0), (right, height), _BLACK, cv2.FILLED)
        cv2.rectangle(image, (0, 0), (HEADER_MARKER_WIDTH - 1, height), OVERLAY_COLOR, cv2.FILLED)
        cv2.putText(
            image,
            text,
            (HEADER_MARKER_WIDTH + 6, height - base - 3),
            _FONT,
            self.font_scale,
            _WHITE,
            1,
            cv2.LINE_AA,
        )

    def _label(self, image: npt.NDArray[np.uint8], text: str, at: tuple[int, int], color: Color) -> None:
        """Text on a filled ``color`` box whose bottom-left corner is ``at`` (moved inside the frame)."""
        (tw, th), base = cv2.getTextSize(text, _FONT, self.font_scale, 1)
        x = min(max(at[0], 0), max(image.shape[1] - tw - 4, 0))
        y = max(at[1], th + base + 2)
        cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 4, y), color, cv2.FILLED)
        # Dark text on light colours, white on dark ones (BT.601 luma of the BGR colour).
        luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        cv2.putText(
            image,
            text,
            (x + 2, y - base),
            _FONT,
            self.font_scale,
            _BLACK if luma > 140 else _WHITE,
            1,
            cv2.LINE_AA,
        )


def render_jpeg(
    frame: npt.NDArray[np.uint8],
    dets: Detections,
    analytics_snapshot: SceneState,
    trails: TrailBuffer | None,
    quality: int = 70,
    *,
    scene: Scene,
) -> bytes:
    """The annotated JPEG of the live debug stream: ``scene.render_jpeg`` as a function.

    ``frame`` is not modified. ``scene`` carries the camera's prepared geometry and buffers.
    """
    return scene.render_jpeg(frame, dets, analytics_snapshot, trails, quality)
