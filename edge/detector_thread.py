"""The detector thread: gathers frames from all cameras, runs them as batches, hands every camera its results.

With ``overlap=True`` (the default) the work is split over three named threads joined by bounded FIFO
hand-offs, so the model is never idle waiting for the host::

    <name>         take frames, letterbox batch N+1 into a free buffer   --run queue (1)-->
    <name>-run     backend.run(batch N); frees its buffer at once        --decode queue (2)-->
    <name>-decode  decode + NMS of batch N-1, deliver() each frame, in order

ONNX Runtime's ``run`` and the Numba letterbox/decode kernels release the GIL, so the three really run at
the same time. Two letterbox buffers circulate: one is being run while the other is filled, and a frame
is only taken from its camera slot when a buffer is free, so capture's "latest frame wins" still holds
(frames are not taken early and left to age). Both hand-offs block when full instead of dropping: after
detection nothing is lost, and single FIFO consumers keep every camera's frames in order.

``overlap=False`` is the plain loop (take, letterbox, run, decode, deliver on one thread): the baseline the
benchmarks compare against, and what a caller gets whose detector has only ``warmup`` and ``infer``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from edge.clock import SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import numpy.typing as npt

    from edge.clock import Clock
    from edge.detector import Detector
    from edge.metrics import Metrics
    from edge.preprocess import Letterbox
    from edge.types import Detections, Frame

logger = logging.getLogger(__name__)

_POLL_S = 0.05
# How often a blocked hand-off looks at the stop and failure flags; stop() answers within this.

_BUFFERS = 2
# Letterbox buffers in circulation: one run while the next is filled. A third would only let frames wait
# longer in a filled buffer, ageing them, since the model is the bottleneck whenever the run queue is full.


class _NeighbourCrashedError(Exception):
    """Raised in a stage whose neighbour crashed, to unwind it quietly (the crash is logged once)."""


class BatchingDetector:
    """The detector stage's threads (see the module docstring).

    Args:
        detector: the model to run (its ``max_batch`` should be at least ``batch_size``).
        take: ``take(max_n, timeout_s)`` returns up to ``max_n`` pending frames, waiting at most
            ``timeout_s`` for them (the app gathers the newest frame of each camera slot; what it drops
            there it counts). An empty list means nothing is pending; the thread simply asks again.
        deliver: called once per frame, in the order ``take`` returned them, with that frame's detections.
            It runs on one thread (``<name>-decode``, or ``<name>`` without overlap), so it must be quick
            (a lossless hand-off to the tracker).
        batch_size: most frames per model run. Larger batches raise throughput on GPUs (and a little on
            CPU) at the cost of latency: a frame waits for its whole batch.
        max_batch_wait_ms: how long ``take`` may wait to fill a batch once asked. Longer fills batches when
            cameras are out of phase; shorter cuts latency when only one camera has a frame.
        metrics: frame age at pick-up is recorded per camera.
        clock: monotonic clock for frame age (default: the system clock).
        name: the thread's name, shown in logs and ``py-spy`` (the others get ``-run`` and ``-decode``).
        overlap: letterbox, run and decode on three threads at once (default), or all on one.
        on_status: called from the thread with one line per warm-up step (e.g. systemd ``STATUS=`` and
            ``EXTEND_TIMEOUT_USEC``); must be thread-safe.
        prep_threads: threads that letterbox one batch together (overlap only). A GPU runs a batch of 32
            faster than one core letterboxes it; on a CPU the cores are the model's, so ``None`` means 1
            there and up to 4 (half the cores) beside an accelerator.

    Progress (``batches_done``, ``frames_done``) is what a watchdog should watch: it grows only while
    frames really go through the model and out. ``ready`` is set once warm-up is done; a crash in any of
    the threads is logged once, kept in ``failure``, sets ``failed`` and ends all of them (the watchdog
    then sees no progress); the app decides to exit. Startup should wait for ``ready``, ``failed`` or its
    own stop, whichever comes first: a TensorRT engine build can take minutes.
    """

    def __init__(
        self,
        detector: Detector,
        take: Callable[[int, float], list[Frame]],
        deliver: Callable[[Frame, Detections], None],
        *,
        batch_size: int = 4,
        max_batch_wait_ms: float = 5.0,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        name: str = "detector",
        overlap: bool = True,
        on_status: Callable[[str], None] | None = None,
        prep_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_wait_ms < 0:
            raise ValueError(f"max_batch_wait_ms must be >= 0, got {max_batch_wait_ms}")
        self._detector = detector
        self._take = take
        self._deliver = deliver
        self.batch_size = batch_size
        self._wait_s = max_batch_wait_ms / 1000.0
        self._metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        self.name = name
        # Overlap needs the split API and batches that fit one run; a fixed-batch-1 model with a larger
        # batch_size keeps the serial loop, whose infer() splits each take into runs.
        self.overlap = (
            overlap
            and hasattr(detector, "run_letterboxed")
            and getattr(detector, "max_batch", batch_size) >= batch_size
        )
        self._on_status = on_status
        if prep_threads is None:
            on_cpu = str(getattr(detector, "provider", "cpu")).lower() == "cpu"
            prep_threads = 1 if on_cpu else max(1, min(4, (os.cpu_count() or 2) // 2))
        if prep_threads < 1:
            raise ValueError(f"prep_threads must be >= 1, got {prep_threads}")
        self.prep_threads = prep_threads
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once warm-up is done and frames are being taken."""
        self.failed = threading.Event()
        """Set when a thread crashed (``failure`` holds the exception)."""
        self.batches_done = 0
        self.frames_done = 0
        self.failure: BaseException | None = None
        # Bounded hand-offs (see the module docstring): blocking, never dropping.
        self._free: queue.Queue[Letterbox] = queue.Queue()
        self._to_run: queue.Queue[tuple[list[Frame], Letterbox] | None] = queue.Queue(maxsize=1)
        self._to_decode: queue.Queue[tuple[list[Frame], Any, Any] | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._threads = [self._thread]
        if self.overlap:
            self._threads += [
                threading.Thread(target=self._guard, args=(self._run_loop,), name=f"{name}-run", daemon=True),
                threading.Thread(
                    target=self._guard, args=(self._decode_loop,), name=f"{name}-decode", daemon=True
                ),
            ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the threads to finish the batches in flight and exit; ``True`` if they did within
        ``timeout``."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        return not self.is_alive()

    def is_alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # -- crash handling ------------------------------------------------------------------------------

    def _crash(self, exc: BaseException) -> None:
        self.failure = exc
        self.failed.set()
        self._stop.set()  # the gather thread's own waits watch stop; the hand-offs watch failed
        logger.error("detector thread %s crashed", threading.current_thread().name, exc_info=exc)

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except _NeighbourCrashedError:
            return
        except BaseException as exc:
            self._crash(exc)
            raise

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.failed.is_set():
                raise _NeighbourCrashedError
            try:
                q.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.failed.is_set():
                raise _NeighbourCrashedError
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    # -- the threads -----------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            warmup: Any = self._detector.warmup
            if not hasattr(self._detector, "run_letterboxed"):
                warmup(self.batch_size)  # a detector with only warmup(n) and infer(): no steps to report
            elif warmup(self.batch_size, stop=self._stop, progress=self._on_status) is False:
                self._put(self._to_run, None)
                return
            self.ready.set()
            if self.overlap:
                self._gather_loop()
            else:
                self._serial_loop()
        except _NeighbourCrashedError:
            return
        except BaseException as exc:
            self._crash(exc)
            raise

    def _record_age(self, frames: list[Frame]) -> None:
        if self._metrics is not None:
            now = self._clock.monotonic()
            for f in frames:
                self._metrics.frame_age.labels(camera=f.camera).observe(now - f.captured_mono)

    def _serial_loop(self) -> None:
        detector = self._detector
        while not self._stop.is_set():
            frames = self._take(self.batch_size, self._wait_s)
            if not frames:
                continue
            self._record_age(frames)
            results = detector.infer([f.image for f in frames])
            for frame, dets in zip(frames, results, strict=True):
                self._deliver(frame, dets)
            self.batches_done += 1
            self.frames_done += len(frames)

    def _gather_loop(self) -> None:
        for _ in range(_BUFFERS):
            self._free.put(self._detector.new_letterbox())
        pool = None
        if self.prep_threads > 1:
            pool = ThreadPoolExecutor(self.prep_threads, thread_name_prefix=f"{self.name}-prep")
        try:
            while not self._stop.is_set():
                try:
                    letterbox = self._free.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                frames: list[Frame] = []
                while not frames and not self._stop.is_set():
                    frames = self._take(self.batch_size, self._wait_s)
                if not frames:
                    break
                self._record_age(frames)
                letterbox.fill([f.image for f in frames], pool, self.prep_threads)
                self._put(self._to_run, (frames, letterbox))
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            if not self.failed.is_set():
                self._put(self._to_run, None)  # the batches in flight finish, then the others exit

    def _run_loop(self) -> None:
        detector = self._detector
        while True:
            item: tuple[list[Frame], Letterbox] | None = self._get(self._to_run)
            if item is None:
                self._put(self._to_decode, None)
                return
            frames, letterbox = item
            n = len(frames)
            out: npt.NDArray[np.float32] = detector.run_letterboxed(letterbox, n)
            params = letterbox.params(n).copy()  # the buffer is refilled as soon as it is freed
            self._free.put(letterbox)
            self._put(self._to_decode, (frames, out, params))

    def _decode_loop(self) -> None:
        detector = self._detector
        while True:
            item = self._get(self._to_decode)
            if item is None:
                return
            frames, out, params = item
            results = detector.decode(out, params)
            for frame, dets in zip(frames, results, strict=True):
                self._deliver(frame, dets)
            self.batches_done += 1
            self.frames_done += len(frames)
