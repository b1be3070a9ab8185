"""The composition root: builds every stage from :class:`~edge.config.Settings` and runs them.

Data flow and hand-offs (principle 1: each says what it drops, and every drop is counted)::

    capture thread per camera --latest-frame slot (drops superseded frames)--> detector thread
    detector thread --bounded queue, blocking put (lossless, in order)--> pipeline thread
    pipeline thread (tracker + lines/zones + tracks bus) --durable outbox--> MQTT thread

The asyncio loop only orchestrates: signals, periodic status and counter saves, reload, shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from edge.capture import Capture, FrameNotifier
from edge.clock import Clock, SystemClock
from edge.config import (
    CameraConfig,
    Settings,
    load_settings,
    resolve_model_path,
)
from edge.detector import BatchingDetector, Detector
from edge.discovery import CameraSpec, debug_view_url, ha_cameras
from edge.draw import LineGeometry, Scene, SceneState, TrailBuffer, ZoneGeometry
from edge.errors import ConfigError
from edge.events import CameraAnalytics, new_run_id
from edge.events.store import CounterStore
from edge.metrics import Metrics
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.systemd import Notifier, WatchdogPinger
from edge.tools.specs import build_detector, build_tracker, camera_specs
from edge.web import CameraInfo, WebServer, health_from_cameras

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge.bus import TracksBus
    from edge.events.model import Event
    from edge.tracking import ByteTracker
    from edge.types import Detections, Frame

log = logging.getLogger(__name__)

_STOP = object()  # pipeline queue sentinel


@dataclass
class _FpsMeter:
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

    def decay(self, now: float) -> None:
        """Drop to zero when no frame arrived for two windows (a stalled camera shows 0 fps)."""
        if now - self._start > 2 * self.window_s:
            self.value = 0.0


@dataclass
class CameraRuntime:
    """Everything that exists per camera while the daemon runs."""

    cfg: CameraConfig
    capture: Capture
    tracker: ByteTracker | None = None  # built at the first frame, when the source's fps is known
    analytics: CameraAnalytics | None = None
    scene: Scene | None = None
    trails: TrailBuffer = field(default_factory=TrailBuffer)
    fps: _FpsMeter = field(default_factory=_FpsMeter)
    frames_processed: int = 0
    frame_size: tuple[int, int] | None = None
    latest: tuple[Frame, Detections] | None = None
    last_zone_state: dict[str, dict[str, int]] = field(default_factory=dict)
    jpeg_cache: tuple[int, bytes] | None = None
    # Labelled metric children, looked up once instead of per frame.
    m_processed: Any = None
    m_latency: Any = None


class App:
    """The daemon. Build it with settings, then ``await run()`` until a signal stops it.

    Args:
        settings: the validated configuration.
        config_path: the file it came from, re-read on SIGHUP.
        clock: injected clocks (a fake in tests).
        print_events: also print one line per event to ``stdout`` (the demo does).
        notifier: systemd notifier; default reads ``$NOTIFY_SOCKET``.
    """

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None = None,
        *,
        clock: Clock | None = None,
        print_events: bool = False,
        events_out: TextIO | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.print_events = print_events
        self.events_out = events_out if events_out is not None else sys.stdout
        self.notifier = notifier if notifier is not None else Notifier()
        self.metrics = metrics if metrics is not None else Metrics()
        self.run_id = new_run_id()
        self.state_dir = Path(settings.state_dir)
        self.cameras: dict[str, CameraRuntime] = {}
        self.frame_notifier = FrameNotifier()
        self.pipeline_queue: queue.Queue[object] = queue.Queue(maxsize=max(2, 2 * settings.model.batch_size))
        self.frames_done = 0
        self._rr = 0  # round-robin start for fair batching across cameras
        self._stop_requested = asyncio.Event()
        self._reload_requested = False
        self._signals_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipeline_thread: threading.Thread | None = None
        self._pipeline_failure: BaseException | None = None
        self._lock = threading.Lock()  # guards analytics reconfiguration against the pipeline thread
        self.detector: Detector | None = None
        self.batcher: BatchingDetector | None = None
        self.publisher: Publisher | None = None
        self.outbox: Outbox | None = None
        self.store: CounterStore | None = None
        self.bus: TracksBus | None = None
        self.web: WebServer | None = None
        self.watchdog: WatchdogPinger | None = None
        self.exit_code = 0

    # ------------------------------------------------------------------------------------------------
    # building

    def _build_detector(self) -> Detector:
        config_dir = self.config_path.parent if self.config_path else None
        path = resolve_model_path(self.settings.model.path, config_dir)
        return build_detector(
            self.settings.model, path, metrics=self.metrics, trt_cache_dir=self.state_dir / "tensorrt"
        )

    def _build_capture(self, cam: CameraConfig) -> Capture:
        def on_state(camera: str, state: str) -> None:
            loop = self._loop
            if loop is not None and self.publisher is not None:
                publisher = self.publisher
                with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                    loop.call_soon_threadsafe(publisher.set_camera_status, camera, state)

        return Capture(
            cam.name,
            cam.source,
            fps=cam.fps,
            transport=cam.transport,
            loop=cam.loop,
            realtime=cam.realtime,
            stall_timeout=cam.stall_timeout,
            clock=self.clock,
            metrics=self.metrics,
            on_state=on_state,
            notify=self.frame_notifier,
        )

    def _build_publisher(self) -> Publisher:
        q = self.settings.mqtt
        self.outbox = Outbox(
            self.state_dir / "outbox.sqlite3",
            max_events=q.outbox_max_events,
            max_age_s=q.outbox_max_age_s,
            metrics=self.metrics,
            clock=self.clock,
        )
        return Publisher(
            self.settings.node,
            host=q.host,
            port=q.port,
            username=q.username,
            password=q.password,
            tls_ca=Path(q.tls_ca) if q.tls_ca else None,
            tls_cert=Path(q.tls_cert) if q.tls_cert else None,
            tls_key=Path(q.tls_key) if q.tls_key else None,
            tls_insecure=q.tls_insecure,
            protocol=q.protocol,
            client_id=q.client_id,
            keepalive=q.keepalive,
            topic_prefix=q.topic_prefix,
            qos=q.qos,
            outbox=self.outbox,
            ha_discovery=q.ha_discovery,
            ha_prefix=q.ha_prefix,
            on_line_reset=self._on_line_reset,
            metrics=self.metrics,
            clock=self.clock,
        )

    def _discovery(self) -> list[CameraSpec]:
        m = self.settings.metrics
        url = debug_view_url(m.host, m.port) if m.enabled and m.port else None
        return ha_cameras(self.settings.cameras, self.class_names, url)

    @property
    def class_names(self) -> list[str]:
        """The model's class names (index = class id); read on the hot path, so never copied."""
        return self.detector.class_names if self.detector is not None else []

    # ------------------------------------------------------------------------------------------------
    # the detector's view of the cameras

    def take_frames(self, max_n: int, timeout_s: float) -> list[Frame]:
        """Up to ``max_n`` newest frames across cameras (at most one per camera), for one batch.

        Waits up to 100 ms for the first frame (so the detector thread notices a stop), then at most
        ``timeout_s`` more to fill the batch from other cameras.
        """
        cams = list(self.cameras.values())
        if not cams:
            time.sleep(0.1)
            return []
        frames: list[Frame] = []
        taken: set[str] = set()
        n = len(cams)
        idle_deadline = time.monotonic() + max(timeout_s, 0.1)
        fill_deadline: float | None = None
        while True:
            version = self.frame_notifier.version
            for i in range(n):
                rt = cams[(self._rr + i) % n]
                if rt.cfg.name in taken:
                    continue
                frame = rt.capture.poll()
                if frame is not None:
                    frames.append(frame)
                    taken.add(rt.cfg.name)
                    if len(frames) >= max_n:
                        break
            if len(frames) >= max_n or len(taken) == n:
                break
            now = time.monotonic()
            if frames:
                if fill_deadline is None:  # the batch window opens with its first frame
                    fill_deadline = now + timeout_s
                remaining = fill_deadline - now
            else:
                remaining = idle_deadline - now
            if remaining <= 0:
                break
            self.frame_notifier.wait(version, remaining)
        self._rr = (self._rr + 1) % n
        return frames

    def deliver(self, frame: Frame, dets: Detections) -> None:
        """Detector -> pipeline hand-off: blocking put, so nothing is lost and order is kept."""
        self.pipeline_queue.put((frame, dets))

    # ------------------------------------------------------------------------------------------------
    # the pipeline thread: tracker, analytics, events

    def _ensure_camera_state(self, rt: CameraRuntime, frame: Frame) -> None:
        size = (frame.width, frame.height)
        if rt.tracker is None:
            # The tracker's buffer is in frames: scale it by the rate frames really arrive at.
            frame_rate = rt.cfg.fps or rt.capture.source_fps or 30.0
            rt.tracker = build_tracker(self.settings.tracker, frame_rate, rt.cfg.name, metrics=self.metrics)
        if rt.frame_size != size:
            lines, zones = camera_specs(rt.cfg, size[0], size[1], self.class_names)
            with self._lock:
                if rt.analytics is None:
                    rt.analytics = CameraAnalytics(
                        rt.cfg.name,
                        lines,
                        zones,
                        run_id=self.run_id,
                        class_names=self.class_names,
                        metrics=self.metrics,
                    )
                    if self.store is not None:
                        rt.analytics.restore(self.store.load(rt.cfg.name))
                    self._publish_counts(rt)
                else:
                    rt.analytics.reconfigure(lines, zones)
                rt.scene = self._scene(rt.cfg, size)
            rt.frame_size = size

    def _scene(self, cam: CameraConfig, size: tuple[int, int]) -> Scene:
        lines, zones = camera_specs(cam, size[0], size[1], self.class_names)
        return Scene(
            cam.name,
            [LineGeometry(s.name, s.a, s.b, (s.labels["in"], s.labels["out"])) for s in lines],
            [ZoneGeometry(z.name, z.polygon) for z in zones],
            class_names=self.class_names,
            anchor=cam.lines[0].anchor
            if cam.lines
            else (cam.zones[0].anchor if cam.zones else "bottom_center"),
        )

    def _process(self, frame: Frame, dets: Detections) -> None:
        rt = self.cameras[frame.camera]
        self._ensure_camera_state(rt, frame)
        assert rt.tracker is not None
        assert rt.analytics is not None
        tracked = rt.tracker.update(dets)  # records edge_tracker_seconds and edge_active_tracks
        removed = rt.tracker.removed_ids()
        with self._lock:
            events = rt.analytics.update(
                tracked, removed, frame.seq, frame.captured_wall, frame.captured_mono
            )
        if events:
            self._emit(rt, events)
        self._publish_zone_state_if_changed(rt)
        if self.bus is not None:
            self.bus.publish(frame.camera, frame.seq, frame.captured_wall, tracked)
        with self._lock:  # the debug view draws trails from the HTTP thread
            rt.trails.update(
                tracked.track_id, tracked.anchors(rt.scene.anchor if rt.scene else "bottom_center")
            )
            if len(removed):
                rt.trails.remove(removed)
            rt.latest = (frame, tracked)
        now = self.clock.monotonic()
        rt.fps.tick(now)
        rt.frames_processed += 1
        self.frames_done += 1
        rt.m_processed.inc()
        rt.m_latency.observe(now - frame.captured_mono)

    def _emit(self, rt: CameraRuntime, events: list[Event]) -> None:
        publisher = self.publisher
        lines_touched = set()
        for ev in events:
            if publisher is not None:
                publisher.publish_event(ev.camera, ev.type, ev.to_json())
            if self.print_events:
                self._print_event(ev)
            line = getattr(ev, "line", None)
            if line is not None:
                lines_touched.add(line)
        if lines_touched:
            self._publish_counts(rt, lines_touched)

    def _print_event(self, ev: Event) -> None:
        where = getattr(ev, "line", None) or getattr(ev, "zone", "")
        extra = ""
        if ev.type == "line_crossing":
            extra = f"{ev.direction}({ev.label}) total in={ev.counts_all['in']} out={ev.counts_all['out']}"
        elif hasattr(ev, "occupancy_all"):
            extra = f"occupancy={ev.occupancy_all} dwell={ev.dwell_s:.1f}s"
        who = f"track={ev.track_id:<5} {ev.class_name:<8}"
        text = f"{ev.ts} {ev.camera:<12} {ev.type:<15} {where:<12} {who} {extra}"
        print(text, file=self.events_out, flush=True)

    def _line_payload(self, rt: CameraRuntime, name: str) -> dict[str, Any]:
        assert rt.analytics is not None
        counts = rt.analytics.lines[name].counts()
        names = self.class_names
        out: dict[str, Any] = {}
        for direction in ("in", "out"):
            per_class = {
                names[c] if c < len(names) else str(c): n for c, n in counts.get(direction, {}).items()
            }
            out[direction] = {**per_class, "total": sum(per_class.values())}
        return out

    def _publish_counts(self, rt: CameraRuntime, only: set[str] | None = None) -> None:
        if self.publisher is None or rt.analytics is None:
            return
        for name in rt.analytics.lines:
            if only is None or name in only:
                self.publisher.set_line_state(rt.cfg.name, name, self._line_payload(rt, name))

    def _publish_zone_state_if_changed(self, rt: CameraRuntime) -> None:
        if rt.analytics is None:
            return
        names = self.class_names
        for zone, occ in rt.analytics.occupancy().items():
            state = {names[c] if c < len(names) else str(c): n for c, n in occ.items() if n}
            if rt.last_zone_state.get(zone) != state:
                rt.last_zone_state[zone] = state
                if self.publisher is not None:
                    payload = {"occupancy": {**state, "total": sum(state.values())}}
                    self.publisher.set_zone_state(rt.cfg.name, zone, payload)

    def _on_line_reset(self, camera: str, line: str) -> None:
        """MQTT reset command (event loop thread); the lock keeps it between two frames."""
        rt = self.cameras.get(camera)
        if rt is None or rt.analytics is None or line not in rt.analytics.lines:
            log.warning("reset for unknown line camera=%s line=%s ignored", camera, line)
            return
        with self._lock:
            self._reset_line_now(rt, line)

    def _reset_line_now(self, rt: CameraRuntime, line: str) -> None:
        assert rt.analytics is not None
        rt.analytics.reset_line(line)
        log.info("counters reset camera=%s line=%s", rt.cfg.name, line)
        if self.store is not None:
            self.store.save(rt.cfg.name, rt.analytics.counts())
        self._publish_counts(rt, {line})

    def _pipeline_main(self) -> None:
        try:
            while True:
                item = self.pipeline_queue.get()
                if item is _STOP:
                    return
                frame, dets = cast("tuple[Frame, Detections]", item)
                self._process(frame, dets)
        except BaseException as exc:
            self._pipeline_failure = exc
            log.exception("pipeline thread crashed")
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._stop_requested.set)

    # ------------------------------------------------------------------------------------------------
    # debug view and health

    def camera_infos(self) -> list[CameraInfo]:
        now = self.clock.monotonic()
        infos = []
        for rt in self.cameras.values():
            rt.fps.decay(now)
            infos.append(CameraInfo(rt.cfg.name, rt.capture.state, rt.fps.value, rt.cfg.enabled))
        return infos

    def jpeg(self, camera: str) -> bytes | None:
        """The newest processed frame of ``camera``, annotated, as JPEG (HTTP thread, only while watched).

        The same frame is encoded once: asking again before a new frame is processed returns the same
        bytes object, which the MJPEG stream takes as "nothing new".
        """
        rt = self.cameras.get(camera)
        if rt is None or rt.latest is None or rt.scene is None or rt.analytics is None:
            return None
        with self._lock:  # Scene buffers are reused and analytics change under the pipeline thread
            frame, dets = rt.latest
            if rt.jpeg_cache is not None and rt.jpeg_cache[0] == frame.seq:
                return rt.jpeg_cache[1]
            counts = {name: (c.total(1), c.total(-1)) for name, c in rt.analytics.lines.items()}
            occupancy = {name: sum(o.values()) for name, o in rt.analytics.occupancy().items()}
            state = SceneState(frame.seq, rt.fps.value, line_counts=counts, zone_occupancy=occupancy)
            data = rt.scene.render_jpeg(frame.image, dets, state, rt.trails)
            rt.jpeg_cache = (frame.seq, data)
            return data

    def geometry(self, camera: str) -> dict[str, Any] | None:
        """The camera's lines and zones as configured (the debug page draws them over the stream)."""
        rt = self.cameras.get(camera)
        if rt is None:
            return None
        cfg = rt.cfg
        return {
            "normalized": cfg.coordinates == "normalized",
            "lines": [{"name": ln.name, "points": [list(p) for p in ln.points]} for ln in cfg.lines],
            "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in cfg.zones],
        }

    # ------------------------------------------------------------------------------------------------
    # lifecycle

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_stop(sig: signal.Signals) -> None:
            self._signals_seen += 1
            if self._signals_seen > 1 and sig == signal.SIGINT:
                log.warning("second SIGINT: exiting now without a graceful shutdown")
                os._exit(130)
            log.info("received %s, shutting down", sig.name)
            self._stop_requested.set()

        def on_hup() -> None:
            self._reload_requested = True
            self._stop_requested.set()  # wakes the main wait; run() tells reload from stop

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, on_hup)

    def reload(self) -> bool:
        """Re-read the config file; apply lines, zones and detector thresholds. ``False`` if rejected."""
        if self.config_path is None:
            return False
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path)
        except ConfigError as err:
            # A user error, not a crash: the usual one line per problem, no traceback.
            for line in err.lines():
                log.error("reload rejected: %s", line)  # noqa: TRY400
            log.error("reload rejected: keeping the running configuration")  # noqa: TRY400
            self.notifier.ready()
            return False
        old = self.settings
        if [c.name for c in new.cameras] != [c.name for c in old.cameras] or any(
            a.source != b.source for a, b in zip(new.cameras, old.cameras, strict=True)
        ):
            log.warning("reload: camera list or sources changed; restart edge to apply those")
        if new.tracker != old.tracker or new.model.path != old.model.path:
            log.warning("reload: tracker and model changes need a restart; lines, zones, thresholds applied")
        if self.detector is not None:
            self.detector.set_thresholds(confidence=new.model.confidence, iou=new.model.iou)
        for cam in new.cameras:
            rt = self.cameras.get(cam.name)
            if rt is None:
                continue
            rt.cfg = cam
            if rt.frame_size is not None and rt.analytics is not None:
                lines, zones = camera_specs(cam, rt.frame_size[0], rt.frame_size[1], self.class_names)
                with self._lock:
                    rt.analytics.reconfigure(lines, zones)
                    rt.scene = self._scene(cam, rt.frame_size)
                    rt.last_zone_state.clear()
                self._publish_counts(rt)
        self.settings = new
        if self.publisher is not None:
            self.publisher.declare_discovery(self._discovery())
        log.info("reload: configuration applied")
        self.notifier.ready()
        return True

    def request_stop(self) -> None:
        """Stop as SIGTERM would (graceful shutdown); call it on the event loop thread."""
        self._stop_requested.set()

    def _thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        """A bug in any stage thread: log it once, shut down, exit non-zero so systemd restarts us."""
        name = args.thread.name if args.thread is not None else "?"
        log.critical("thread %s crashed; stopping", name, exc_info=args.exc_value)
        self.exit_code = 70
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop_requested.set)

    async def run(self) -> int:
        """Start everything, run until SIGTERM/SIGINT, shut down in order; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._install_signals(loop)
        # Stage threads re-raise bugs; the process must not limp on without them (principle 7).
        previous_hook = threading.excepthook
        threading.excepthook = self._thread_crashed
        self.state_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings

        # The model first: a broken model is a clear error before any camera is opened.
        self.detector = await asyncio.to_thread(self._build_detector)
        self.store = CounterStore(self.state_dir)
        if s.mqtt.enabled:
            self.publisher = self._build_publisher()
            await self.publisher.start()
            self.publisher.declare_discovery(self._discovery())
        if s.tracks_bus.enabled:
            from edge.bus import TracksBus  # noqa: PLC0415 - zmq only when asked for

            self.bus = TracksBus(
                s.tracks_bus.endpoint, fmt=s.tracks_bus.format, hwm=s.tracks_bus.hwm, metrics=self.metrics
            )
        for cam in s.cameras:
            if cam.enabled:
                self.cameras[cam.name] = CameraRuntime(
                    cfg=cam,
                    capture=self._build_capture(cam),
                    m_processed=self.metrics.frames_processed.labels(camera=cam.name),
                    m_latency=self.metrics.latency.labels(camera=cam.name),
                )
        self.batcher = BatchingDetector(
            self.detector,
            self.take_frames,
            self.deliver,
            batch_size=s.model.batch_size,
            max_batch_wait_ms=s.model.max_batch_wait_ms,
            metrics=self.metrics,
            clock=self.clock,
            name="edge-detector",
        )
        self._pipeline_thread = threading.Thread(
            target=self._pipeline_main, name="edge-pipeline", daemon=True
        )
        self._pipeline_thread.start()
        self.batcher.start()
        if s.metrics.enabled:
            self.web = WebServer(
                s.metrics.host,
                s.metrics.port,
                registry=self.metrics.registry,
                health=lambda: health_from_cameras(self.camera_infos()),
                cameras_info=self.camera_infos,
                jpeg_source=self.jpeg,
                geometry=self.geometry,
            )
            self.web.start()
            log.info("metrics and debug view on %s", self.web.url)
        # Models are warm before cameras start, so the first frames do not queue behind the warm-up.
        await asyncio.to_thread(self.batcher.ready.wait, 120.0)
        for rt in self.cameras.values():
            rt.capture.start()
        self.watchdog = WatchdogPinger(self.notifier, lambda: self.frames_done)
        self.watchdog.start()
        self.notifier.ready(f"running {len(self.cameras)} camera(s)")
        log.info("edge running: node=%s cameras=%s run_id=%s", s.node, ",".join(self.cameras), self.run_id)

        status_task = asyncio.create_task(self._status_loop(), name="edge-status")
        try:
            while True:
                await self._stop_requested.wait()
                if self._reload_requested and self._pipeline_failure is None and self._signals_seen == 0:
                    self._reload_requested = False
                    self._stop_requested.clear()
                    await asyncio.to_thread(self.reload)
                    continue
                break
        finally:
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task
            await self._shutdown()
            threading.excepthook = previous_hook
        if self._pipeline_failure is not None or (self.batcher is not None and self.batcher.failure):
            return 70
        return self.exit_code

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            infos = self.camera_infos()
            text = ", ".join(f"{c.name} {c.state} {c.fps:.1f}fps" for c in infos)
            self.notifier.status(text)
            if self.batcher is not None and self.batcher.failure is not None:
                log.error("detector thread failed; stopping")
                self._stop_requested.set()
            if self.store is not None:
                for rt in self.cameras.values():
                    if rt.analytics is not None:
                        with self._lock:
                            counts = rt.analytics.counts()
                        self.store.maybe_save(rt.cfg.name, counts)

    async def _shutdown(self) -> None:
        """Stop capture, drain in-flight frames, save counters, flush the outbox, go offline."""
        budget = self.settings.shutdown_timeout
        deadline = self.clock.monotonic() + budget
        self.notifier.stopping()
        if self.watchdog is not None:
            self.watchdog.stop()

        def left() -> float:
            return max(0.1, deadline - self.clock.monotonic())

        await asyncio.gather(
            *(asyncio.to_thread(rt.capture.stop, min(5.0, left())) for rt in self.cameras.values())
        )
        # Frames already taken by the detector finish; the slots are empty once capture stopped.
        if self.batcher is not None:
            await asyncio.to_thread(self.batcher.stop, min(10.0, left()))
        if self._pipeline_thread is not None and self._pipeline_thread.is_alive():
            await asyncio.to_thread(self.pipeline_queue.put, _STOP)
            await asyncio.to_thread(self._pipeline_thread.join, min(10.0, left()))
        if self.store is not None:
            for rt in self.cameras.values():
                if rt.analytics is not None:
                    self.store.save(rt.cfg.name, rt.analytics.counts())
        if self.bus is not None:
            self.bus.close()
        if self.publisher is not None:
            try:
                await self.publisher.stop(flush_timeout=max(0.5, left() - 2.0))
            except Exception:
                log.exception("MQTT shutdown failed")
        if self.outbox is not None:
            self.outbox.close()
        if self.web is not None:
            self.web.stop()
        log.info("edge stopped")


def run_daemon(
    config_path: Path,
    *,
    print_events: bool = False,
    on_started: Callable[[App], None] | None = None,
) -> int:
    """``edge run``: load the config (exit 78 on errors), run until stopped."""
    settings = load_settings(config_path)
    from edge.logs import setup_logging  # noqa: PLC0415

    secrets = [settings.mqtt.password.get_secret_value()] if settings.mqtt.password else []
    setup_logging(settings.logging.level, json_lines=settings.logging.json_lines, secrets=secrets)
    app = App(settings, config_path, print_events=print_events)
    if on_started is not None:
        on_started(app)
    return asyncio.run(app.run())
