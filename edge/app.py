"""The composition root: builds every stage from :class:`~edge.config.Settings` and runs them in phases.

Data flow and hand-offs (principle 1: each says what it drops, and every drop is counted)::

    capture thread per camera --latest-frame slot (drops superseded frames)--> CameraSet
    detector thread (takes from the CameraSet) --bounded queue, blocking put (lossless)--> pipeline thread
    pipeline thread (CameraPipeline per camera) --durable outbox--> MQTT thread

Phases, as uvicorn runs them: **startup** starts each part and pushes its stop onto an exit stack, then
waits for the detector to be ready *or* a stop *or* a detector failure; **serve** waits for a signal;
**shutdown** unwinds the stack in reverse order within ``shutdown_timeout``. An expected startup failure
(port taken, bad model, unusable state directory) is one log line and a defined exit code; only bugs
give a traceback. The asyncio loop only orchestrates: anything blocking runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from edge.cameras import CameraSet
from edge.capture import FrameNotifier
from edge.clock import Clock, SystemClock
from edge.config import Settings, load_settings, resolve_model_path
from edge.draw import TrailBuffer
from edge.errors import ConfigError, EdgeError
from edge.events import new_run_id
from edge.events.store import CounterStore
from edge.lifecycle import EX_CANTCREAT, EarlySignals, StartupError, WarmupGuard
from edge.metrics import Metrics
from edge.pipeline import CameraPipeline, Sink, config_geometry
from edge.runner import PipelineRunner
from edge.sinks import BusSink, FanOut, PrintSink, PublisherSink
from edge.systemd import Notifier, WatchdogPinger
from edge.tools.specs import build_detector
from edge.web import CameraInfo, WebServer, health_from_cameras
from edge.wiring import build_capture, build_outbox, build_publisher, build_snapshots, discovery_specs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edge.capture import Capture
    from edge.config import CameraConfig
    from edge.detector import BatchingDetector, Detector
    from edge.publisher import Publisher
    from edge.snapshots import SnapshotEncoder

log = logging.getLogger(__name__)


class App:
    """The daemon. Build it with settings, then ``await run()`` until a signal stops it.

    Args:
        settings: the validated configuration.
        config_path: the file it came from, re-read on SIGHUP.
        clock: injected clocks (a fake in tests).
        print_events: also print one line per event to ``events_out`` (default ``stdout``; the demo does).
        notifier: systemd notifier; default reads ``$NOTIFY_SOCKET``.
        metrics: the metric registry (the pipeline benchmark passes a recording one).
        detector: a ready-made model instead of the configured one (tests feed recorded detections).
        sources: builds each camera's frame source instead of a :class:`~edge.capture.Capture` (tests).
        sinks: more places every camera's output goes, besides MQTT, the tracks bus and the printer.
        run_id: this run's id (default: a new random one).
        early_signals: signals received before the loop ran (``edge run`` installs them first thing).
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
        detector: Detector | None = None,
        sources: Callable[[CameraConfig], Capture] | None = None,
        sinks: Sequence[Sink] = (),
        run_id: str | None = None,
        early_signals: EarlySignals | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.notifier = notifier if notifier is not None else Notifier()
        self.metrics = metrics if metrics is not None else Metrics()
        self.run_id = run_id if run_id is not None else new_run_id()
        self.state_dir = Path(settings.state_dir)
        self.detector = detector
        self._sources = sources
        self._sinks: list[Sink] = list(sinks)
        if print_events:
            self._sinks.append(PrintSink(events_out if events_out is not None else sys.stdout))
        self._early = early_signals if early_signals is not None else EarlySignals()
        self.frame_notifier = FrameNotifier()
        self.camera_set = CameraSet(self.frame_notifier)
        self.captures: dict[str, Capture] = {}
        self.pipelines: dict[str, CameraPipeline] = {}
        self.runner: PipelineRunner | None = None
        self.batcher: BatchingDetector | None = None
        self.publisher: Publisher | None = None
        self.snapshots: SnapshotEncoder | None = None
        self.web: WebServer | None = None
        self._render_locks: dict[str, threading.Lock] = {}
        self._jpeg_cache: dict[str, tuple[object, bytes]] = {}
        self._stop_requested = asyncio.Event()
        self._reload_requested = False
        self._stop_signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: float | None = None
        self._warmup: WarmupGuard | None = None
        self.exit_code = 0

    @property
    def frames_done(self) -> int:
        """Frames fully processed (the watchdog's progress)."""
        return self.runner.frames_done if self.runner is not None else 0

    @property
    def class_names(self) -> list[str]:
        """The model's class names (index = class id); read on the hot path, so never copied."""
        return self.detector.class_names if self.detector is not None else []

    # ------------------------------------------------------------------------------------------------
    # phases

    async def run(self) -> int:
        """Start everything, serve until SIGTERM/SIGINT, shut down in order; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._install_signals(loop)
        previous_hook = threading.excepthook
        # Stage threads re-raise bugs; the process must not limp on without them (principle 7).
        threading.excepthook = self._thread_crashed
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    started = await self._startup(stack)
                except EdgeError as err:  # expected: one line, a defined exit code, no traceback
                    log.error("%s", err)  # noqa: TRY400
                    self.exit_code = err.exit_code
                    started = False
                if started:
                    await self._serve()
                self.notifier.stopping()
                self._deadline = self.clock.monotonic() + self.settings.shutdown_timeout
        finally:
            threading.excepthook = previous_hook
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("edge stopped")
        return self._final_exit_code()

    async def _startup(self, stack: contextlib.AsyncExitStack) -> bool:
        """Start every part, registering its stop; ``False`` when a stop or a failure came first."""
        s = self.settings
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"state_dir {self.state_dir}: {exc.strerror}", EX_CANTCREAT) from None
        if s.metrics.enabled:  # first: a taken port fails in milliseconds, before the model loads
            self.web = self._web()
            try:
                self.web.start()
            except OSError as exc:
                where = f"{s.metrics.host}:{s.metrics.port}"
                raise StartupError(f"metrics: cannot listen on {where}: {exc.strerror}") from None
            stack.push_async_callback(self._in_thread, self._stop_web, 5.0)
            log.info("metrics and debug view on %s", self.web.url)
        if self._stop_requested.is_set():
            return False
        if self.detector is None:  # the model next: a broken one is a clear error before cameras open
            self.detector = await asyncio.to_thread(self._build_detector)
        if self._stop_requested.is_set():
            return False
        store = CounterStore(self.state_dir)
        sinks = list(self._sinks)
        if s.mqtt.enabled:
            outbox = build_outbox(s, metrics=self.metrics, clock=self.clock)
            stack.callback(outbox.close)
            self.publisher = build_publisher(
                s, outbox, on_line_reset=self._on_line_reset, metrics=self.metrics, clock=self.clock
            )
            await self.publisher.start()
            stack.push_async_callback(self._stop_publisher)
            self.publisher.declare_discovery(discovery_specs(s, self.class_names))
            sinks.append(PublisherSink(self.publisher))
        if s.tracks_bus.enabled:
            from edge.bus import TracksBus  # noqa: PLC0415 - zmq only when asked for

            t = s.tracks_bus
            bus = TracksBus(t.endpoint, fmt=t.format, hwm=t.hwm, metrics=self.metrics)
            stack.callback(bus.close)
            sinks.append(BusSink(bus))
        snapshots = build_snapshots(s, self.publisher, metrics=self.metrics, clock=self.clock)
        if snapshots is not None:  # stops after the pipeline thread and before the publisher
            self.snapshots, snapshot_sink = snapshots
            self.snapshots.start()
            stack.push_async_callback(self._in_thread, self.snapshots.stop, 2.0)
            sinks.append(snapshot_sink)
        self._build_cameras(FanOut(sinks), store)
        self.runner = PipelineRunner(
            self.pipelines,
            capacity=max(2, 2 * s.model.batch_size),
            metrics=self.metrics,
            clock=self.clock,
            on_failure=self._stop_from_thread,
        )
        self.runner.start()
        stack.push_async_callback(self._in_thread, self.runner.stop, 10.0)
        self.batcher = self._batcher()
        self.batcher.start()
        stack.push_async_callback(self._in_thread, self.batcher.stop, 10.0)
        # Models are warm before cameras start, so the first frames do not queue behind the warm-up.
        if not await self._detector_ready():
            return False
        for capture in self.captures.values():
            capture.start()
        stack.push_async_callback(self._stop_captures)
        watchdog = WatchdogPinger(self.notifier, lambda: self.frames_done)
        watchdog.start()
        stack.push_async_callback(self._in_thread, watchdog.stop, 5.0)
        status = asyncio.create_task(self._status_loop(), name="edge-status")
        stack.push_async_callback(_cancel, status)
        self.notifier.ready(f"running {len(self.captures)} camera(s)")
        cams = ",".join(self.captures)
        log.info("edge running: node=%s cameras=%s run_id=%s", s.node, cams, self.run_id)
        return True

    async def _detector_ready(self) -> bool:
        """Wait for warm-up to finish, a stop, or the detector thread to fail, whichever comes first."""
        batcher, guard = self.batcher, self._warmup
        assert batcher is not None
        assert guard is not None
        while True:
            if guard.failure is not None:  # logged as one line by the guard
                self.exit_code = guard.failure.exit_code
                return False
            if batcher.ready.is_set():
                break
            if batcher.failure is not None or not batcher.is_alive():
                failure = batcher.failure  # already logged, once, by the detector thread
                self.exit_code = failure.exit_code if isinstance(failure, EdgeError) else 70
                return False
            if self._stop_requested.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), 0.05)
        return not self._stop_requested.is_set()

    async def _serve(self) -> None:
        if self._early.reload:
            self._reload_requested = True
            self._stop_requested.set()
        while True:
            await self._stop_requested.wait()
            if not self._reload_requested or self._stop_signals or self.exit_code:
                return
            self._reload_requested = False
            self._stop_requested.clear()
            await asyncio.to_thread(self.reload)

    def _left(self, cap: float) -> float:
        """Seconds a shutdown step may take: at most ``cap``, and what is left of the stop budget."""
        if self._deadline is None:
            self._deadline = self.clock.monotonic() + self.settings.shutdown_timeout
        return max(0.1, min(cap, self._deadline - self.clock.monotonic()))

    async def _in_thread(self, stop: Callable[[float], object], cap: float) -> None:
        await asyncio.to_thread(stop, self._left(cap))

    def _stop_web(self, timeout_s: float) -> None:
        if self.web is not None:
            self.web.stop(timeout_s)

    async def _stop_captures(self) -> None:
        budget = self._left(5.0)
        await asyncio.gather(*(asyncio.to_thread(c.stop, budget) for c in self.captures.values()))

    async def _stop_publisher(self) -> None:
        if self.publisher is None:
            return
        try:
            await self.publisher.stop(flush_timeout=max(0.5, self._left(30.0) - 2.0))
        except Exception:
            log.exception("MQTT shutdown failed")

    def _final_exit_code(self) -> int:
        if self.runner is not None and self.runner.failure is not None:
            return 70
        if self.batcher is not None and self.batcher.failure is not None and not self.exit_code:
            return 70
        return self.exit_code

    # ------------------------------------------------------------------------------------------------
    # building

    def _build_detector(self) -> Detector:
        config_dir = self.config_path.parent if self.config_path else None
        path = resolve_model_path(self.settings.model.path, config_dir)
        return build_detector(
            self.settings.model,
            path,
            metrics=self.metrics,
            trt_cache_dir=self.state_dir / "tensorrt",
            openvino_cache_dir=self.state_dir / "openvino",
            config_dir=config_dir,
        )

    def _build_cameras(self, sink: Sink, store: CounterStore) -> None:
        for cam in self.settings.cameras:
            if not cam.enabled:
                continue
            if self._sources is not None:
                capture = self._sources(cam)
            else:
                capture = build_capture(
                    cam,
                    clock=self.clock,
                    metrics=self.metrics,
                    notifier=self.frame_notifier,
                    on_state=self._on_camera_state,
                )
            self.captures[cam.name] = capture
            self.camera_set.add(cam.name, capture)
            self.pipelines[cam.name] = CameraPipeline(
                cam.name,
                config_geometry(cam, self.class_names),
                tracker=self.settings.tracker,
                class_names=self.class_names,
                run_id=self.run_id,
                sink=sink,
                store=store,
                metrics=self.metrics,
                # The tracker's buffer is in frames: scale it by the rate frames really arrive at.
                frame_rate=_frame_rate(cam, capture),
                trails=TrailBuffer(),
            )
            self._render_locks[cam.name] = threading.Lock()

    def _batcher(self) -> BatchingDetector:
        from edge.detector import BatchingDetector  # noqa: PLC0415 - loads onnxruntime

        assert self.detector is not None
        assert self.runner is not None
        m = self.settings.model
        self._warmup = WarmupGuard(self.detector)
        return BatchingDetector(
            cast("Detector", self._warmup),
            self.camera_set.take,
            self.runner.deliver,
            batch_size=m.batch_size,
            max_batch_wait_ms=m.max_batch_wait_ms,
            metrics=self.metrics,
            clock=self.clock,
            name="edge-detector",
        )

    def _web(self) -> WebServer:
        m = self.settings.metrics
        return WebServer(
            m.host,
            m.port,
            registry=self.metrics.registry,
            health=lambda: health_from_cameras(self.camera_infos()),
            cameras_info=self.camera_infos,
            jpeg_source=self.jpeg,
            geometry=self.geometry,
            event_snapshot=lambda camera: self.snapshots.latest(camera) if self.snapshots else None,
        )

    # ------------------------------------------------------------------------------------------------
    # callbacks from other threads

    def _on_camera_state(self, camera: str, state: str) -> None:
        """Capture thread: a camera's health changed; the publisher is told on the loop."""
        loop, publisher = self._loop, self.publisher
        if loop is not None and publisher is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(publisher.set_camera_status, camera, state)

    def _on_line_reset(self, camera: str, line: str) -> None:
        """MQTT reset command (loop thread): applied on the pipeline thread between two frames."""
        pipeline = self.pipelines.get(camera)
        if pipeline is None or self.runner is None:
            log.warning("reset for unknown line camera=%s line=%s ignored", camera, line)
            return

        def reset() -> None:
            pipeline.reset_line(line)  # warns itself about a line it does not have

        self.runner.call(reset)

    def camera_infos(self) -> list[CameraInfo]:
        now = self.clock.monotonic()
        return [
            CameraInfo(name, capture.state, self.pipelines[name].fps.current(now), True)
            for name, capture in self.captures.items()
        ]

    def jpeg(self, camera: str) -> bytes | None:
        """The newest processed frame of ``camera``, annotated, as JPEG (HTTP thread, only while watched).

        Drawn from the pipeline's snapshot, under a lock of the view alone (the pipeline never waits for
        an encode). The same snapshot is encoded once: asking again before a new one returns the same
        bytes object, which the MJPEG stream takes as "nothing new".
        """
        pipeline = self.pipelines.get(camera)
        if pipeline is None:
            return None
        pipeline.request_view(self.clock.monotonic())
        snap = pipeline.view()
        if snap is None:
            return None
        with self._render_locks[camera]:  # Scene buffers are reused between renders
            cached = self._jpeg_cache.get(camera)
            if cached is not None and cached[0] is snap:
                return cached[1]
            data = snap.scene.render_jpeg(snap.image, snap.tracked, snap.state, snap.trails)
            self._jpeg_cache[camera] = (snap, data)
            return data

    def geometry(self, camera: str) -> dict[str, Any] | None:
        """The camera's lines and zones as configured (the debug page draws them over the stream)."""
        cfg = next((c for c in self.settings.cameras if c.name == camera), None)
        if cfg is None:
            return None
        return {
            "normalized": cfg.coordinates == "normalized",
            "lines": [{"name": ln.name, "points": [list(p) for p in ln.points]} for ln in cfg.lines],
            "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in cfg.zones],
        }

    # ------------------------------------------------------------------------------------------------
    # signals, reload, failures

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_stop(sig: signal.Signals) -> None:
            self._stop_signals += 1
            if self._stop_signals > 1 and sig == signal.SIGINT:
                log.warning("second SIGINT: exiting now without a graceful shutdown")
                os._exit(130)
            log.info("received %s, shutting down", sig.name)
            self._stop_requested.set()

        def on_hup() -> None:
            self._reload_requested = True
            self._stop_requested.set()  # wakes the serve wait; it tells reload from stop

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        if self._early.stop is not None:
            on_stop(self._early.stop)

    def reload(self) -> bool:
        """Re-read the config file (worker thread); lines, zones and thresholds apply between frames.

        Returns ``False`` when the new file is rejected (the running configuration stays).
        """
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
            pipeline = self.pipelines.get(cam.name)
            if pipeline is not None and self.runner is not None:
                geometry = config_geometry(cam, self.class_names)
                self.runner.call(functools.partial(pipeline.reconfigure, geometry))
        self.settings = new
        if self.publisher is not None and self._loop is not None:
            specs = discovery_specs(new, self.class_names)
            self._loop.call_soon_threadsafe(self.publisher.declare_discovery, specs)
        log.info("reload: configuration applied")
        self.notifier.ready()
        return True

    def request_stop(self) -> None:
        """Stop as SIGTERM would (graceful shutdown); call it on the event loop thread."""
        self._stop_requested.set()

    def _stop_from_thread(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._stop_requested.set)

    def _thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        """A bug in any stage thread: log it once, shut down, exit non-zero so systemd restarts us."""
        batcher = self.batcher
        if not (batcher is not None and args.exc_value is batcher.failure):  # that one logged itself
            name = args.thread.name if args.thread is not None else "?"
            log.critical("thread %s crashed; stopping", name, exc_info=args.exc_value)
        self.exit_code = 70
        self._stop_from_thread()

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            infos = self.camera_infos()
            self.notifier.status(", ".join(f"{c.name} {c.state} {c.fps:.1f}fps" for c in infos))
            if self.batcher is not None and self.batcher.failure is not None:
                log.error("detector thread failed; stopping")
                self.exit_code = self.exit_code or 70
                self._stop_requested.set()


def _frame_rate(cam: CameraConfig, capture: Capture) -> Callable[[], float]:
    """The rate a camera's frames arrive at, asked at its first frame (the source's rate is known then)."""
    return lambda: cam.fps or capture.source_fps or 30.0


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_daemon(
    config_path: Path,
    *,
    print_events: bool = False,
    on_started: Callable[[App], None] | None = None,
    early_signals: EarlySignals | None = None,
) -> int:
    """``edge run``: load the config (exit 78 on errors), run until stopped."""
    settings = load_settings(config_path)
    from edge.logs import setup_logging  # noqa: PLC0415

    secrets = [settings.mqtt.password.get_secret_value()] if settings.mqtt.password else []
    setup_logging(settings.logging.level, json_lines=settings.logging.json_lines, secrets=secrets)
    app = App(settings, config_path, print_events=print_events, early_signals=early_signals)
    if on_started is not None:
        on_started(app)
    return asyncio.run(app.run())
