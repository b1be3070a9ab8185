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
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from edge.cameras import CameraSet
from edge.capture import CaptureLauncher, FrameNotifier
from edge.clock import Clock, SystemClock
from edge.config import Settings, load_settings
from edge.early_signals import EarlySignals
from edge.errors import EdgeError
from edge.events import new_run_id
from edge.events.store import CounterStore, OutboxCounterStore
from edge.lifecycle import (
    KernelWarmup,
    LoopSignals,
    StartupError,
    StopBudget,
    WarmupGuard,
    cancel,
)
from edge.metrics import Metrics
from edge.pipeline import CameraPipeline, Sink, config_geometry
from edge.runner import PipelineRunner
from edge.sinks import BusSink, FanOut, PrintSink, PublisherSink
from edge.state import check_state_dir
from edge.systemd import Notifier, WatchdogPinger
from edge.view import DebugView
from edge.wiring import (
    build_batcher,
    build_capture,
    build_model,
    build_outbox,
    build_pipeline,
    build_publisher,
    build_snapshots,
    build_web,
    discovery_specs,
    reread_settings,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edge.capture import Capture
    from edge.config import CameraConfig
    from edge.detector import BatchingDetector, Detector
    from edge.outbox import Outbox
    from edge.publisher import Publisher
    from edge.snapshots import SnapshotEncoder
    from edge.web import WebServer

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
        self.frame_notifier = FrameNotifier()
        self.camera_set = CameraSet(self.frame_notifier)
        self.captures: dict[str, Capture] = {}
        # One fork server for every camera's capture process: starting each from a fresh interpreter
        # took 1.7-3.7 s on a loaded 2-core box, a fork takes milliseconds.
        self.capture_launcher = CaptureLauncher()
        self.pipelines: dict[str, CameraPipeline] = {}
        self.view = DebugView(self.clock, self.pipelines, self.captures, lambda: self.settings.cameras)
        self.runner: PipelineRunner | None = None
        self.batcher: BatchingDetector | None = None
        self.publisher: Publisher | None = None
        self.outbox: Outbox | None = None
        self.snapshots: SnapshotEncoder | None = None
        self.web: WebServer | None = None
        self._wake = asyncio.Event()
        self._signals = LoopSignals(self._wake, early_signals or EarlySignals())
        self._budget = StopBudget(self.clock, settings.shutdown_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warmup: WarmupGuard | None = None
        self._kernels: KernelWarmup | None = None
        self._stop_requested = False
        self.exit_code = 0

    @property
    def frames_done(self) -> int:
        """Frames fully processed (the watchdog's progress)."""
        return self.runner.frames_done if self.runner is not None else 0

    @property
    def class_names(self) -> list[str]:
        """The model's class names (index = class id)."""
        return self.detector.class_names if self.detector is not None else []

    # ---- phases -------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Start everything, serve until SIGTERM/SIGINT, shut down in order; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._signals.install(loop)
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
                self._budget.start()
        finally:
            threading.excepthook = previous_hook
            self._signals.remove(loop)
        log.info("edge stopped")
        crashed = any(part is not None and part.failure is not None for part in (self.runner, self.batcher))
        return self.exit_code or (70 if crashed else 0)

    async def _startup(self, stack: contextlib.AsyncExitStack) -> bool:
        """Start every part, registering its stop; ``False`` when a stop or a failure came first."""
        s, budget = self.settings, self._budget
        check_state_dir(self.state_dir)  # a StateDirError (exit 73) names the path
        if s.metrics.enabled:  # first: a taken port fails in milliseconds, before the model loads
            web = self.web = build_web(s, self.view, metrics=self.metrics, event_snapshot=self._snapshot)
            try:
                web.start()
            except OSError as exc:
                where = f"{s.metrics.host}:{s.metrics.port}"
                raise StartupError(f"metrics: cannot listen on {where}: {exc.strerror}") from None
            stack.push_async_callback(budget.in_thread, web.stop, 5.0)
            log.info("metrics and debug view on %s", web.url)
        # The Numba kernels compile while the model loads and warms up, before READY=1 (see KernelWarmup).
        self._kernels = KernelWarmup()
        self._kernels.start()
        if self.detector is None and not self._wake.is_set():  # a broken model fails before cameras open
            self.detector = await asyncio.to_thread(build_model, s, self.config_path, metrics=self.metrics)
        if self._wake.is_set():
            return False
        sinks = [*self._sinks, *await self._start_outputs(stack)]
        # With MQTT, counts commit in the outbox transaction of the events that changed them (issue 15).
        store = (
            OutboxCounterStore(self.outbox, self.state_dir)
            if self.outbox is not None
            else CounterStore(self.state_dir)
        )
        for cam in (c for c in s.cameras if c.enabled):
            capture = self._sources(cam) if self._sources is not None else self._capture(cam)
            self.captures[cam.name] = capture
            self.camera_set.add(cam.name, capture)
            self.pipelines[cam.name] = build_pipeline(
                cam,
                capture,
                s,
                class_names=self.class_names,
                run_id=self.run_id,
                sink=FanOut(sinks),
                store=store,
                metrics=self.metrics,
            )
        capacity = max(2, 2 * s.model.batch_size)
        runner = self.runner = PipelineRunner(
            self.pipelines,
            capacity=capacity,
            metrics=self.metrics,
            clock=self.clock,
            on_failure=self._stop_soon,
        )
        runner.start()
        stack.push_async_callback(budget.in_thread, runner.stop, 10.0)
        assert self.detector is not None
        self._warmup = WarmupGuard(self.detector)
        batcher = self.batcher = build_batcher(
            self._warmup,
            self.camera_set.take,
            runner.deliver,
            s,
            metrics=self.metrics,
            clock=self.clock,
            on_status=self._warmup_status,
        )
        batcher.start()
        stack.push_async_callback(budget.in_thread, batcher.stop, 10.0)
        # The capture launcher starts while the model warms up, so no camera waits for it later.
        await asyncio.to_thread(self.capture_launcher.start)
        stack.push_async_callback(asyncio.to_thread, self.capture_launcher.close)
        # Models are warm before cameras start, so the first frames do not queue behind the warm-up.
        if not await self._detector_ready():
            return False
        for capture in self.captures.values():
            capture.start()
        stack.push_async_callback(self._stop_captures)
        watchdog = WatchdogPinger(self.notifier, lambda: self.frames_done)
        watchdog.start()
        stack.push_async_callback(budget.in_thread, watchdog.stop, 5.0)
        stack.push_async_callback(cancel, asyncio.create_task(self._status_loop(), name="edge-status"))
        self.notifier.ready(f"running {len(self.captures)} camera(s)")
        cams = ",".join(self.captures)
        log.info("edge running: node=%s cameras=%s run_id=%s", s.node, cams, self.run_id)
        return True

    async def _start_outputs(self, stack: contextlib.AsyncExitStack) -> list[Sink]:
        """MQTT (outbox, publisher), the tracks bus and event snapshots; returns their sinks."""
        s, sinks = self.settings, list[Sink]()
        if s.mqtt.enabled:
            outbox = self.outbox = build_outbox(s, metrics=self.metrics, clock=self.clock)
            stack.callback(outbox.close)
            if self.web is not None:  # a full disk shows in /healthz as "degraded" (issue 15)
                self.web.degraded = outbox.problems
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
            stack.push_async_callback(self._budget.in_thread, self.snapshots.stop, 2.0)
            sinks.append(snapshot_sink)
        return sinks

    def _warmup_status(self, line: str) -> None:
        """Detector thread, before each warm-up batch size: a TensorRT engine build takes minutes, so
        systemd is told to wait (EXTEND_TIMEOUT_USEC) and shown what is happening (STATUS=)."""
        self.notifier.extend_timeout(900.0)
        self.notifier.status(line)

    async def _detector_ready(self) -> bool:
        """Wait for the model's and the kernels' warm-up to finish, a stop, or the detector thread or
        the kernel compilation to fail, whichever comes first."""
        batcher, guard, kernels = self.batcher, self._warmup, self._kernels
        assert batcher is not None
        assert guard is not None
        assert kernels is not None
        while not self._wake.is_set():
            if guard.failure is not None:  # logged as one line by the guard
                self.exit_code = guard.failure.exit_code
                return False
            if kernels.failure is not None:
                self.exit_code = 70  # a bug: KernelWarmup logged it
                return False
            if batcher.ready.is_set() and kernels.done.is_set():
                return True
            if batcher.failure is not None or not batcher.is_alive():
                self.exit_code = 70  # a bug: the detector thread logged it
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.05)
        return False

    async def _serve(self) -> None:
        while True:
            if self._signals.stops or self.exit_code or self._stop_requested:
                return
            if self._signals.reload:
                self._signals.reload = False
                await asyncio.to_thread(self.reload)
                continue  # signals that came during the reload are looked at first
            self._wake.clear()  # nothing pending (no await since the checks: no callback ran between)
            await self._wake.wait()

    async def _stop_captures(self) -> None:
        budget = self._budget.left(5.0)
        await asyncio.gather(*(asyncio.to_thread(c.stop, budget) for c in self.captures.values()))

    async def _stop_publisher(self) -> None:
        if self.publisher is None:
            return
        try:
            await self.publisher.stop(flush_timeout=max(0.5, self._budget.left(30.0) - 2.0))
        except Exception:
            log.exception("MQTT shutdown failed")

    # ---- building and callbacks from other threads ---------------------------------------------------

    def _capture(self, cam: CameraConfig) -> Capture:
        return build_capture(
            cam,
            clock=self.clock,
            metrics=self.metrics,
            notifier=self.frame_notifier,
            on_state=self._on_camera_state,
            launcher=self.capture_launcher,
        )

    def _snapshot(self, camera: str) -> bytes | None:
        return self.snapshots.latest(camera) if self.snapshots is not None else None

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
        self.runner.call(functools.partial(pipeline.reset_line, line))

    # ---- reload, stop, failures -----------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file (worker thread); lines, zones and thresholds apply between frames.

        Returns ``False`` when the new file is rejected (the running configuration stays).
        """
        if self.config_path is None:
            return False
        self.notifier.reloading()
        new = reread_settings(self.config_path, self.settings)  # logs each problem as one line
        if new is not None:
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
        return new is not None

    def request_stop(self) -> None:
        """Stop as SIGTERM would (graceful shutdown); call it on the event loop thread."""
        self._stop_requested = True
        self._wake.set()

    def _stop_soon(self) -> None:
        """From any thread: stop the daemon (a stage failed)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self.request_stop)

    def _thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        """A bug in any stage thread: log it once, shut down, exit non-zero so systemd restarts us."""
        batcher = self.batcher
        if not (batcher is not None and args.exc_value is batcher.failure):  # that one logged itself
            name = args.thread.name if args.thread is not None else "?"
            log.critical("thread %s crashed; stopping", name, exc_info=args.exc_value)
        self.exit_code = 70
        self._stop_soon()

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            infos = self.view.camera_infos()
            self.notifier.status(", ".join(f"{c.name} {c.state} {c.fps:.1f}fps" for c in infos))


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
