"""One camera's per-frame logic: tracker -> lines and zones -> events, counts, zone state and trails.

:class:`CameraPipeline` is the only place this step exists. The daemon (:mod:`edge.app`, through
:class:`edge.runner.PipelineRunner`), ``edge replay`` and ``edge annotate`` all run it, so a
recording replayed offline gives the events the daemon would have published.

It does no I/O of its own: what it produces goes to a :class:`Sink` (the MQTT publisher, a stdout printer,
a JSONL writer, the tracks bus; see :mod:`edge.sinks`), and counters go to an optional
:class:`~edge.events.store.CounterStore` through one method, :meth:`CameraPipeline._persist`.

Threading: one pipeline belongs to one thread (the daemon's ``edge-pipeline`` thread, or the tool's main
thread); nothing in it is locked. Other threads see it only through :meth:`CameraPipeline.view`, an
immutable snapshot made on the owning thread while somebody watches, and change it only by asking the
owning thread (the runner's command queue).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, cast

import numpy as np

from edge.discovery import line_state_payload, zone_state_payload
from edge.draw import LineGeometry, Scene, SceneState, TrailBuffer, ZoneGeometry
from edge.events import CameraAnalytics
from edge.events.lines import IN, OUT
from edge.payloads import LineState, ZoneState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy.typing as npt

    from edge.config import CameraConfig, TrackerConfig
    from edge.events import Event, LineSpec, ZoneSpec
    from edge.events.store import CounterStore
    from edge.metrics import Metrics
    from edge.tracking import ByteTracker
    from edge.types import Detections

    Geometry: TypeAlias = Callable[[int, int], tuple[Sequence[LineSpec], Sequence[ZoneSpec]]]
    """``geometry(width, height) -> (lines, zones)`` in frame pixels (a camera's config, or fixed specs)."""

log = logging.getLogger(__name__)

class Sink:
    """Where a pipeline's output goes. Every method is a no-op here; a sink overrides what it needs.

    Methods run on the pipeline's thread, once per item, so they must be quick and must not block on the
    network (the MQTT publisher writes to its outbox; the tracks bus drops when its peer is slow).
    """

    def tracks(self, camera: str, frame_no: int, ts_wall: float, tracked: Detections) -> None:
        """Every processed frame's tracked detections."""

    def event(self, event: Event) -> None:
        """One event, in the order the analytics produced it."""

    def line_state(self, camera: str, line: str, state: LineState) -> None:
        """A line's counts after they changed (or once at start and after a reload or reset)."""

    def zone_state(self, camera: str, zone: str, state: ZoneState) -> None:
        """A zone's occupancy after it changed."""

    def snapshot(
        self, camera: str, image: npt.NDArray[np.uint8], events: Sequence[Event], ts_mono: float
    ) -> None:
        """A frame that produced events, after them (``image`` is the capture's, not a copy: read only)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one frame produced, aligned with what was fed in.

    Attributes:
        tracked: the frame's detections with ``track_id`` set (unconfirmed rows have ``-1``).
        removed: ids the tracker removed at this frame (their line/zone state is evicted).
        events: events of this frame, in order.
        lines_changed: lines whose counts this frame changed.
        zones_changed: zones whose occupancy this frame changed, with the new state.
    """

    tracked: Detections
    removed: npt.NDArray[np.int64]
    events: list[Event]
    lines_changed: frozenset[str]
    zones_changed: dict[str, ZoneState]


@dataclass(frozen=True, slots=True)
class ViewSnapshot:
    """A copy of what the debug view draws, made on the pipeline's thread; safe to read from any thread."""

    image: npt.NDArray[np.uint8]
    tracked: Detections
    state: SceneState
    trails: TrailBuffer
    scene: Scene


def scene_for(
    camera: str,
    lines: Sequence[LineSpec],
    zones: Sequence[ZoneSpec],
    class_names: Sequence[str],
) -> Scene:
    """The drawing geometry of a camera's analytics specs (in frame pixels)."""
    anchors = [s.anchor for s in lines] + [z.anchor for z in zones]
    return Scene(
        camera,
        lines=[
            LineGeometry(
                s.name,
                (float(s.a[0]), float(s.a[1])),
                (float(s.b[0]), float(s.b[1])),
                labels=(s.label(IN), s.label(OUT)),
            )
            for s in lines
        ],
        zones=[ZoneGeometry(z.name, [(float(x), float(y)) for x, y in z.polygon]) for z in zones],
        class_names=class_names,
        # Trails follow the point the analytics test; with mixed anchors the first one configured.
        anchor=anchors[0] if anchors else "bottom_center",
    )


def scene_state(analytics: CameraAnalytics, frame_no: int, fps: float | None) -> SceneState:
    """The analytics' current totals (all classes summed) as the numbers drawn on a frame."""
    return SceneState(
        frame_no=frame_no,
        fps=fps,
        line_counts={name: (c.total(IN), c.total(OUT)) for name, c in analytics.lines.items()},
        zone_occupancy={name: sum(z.occupancy().values()) for name, z in analytics.zones.items()},
    )


def config_geometry(camera: CameraConfig, class_names: Sequence[str]) -> Geometry:
    """A camera config's lines and zones as a function of the frame size."""
    from edge.tools.specs import camera_specs  # noqa: PLC0415 - specs imports config helpers only

    def geometry(width: int, height: int) -> tuple[Sequence[LineSpec], Sequence[ZoneSpec]]:
        return camera_specs(camera, width, height, class_names)

    return geometry


@dataclass
class _Fps:
    """Frames per second over a sliding window of about ``window_s`` seconds."""

    window_s: float = 5.0
    _count: int = 0
    _start: float = 0.0
    value: float = 0.0

    def tick(self, now: float) -> None:
        if self._count == 0:
            self._start = now
        self._count += 1
        elapsed = now - self._start
        if elapsed >= self.window_s:
            self.value = (self._count - 1) / elapsed if elapsed > 0 else 0.0
            self._count = 1
            self._start = now

    def current(self, now: float) -> float:
        """The rate, or 0 when no frame arrived for two windows (a stalled camera shows 0 fps)."""
        return 0.0 if now - self._start > 2 * self.window_s else self.value


@dataclass
class _Published:
    """The last zone state handed to the sink, so only changes are sent."""

    zones: dict[str, ZoneState] = field(default_factory=dict)


class CameraPipeline:
    """Tracker, analytics and trails of one camera, behind :meth:`step`.

    Args:
        camera: camera name, in every event, metric label and sink call.
        geometry: ``(width, height) -> (lines, zones)``; called at the first frame and when the frame size
            changes (normalized coordinates depend on it).
        tracker: tracker thresholds; the tracker itself is built at the first frame, when ``frame_rate``
            (a number, or a callable asked then: a camera's rate is known once it streams) is known.
        class_names: model class names (index = class id), for events, payloads and labels.
        run_id: this run's id, part of every ``event_id``.
        sink: where tracks, events and line/zone states go.
        store: counter persistence; counts are restored from it at the first frame and saved through
            :meth:`_persist`. ``None`` keeps counts in memory only (replay, annotate).
        metrics: tracker and analytics metrics; ``None`` for none.
        trails: drawing trails, kept only when given (the daemon's debug view and annotate draw them).
        view_hold_s: how long after a :meth:`request_view` the pipeline keeps making snapshots. Longer
            keeps a slow viewer fed; shorter stops the copying sooner after the last viewer left.
    """

    def __init__(
        self,
        camera: str,
        geometry: Geometry,
        *,
        tracker: TrackerConfig,
        class_names: Sequence[str] = (),
        run_id: str,
        sink: Sink | None = None,
        store: CounterStore | None = None,
        metrics: Metrics | None = None,
        frame_rate: float | Callable[[], float] = 30.0,
        trails: TrailBuffer | None = None,
        view_hold_s: float = 2.0,
    ) -> None:
        self.camera = camera
        self._geometry = geometry
        self._tracker_cfg = tracker
        self.class_names = class_names
        self.run_id = run_id
        self.sink = sink if sink is not None else Sink()
        self.store = store
        self._metrics = metrics
        self._frame_rate = frame_rate
        self.trails = trails
        self.view_hold_s = view_hold_s
        self.tracker: ByteTracker | None = None
        self.analytics: CameraAnalytics | None = None
        self.scene: Scene | None = None
        self.frame_size: tuple[int, int] | None = None
        self.frames = 0
        self.fps = _Fps()
        self._published = _Published()
        self._view: ViewSnapshot | None = None
        self._view_until = float("-inf")

    # ---- the per-frame step --------------------------------------------------------------------------

    def step(
        self,
        dets: Detections,
        *,
        frame_no: int,
        ts_wall: float,
        ts_mono: float,
        size: tuple[int, int],
        image: npt.NDArray[np.uint8] | None = None,
    ) -> StepResult:
        """Track ``dets`` (one frame of ``size`` = (width, height)), run lines and zones, hand the output on.

        ``ts_mono`` is also the clock of the fps meter and of the view hold; ``image`` is kept (not
        copied) for the debug view only while somebody watches, and goes to the sink's ``snapshot`` with
        the events of a frame that has any.
        """
        analytics = self.prepare(size)
        assert self.tracker is not None
        tracked = self.tracker.update(dets)  # records edge_tracker_seconds and edge_active_tracks
        removed = self.tracker.removed_ids()
        events = analytics.update(tracked, removed, frame_no, ts_wall, ts_mono)
        lines_changed = frozenset(ev.line for ev in events if ev.type == "line_crossing")
        zones_changed = self._zone_changes()
        self.sink.tracks(self.camera, frame_no, ts_wall, tracked)
        self._commit(events, lines_changed, zones_changed)
        if events and image is not None:
            self.sink.snapshot(self.camera, image, events, ts_mono)
        if self.trails is not None:
            self.trails.add(tracked, self.scene.anchor if self.scene is not None else "bottom_center")
            if len(removed):
                self.trails.remove(removed)
        self.frames += 1
        self.fps.tick(ts_mono)
        if image is not None and ts_mono <= self._view_until:
            self._snapshot(image, tracked, frame_no, ts_mono)
        return StepResult(tracked, removed, events, lines_changed, zones_changed)

    def prepare(self, size: tuple[int, int]) -> CameraAnalytics:
        """Build the tracker and the lines and zones for frames of ``size`` (done by the first
        :meth:`step`; call it first to have the analytics, and the restored counts, before any frame)."""
        if self.tracker is None:
            rate = self._frame_rate() if callable(self._frame_rate) else self._frame_rate
            self.tracker = _build_tracker(self._tracker_cfg, rate, self.camera, self._metrics)
        if size != self.frame_size or self.analytics is None:
            self._apply_geometry(size)
        assert self.analytics is not None
        return self.analytics

    def _commit(
        self, events: list[Event], lines_changed: frozenset[str], zones_changed: Mapping[str, ZoneState]
    ) -> None:
        """Hand a frame's events and the states they changed to the sink, then persist the counts."""
        with self._persist_with(events):
            for ev in events:
                self.sink.event(ev)
        for name in sorted(lines_changed):
            self.sink.line_state(self.camera, name, self.line_state(name))
        for name, state in zones_changed.items():
            self.sink.zone_state(self.camera, name, state)
        self._persist(force=False)

    def _persist_with(self, events: list[Event]) -> contextlib.AbstractContextManager[None]:
        """The store's transaction around a frame's events: with the outbox store, the events and the counts
        they changed are written together (issue 15: counts equal events after any crash)."""
        if not events or self.store is None or self.analytics is None:
            return contextlib.nullcontext()
        return self.store.batch(self.camera, self.analytics.counts)

    def _persist(self, *, force: bool) -> None:
        """The counts -> store hand-off (the only one): throttled per frame, immediate when ``force``."""
        if self.store is None or self.analytics is None:
            return
        if force:
            self.store.save(self.camera, self.analytics.counts())
        else:
            self.store.maybe_save(self.camera, self.analytics.counts)

    # ---- states handed to sinks ----------------------------------------------------------------------

    def line_state(self, line: str) -> LineState:
        """The retained state of ``line``: counts by class name and direction, with totals."""
        assert self.analytics is not None
        return cast("LineState", line_state_payload(self.analytics.lines[line].counts(), self.class_names))

    def _zone_changes(self) -> dict[str, ZoneState]:
        assert self.analytics is not None
        changed: dict[str, ZoneState] = {}
        last = self._published.zones
        for zone, occ in self.analytics.occupancy().items():
            state = cast("ZoneState", zone_state_payload(occ, self.class_names))
            if last.get(zone) != state:
                last[zone] = state
                changed[zone] = state
        return changed

    def publish_all_lines(self) -> None:
        """Send every line's state (at start, after a reload)."""
        if self.analytics is None:
            return
        for name in self.analytics.lines:
            self.sink.line_state(self.camera, name, self.line_state(name))

    # ---- changes asked for by other parts (run on the owning thread) ---------------------------------

    def reconfigure(self, geometry: Geometry) -> None:
        """New lines and zones (reload); counts of names that persist are kept."""
        self._geometry = geometry
        if self.frame_size is not None:
            self._apply_geometry(self.frame_size)
            self._published.zones.clear()
            self.publish_all_lines()

    def reset_line(self, line: str) -> bool:
        """Zero one line's counts, save and publish them; ``False`` (and a warning) for an unknown line."""
        if self.analytics is None or line not in self.analytics.lines:
            log.warning("reset for unknown line camera=%s line=%s ignored", self.camera, line)
            return False
        self.analytics.reset_line(line)
        log.info("counters reset camera=%s line=%s", self.camera, line)
        self._persist(force=True)
        self.sink.line_state(self.camera, line, self.line_state(line))
        return True

    def close(self) -> None:
        """Save the counts now (clean shutdown)."""
        self._persist(force=True)

    # ---- the debug view ------------------------------------------------------------------------------

    def request_view(self, now: float) -> None:
        """Somebody watches (any thread): make snapshots for the next ``view_hold_s`` seconds."""
        self._view_until = now + self.view_hold_s

    def view(self) -> ViewSnapshot | None:
        """The newest snapshot (any thread); ``None`` until a frame was processed while watched."""
        return self._view

    def _snapshot(self, image: npt.NDArray[np.uint8], tracked: Detections, frame_no: int, now: float) -> None:
        assert self.analytics is not None
        assert self.scene is not None
        state = scene_state(self.analytics, frame_no, self.fps.current(now))
        # The trails are copied (a few hundred kB at most) so the HTTP thread draws without a lock.
        trails = copy.deepcopy(self.trails) if self.trails is not None else TrailBuffer(max_tracks=1)
        self._view = ViewSnapshot(image, tracked, state, trails, self.scene)

    # ---- geometry --------------------------------------------------------------------------------------

    def _apply_geometry(self, size: tuple[int, int]) -> None:
        lines, zones = self._geometry(size[0], size[1])
        if self.analytics is None:
            self.analytics = CameraAnalytics(
                self.camera,
                lines,
                zones,
                run_id=self.run_id,
                class_names=self.class_names,
                metrics=self._metrics,
            )
            if self.store is not None:
                self.analytics.restore(self.store.load(self.camera))
            self.frame_size = size
            self.publish_all_lines()
        else:
            self.analytics.reconfigure(lines, zones)
        self.frame_size = size
        self.scene = scene_for(self.camera, lines, zones, self.class_names)


def _build_tracker(
    cfg: TrackerConfig, frame_rate: float, camera: str, metrics: Metrics | None
) -> ByteTracker:
    from edge.tools.specs import build_tracker  # noqa: PLC0415 - loads numba

    return build_tracker(cfg, frame_rate, camera, metrics=metrics)
