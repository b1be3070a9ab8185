"""The daemon's pipeline thread: detector results in, one :class:`~edge.pipeline.CameraPipeline` step each.

Hand-off (principle 1): the detector thread puts ``(frame, detections)`` into a bounded queue and blocks
while it is full (lossless, in order: the latest-frame slots upstream are where frames are dropped). The
only drops here happen when the pipeline thread is stopping or gone; they are counted in
``edge_queue_dropped{queue="pipeline",reason="stopped"}``.

Changes from other threads (a reload, an MQTT reset) are queued as commands and run on the pipeline
thread between two frames, so the pipelines need no lock.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from edge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from edge.metrics import Metrics
    from edge.pipeline import CameraPipeline
    from edge.types import Detections, Frame

log = logging.getLogger(__name__)


class PipelineRunner:
    """Runs every camera's pipeline on one named thread.

    Args:
        pipelines: camera name -> its pipeline; frames of other cameras are a bug.
        capacity: queued frames at most. More absorbs longer tracker/analytics hiccups; fewer bounds the
            latency a backlog can add (the detector waits instead).
        metrics: frames processed and capture -> publish latency per camera, drops by reason.
        clock: monotonic clock for the latency.
        on_failure: called (on the pipeline thread) after a crash was logged, to stop the daemon.
        idle_s: how often an idle thread looks for commands and for a stop. Shorter applies a reset on an
            idle camera sooner; longer wakes the thread less.
        put_timeout_s: how long a full queue blocks the detector before it checks whether this thread is
            still there (then waits again: lossless).
    """

    def __init__(
        self,
        pipelines: Mapping[str, CameraPipeline],
        *,
        capacity: int = 8,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        on_failure: Callable[[], None] | None = None,
        idle_s: float = 0.1,
        put_timeout_s: float = 0.5,
        name: str = "edge-pipeline",
    ) -> None:
        self.pipelines = pipelines
        self._queue: queue.Queue[tuple[Frame, Detections]] = queue.Queue(maxsize=max(1, capacity))
        self._commands: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        self._on_failure = on_failure
        self._idle_s = idle_s
        self._put_timeout_s = put_timeout_s
        self._stopping = threading.Event()
        self._abandoned = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.frames_done = 0
        """Frames fully processed; the watchdog's progress counter."""
        self.failure: BaseException | None = None
        self._children = (
            {
                cam: (metrics.frames_processed.labels(camera=cam), metrics.latency.labels(camera=cam))
                for cam in pipelines
            }
            if metrics is not None
            else {}
        )

    def start(self) -> None:
        self._thread.start()

    def deliver(self, frame: Frame, dets: Detections) -> None:
        """Detector -> pipeline (detector thread): blocks while full; drops only once stopping or gone."""
        while True:
            try:
                self._queue.put((frame, dets), timeout=self._put_timeout_s)
            except queue.Full:
                if self._stopping.is_set() or not self._thread.is_alive():
                    if self._metrics is not None:
                        self._metrics.queue_dropped.labels(queue="pipeline", reason="stopped").inc()
                    return
                continue
            return

    def call(self, command: Callable[[], object]) -> None:
        """Run ``command`` on the pipeline thread between two frames (from any thread)."""
        self._commands.put(command)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Process what is queued, save counters, end the thread; ``True`` if it ended within ``timeout_s``.

        Call it after the detector stopped delivering. When the thread never started, the counters are
        saved on the calling thread. A thread that does not end in time is abandoned: it stops before
        its next frame, so nothing it does can reach parts closed after this returns.
        """
        self._stopping.set()
        if not self._thread.is_alive():
            if self._thread.ident is None:
                self._close_pipelines()
            return True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._abandoned = True
            log.warning("pipeline thread did not finish within %.1f s; leaving it behind", timeout_s)
            return False
        return True

    def _main(self) -> None:
        try:
            while not self._abandoned:
                self._run_commands()
                try:
                    frame, dets = self._queue.get(timeout=self._idle_s)
                except queue.Empty:
                    if self._stopping.is_set():
                        break
                    continue
                self._process(frame, dets)
            if not self._abandoned:
                self._run_commands()
                self._close_pipelines()
        except BaseException as exc:
            self.failure = exc
            log.critical("pipeline thread crashed; stopping", exc_info=exc)
            if self._on_failure is not None:
                self._on_failure()

    def _process(self, frame: Frame, dets: Detections) -> None:
        pipeline = self.pipelines[frame.camera]
        pipeline.step(
            dets,
            frame_no=frame.seq,
            ts_wall=frame.captured_wall,
            ts_mono=frame.captured_mono,
            size=(frame.width, frame.height),
            image=frame.image,
        )
        self.frames_done += 1
        children = self._children.get(frame.camera)
        if children is not None:
            processed, latency = children
            processed.inc()
            latency.observe(self._clock.monotonic() - frame.captured_mono)

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _close_pipelines(self) -> None:
        for pipeline in self.pipelines.values():
            pipeline.close()
