"""Video capture: a process per camera, a latest-frame-wins slot, reconnects, health states.

A :class:`Capture` owns one source (RTSP/HTTP stream, local file, or V4L2 device), opened, read and
decoded in a child process of its own (:mod:`edge.capture_worker`): OpenCV serialises opens inside one
process, so a camera whose host never answered held every other camera's open; in its own process a
camera blocks only itself, a hung native call can be killed, and decode runs off the daemon's GIL. A reader
thread here copies each frame from shared memory into a one-frame slot where a newer frame replaces an
unconsumed one (dropped, reason ``superseded``): a slow consumer never sees a backlog.

Health, logged once per change (credentials redacted): ``connecting -> online -> stalled -> offline ->
online ...``, any -> ``stopped``. ``stalled``: the source stopped delivering; ``offline``: opening failed,
with its cause (refused, timeout, auth failed, not found, not a video). Both retry with
:class:`edge.backoff.Backoff` (2 s cap: a returning camera is seen within seconds however long it was
gone); reconnect attempts are counted per outage in the line that ends it. Several captures can share
one :class:`FrameNotifier`, so one consumer waits for a frame from *any* camera.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import cv2
import numpy as np
import numpy.typing as npt

from edge.backoff import Backoff
from edge.capture_core import (
    CONNECTING,
    DROP_FPS_CAP,
    DROP_SHUTDOWN,
    DROP_SUPERSEDED,
    OFFLINE,
    ONLINE,
    STALLED,
    STOPPED,
    FpsCap,
    Outcome,
    SourceKind,
    read_failure,
    source_kind,
)
from edge.capture_proc import CaptureLauncher, WorkerGone, WorkerProcess
from edge.capture_slot import (
    OPTIONS_GATE,
    FrameNotifier,
    FrameSlot,
    VideoSource,
    open_in_thread,
    open_opencv,
)
from edge.clock import Clock, SystemClock
from edge.logs import Redactor, redact_url
from edge.metrics import Metrics
from edge.types import Frame

__all__ = [
    "CONNECTING", "DROP_FPS_CAP", "DROP_SHUTDOWN", "DROP_SUPERSEDED", "OFFLINE", "ONLINE", "STALLED",
    "STOPPED", "Capture", "CaptureLauncher", "FpsCap", "FrameNotifier", "Isolation", "VideoSource",
    "source_kind",
]

log = logging.getLogger(__name__)

Isolation = Literal["process", "thread"]

# Beyond its own open/read timeout, how long a capture process may stay silent before it is taken for
# hung and killed: Python start-up plus OpenCV import (~0.2 s alone, more on a loaded 2-core machine).
_PROCESS_GRACE_S = 3.0


class Capture:
    """Reads one camera in its own process (or thread) and always offers its newest frame.

    Args:
        camera: camera name, carried by every frame and used as metric label.
        source: ``rtsp://``/``http(s)://`` URL, a local file path, or ``/dev/videoN``.
        fps: cap on delivered frames per second, thinned evenly by stream time (B-frames, missing or
            non-monotonic timestamps and variable frame rate included); ``None`` = every frame. Lower
            saves detector CPU at the cost of temporal resolution for tracking.
        transport: RTSP over ``tcp`` (default: no packet loss, works through NAT) or ``udp`` (slightly
            less latency, but lost packets show up as smeared frames).
        loop: files only - start again at the end (demos). Without it the capture ends at EOF with state
            ``stopped`` (clean end) or ``offline`` (the file ended early: truncated or corrupt).
        realtime: files only - pace reading at the file's frame rate, as a camera would deliver it.
            Without it a file is decoded as fast as possible.
        lossless: files without ``realtime`` only - wait for the consumer to take each frame instead of
            replacing it, for offline tools that must see every frame. Live sources always drop. Lossless
            reading runs in the reader thread (``isolation="thread"``).
        stall_timeout: seconds without a frame before a source that was delivering is declared stalled
            and reopened. Lower detects a dead camera sooner but may reconnect on a merely slow one.
        open_timeout: seconds FFmpeg may spend opening a source. A capture process that has not answered
            ``open_timeout`` + 3 s after it was asked is killed; a thread cannot be, so in thread mode this
            also bounds how long :meth:`stop` may leave a thread blocked in open behind it.
        read_timeout: seconds one blocking read may take (FFmpeg interrupt); ``None`` = ``stall_timeout``.
            Never more than ``stall_timeout``, so a hung source is detected in time.
        backoff_base: first retry ceiling in seconds; doubled per consecutive failure.
        backoff_cap: largest retry ceiling; a camera that comes back is seen at most this much later (plus
            one open and its first key frame). Lower notices it sooner at the cost of more connection
            attempts against a dead camera (one per ``backoff_cap / 2`` to ``backoff_cap`` seconds).
        healthy_reset_s: seconds of uninterrupted frames after which the backoff starts again at
            ``backoff_base`` (so a flapping camera is not hammered, a recovered one retries fast).
        clock: monotonic/wall time for frame timestamps and health timing.
        metrics: counters and state gauges; ``None`` for none.
        rng: random source for backoff jitter (tests pass a seeded one).
        on_state: called as ``on_state(camera, new_state)`` from the reader thread on every change.
        notify: shared :class:`FrameNotifier`, bumped on every new frame.
        opener: builds the source in-process; default opens ``source`` with OpenCV (tests pass fakes).
            Giving one implies ``isolation="thread"``.
        decode_threads: FFmpeg decoder threads; 0 = OpenCV's default (one per CPU). More threads raise
            the throughput of one large stream; with many cameras the default is usually right.
        isolation: ``process`` (default): a child process per camera that no other camera can block and
            that is killed when it hangs, for ~30 MB of private memory and one frame copy per frame.
            ``thread``: in this process, where OpenCV serialises all cameras' opens.
        launcher: forks capture processes in milliseconds (share one across cameras); ``None`` = each
            starts a Python interpreter (~0.15 s of CPU, seconds on a loaded machine).
    """

    def __init__(
        self,
        camera: str,
        source: str,
        *,
        fps: float | None = None,
        transport: str = "tcp",
        loop: bool = False,
        realtime: bool = False,
        lossless: bool = False,
        stall_timeout: float = 10.0,
        open_timeout: float = 10.0,
        read_timeout: float | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 2.0,
        healthy_reset_s: float = 30.0,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        on_state: Callable[[str, str], None] | None = None,
        notify: FrameNotifier | None = None,
        opener: Callable[[], VideoSource | None] | None = None,
        decode_threads: int = 0,
        isolation: Isolation = "process",
        launcher: CaptureLauncher | None = None,
    ) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', got {transport!r}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        if stall_timeout <= 0 or open_timeout <= 0:
            raise ValueError("stall_timeout and open_timeout must be > 0")
        if isolation not in ("process", "thread"):
            raise ValueError(f"isolation must be 'process' or 'thread', got {isolation!r}")
        self.camera = camera
        self.source = source
        self.kind: SourceKind = source_kind(source)
        self.fps = fps
        self.transport = transport
        self.loop = loop
        self.realtime = realtime
        self.lossless = lossless and self.kind == "file" and not realtime
        self.isolation: Isolation = "thread" if opener is not None or self.lossless else isolation
        self.stall_timeout = stall_timeout
        self.open_timeout = open_timeout
        self.read_timeout = min(read_timeout if read_timeout is not None else stall_timeout, stall_timeout)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.healthy_reset_s = healthy_reset_s
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._backoff = Backoff(
            backoff_base, max(backoff_cap, backoff_base), healthy_reset_s, clock=self._clock,
            rng=rng if rng is not None else random.Random(),
        )
        self._on_state = on_state
        self._notify = notify
        self._opener = opener if opener is not None else self._open_in_process
        self._decode_threads = decode_threads
        self._launcher = launcher
        self._redacted = redact_url(source)
        # FFmpeg's own lines (open failure reasons, decoder messages) may quote the URL or its password.
        self._scrub = Redactor([urlsplit(source).password or ""] if "@" in source else [])

        self._slot = FrameSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: WorkerProcess | None = None
        self._state_lock = threading.Lock()
        self._state = CONNECTING
        self._seq = 0
        self._reconnects = 0
        self._outage_attempts = 0
        self._outage_since: float | None = None
        self._expected = 0.0
        self._drops = {DROP_FPS_CAP: 0, DROP_SUPERSEDED: 0, DROP_SHUTDOWN: 0}
        self._source_fps: float | None = None
        # Arrival times of the last frames, a fixed ring (no per-frame allocation) for fps_estimate.
        self._ring = np.zeros(32, np.float64)
        self._ring_seq = np.zeros(32, np.int64)
        self._ring_n = 0
        # The image of a superseded frame was never handed out, so the next frame can reuse it.
        self._spare: npt.NDArray[np.uint8] | None = None

        self._m_captured: Any = None
        self._m_dropped: dict[str, Any] = {}
        self._m_reconnects: Any = None
        self._metrics = metrics
        if metrics is not None:
            self._m_captured = metrics.frames_captured.labels(camera=camera)
            self._m_dropped = {
                r: metrics.frames_dropped.labels(camera=camera, reason=r) for r in self._drops
            }
            self._m_reconnects = metrics.capture_reconnects.labels(camera=camera)
            metrics.set_camera_state(camera, CONNECTING)

    # ------------------------------------------------------------------------------------------------
    # public API

    def start(self) -> None:
        """Start the reader thread (once); it starts the capture process."""
        if self._thread is not None:
            raise RuntimeError(f"capture {self.camera} already started")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop reading; returns within ``timeout`` seconds even if the source is blocked in open/read.

        True when the reader thread has ended. In process mode it notices the stop within 0.25 s and kills
        its capture process. In thread mode a thread blocked in OpenCV ends on its own within
        ``open_timeout`` / ``read_timeout`` and will not touch the slot or the state again.
        """
        self._stop.set()
        leftover = self._slot.close()
        if leftover is not None:
            self._count_drop(DROP_SHUTDOWN)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
        worker = self._worker
        if worker is not None and worker.proc is not None and thread is not None and thread.is_alive():
            worker.proc.kill()  # the reader is late: never leave its child behind (it reaps it later)
        self._set_state(STOPPED, "stopped", force=True)
        return thread is None or not thread.is_alive()

    @property
    def state(self) -> str:
        return self._state

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout`` s for one; ``None`` if none came."""
        return self._slot.take(timeout)

    def poll(self) -> Frame | None:
        """The newest frame not yet taken, or ``None`` right away."""
        return self._slot.poll()

    @property
    def reconnects(self) -> int:
        """Times the source was opened again after a failure (open, read error or stall), in total."""
        return self._reconnects

    @property
    def frames_captured(self) -> int:
        """Frames decoded from the source (every ``seq`` handed out so far)."""
        return self._seq

    @property
    def drops(self) -> dict[str, int]:
        """Frames dropped by reason (``fps_cap``, ``superseded``, ``shutdown``), a copy."""
        return dict(self._drops)

    @property
    def fps_estimate(self) -> float:
        """Decoded frames per second over the last (up to) 32 delivered frames; 0.0 before two."""
        n = min(self._ring_n, self._ring.shape[0])
        if n < 2:
            return 0.0
        size = self._ring.shape[0]
        i_last = (self._ring_n - 1) % size
        i_first = (self._ring_n - n) % size
        span = float(self._ring[i_last] - self._ring[i_first])
        decoded = int(self._ring_seq[i_last] - self._ring_seq[i_first])
        return decoded / span if span > 0 else 0.0

    @property
    def source_fps(self) -> float | None:
        """Frame rate the source declares (``CAP_PROP_FPS``), or ``None`` before it opened / if unknown."""
        return self._source_fps

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def worker_pid(self) -> int | None:
        """Process id of the capture process while one runs (tests, diagnostics)."""
        proc = self._worker.proc if self._worker is not None else None
        return proc.pid if proc is not None and proc.poll() is None else None

    # ------------------------------------------------------------------------------------------------
    # state and counters

    def _set_state(self, state: str, reason: str, *, force: bool = False) -> None:
        with self._state_lock:
            old = self._state
            if old == state or (old == STOPPED and not force):
                return
            if self._stop.is_set() and state != STOPPED:
                return  # a thread left behind by stop() must not resurrect the camera
            self._state = state
        level = logging.WARNING if state in (STALLED, OFFLINE) else logging.INFO
        log.log(level, "camera=%s %s -> %s: %s (source %s)", self.camera, old, state, reason, self._redacted)
        if self._metrics is not None:
            self._metrics.set_camera_state(self.camera, state)
        if self._on_state is not None:
            self._on_state(self.camera, state)

    def _count_drop(self, reason: str, n: int = 1) -> None:
        self._drops[reason] += n
        child = self._m_dropped.get(reason)
        if child is not None:
            child.inc(n)

    def _count_captured(self, n: int) -> int:
        """Advance ``seq`` by ``n`` decoded frames; returns the seq of the last of them."""
        self._seq += n
        if self._m_captured is not None:
            self._m_captured.inc(n)
        return self._seq - 1

    def _went_online(self, mono: float) -> None:
        """First frame after an open: state, backoff, and the per-outage log line."""
        self._backoff.online()
        if self._worker is not None:
            self._worker.online = True
        if self._outage_since is None:
            reason = "receiving frames"
        else:
            reason = (f"receiving frames again after {self._outage_attempts} reconnect attempt(s) "
                      f"over {mono - self._outage_since:.1f} s")
        self._outage_attempts = 0
        self._outage_since = None
        self._set_state(ONLINE, reason)

    def _deliver(self, image: npt.NDArray[np.uint8], seq: int, mono: float, wall: float) -> bool:
        """Hand a frame to the slot; False when stopped while waiting (lossless)."""
        i = self._ring_n % self._ring.shape[0]
        self._ring[i] = mono
        self._ring_seq[i] = seq
        self._ring_n += 1
        frame = Frame(image, self.camera, seq, mono, wall)
        if self.lossless:
            if not self._slot.put_wait(frame, self._stop):
                return False
        else:
            old = self._slot.put(frame)
            if old is frame:
                self._count_drop(DROP_SHUTDOWN)
                return False
            if old is not None:
                self._count_drop(DROP_SUPERSEDED)
                if old.image.shape == image.shape:
                    self._spare = old.image
        if self._notify is not None:
            self._notify.notify()
        return True

    # ------------------------------------------------------------------------------------------------
    # the reader thread: open, read, and the reconnect policy

    def _run(self) -> None:
        try:
            self._run_source()
        except BaseException:
            # A bug, not an I/O problem: make it visible in the state and the log, then let the thread
            # die with the traceback (threading.excepthook) instead of retrying a broken code path.
            log.critical("camera=%s capture thread crashed", self.camera, exc_info=True)
            self._set_state(OFFLINE, "internal error in the capture thread (see the traceback)")
            self._slot.finish()
            raise
        finally:
            if self._worker is not None:
                self._worker.kill()

    def _run_source(self) -> None:
        if self.isolation == "process":
            self._worker = WorkerProcess(self.camera, self._clock, scrub=self._scrub, launcher=self._launcher)
        failed_before = False
        while not self._stop.is_set():
            if failed_before:
                self._reconnects += 1
                self._outage_attempts += 1
                if self._m_reconnects is not None:
                    self._m_reconnects.inc()
            if self._worker is not None:
                opened, why = self._open_process(self._worker)
                if self._stop.is_set():
                    break
                outcome: Outcome | None = self._read_loop_process(self._worker) if opened else None
            else:
                src, why = self._open()
                if self._stop.is_set():
                    if src is not None:
                        src.release()
                    break
                outcome = None
                if src is not None:
                    try:
                        outcome = self._read_loop(src)
                    finally:
                        src.release()
            if outcome is None:  # the open failed
                self._set_state(OFFLINE, why)
                if self.kind == "file":
                    return  # a local file that cannot be opened does not heal by waiting
                self._failed()
                failed_before = True
                continue
            if outcome.kind == "stop" or self._stop.is_set():
                break
            if outcome.kind == "eof":
                if self.loop:
                    continue
                self._set_state(STOPPED, outcome.reason)
                self._slot.finish()
                return
            if self.kind == "file" and not self.loop:
                self._set_state(OFFLINE, outcome.reason)
                self._slot.finish()
                return
            self._set_state(STALLED, outcome.reason)
            self._failed()
            failed_before = True

    def _failed(self) -> None:
        """An open or a read failed: wait the backoff's delay (returns early on stop)."""
        if self._outage_since is None:
            self._outage_since = self._clock.monotonic()
        if self._worker is not None:
            self._worker.online = False
        delay = self._backoff.next()
        log.debug("camera=%s retry %d in %.2f s", self.camera, self._backoff.failures, delay)
        self._stop.wait(delay)

    # -- process mode -------------------------------------------------------------------------------------

    def _open_process(self, worker: WorkerProcess) -> tuple[bool, str]:
        if self.kind == "file" and not Path(self.source).is_file():
            return False, f"no such file: {self.source}"
        request = {  # the child's side: edge.capture_worker._Child.run_source
            "t": "open", "source": self.source, "kind": self.kind, "transport": self.transport,
            "open_timeout": self.open_timeout, "read_timeout": self.read_timeout, "fps": self.fps,
            "realtime": self.realtime, "decode_threads": self._decode_threads,
            "base_options": os.environ.get(OPTIONS_GATE.VAR, ""),
        }
        try:
            if not worker.alive:
                worker.spawn()
            worker.send(request)
            msg = worker.recv_until(self._stop, self.open_timeout + _PROCESS_GRACE_S)
        except WorkerGone as exc:
            worker.kill()
            return False, str(exc)
        except OSError as exc:
            worker.kill()
            return False, f"cannot start the capture process: {exc}"
        if msg is None:
            if not self._stop.is_set():
                worker.kill()
            return False, f"no answer within open_timeout {self.open_timeout:g} s (capture process killed)"
        if msg.get("t") == "failed":
            return False, self._scrub(str(msg.get("reason", "cannot open")))
        if msg.get("t") != "opened":
            worker.kill()
            return False, f"capture process answered {msg.get('t')!r} to open"
        fps = msg.get("fps")
        if isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps < 1000:
            self._source_fps = float(fps)
        return True, "opened"

    def _read_loop_process(self, worker: WorkerProcess) -> Outcome:
        """Receive frames until stop, EOF or failure; a silent capture process is killed."""
        clock = self._clock
        silent_limit = self.read_timeout + _PROCESS_GRACE_S
        if self.realtime and self._source_fps:
            silent_limit += 1.0 / self._source_fps
        last = clock.monotonic()
        online = False
        while not self._stop.is_set():
            try:
                msg = worker.recv_until(self._stop, 0.25)
            except WorkerGone as exc:
                worker.kill()
                return Outcome("error", str(exc))
            mono = clock.monotonic()
            if msg is None:
                if self._stop.is_set():
                    break
                if mono - last > silent_limit:
                    worker.kill()
                    why = f"no frame for {mono - last:.1f} s (capture process hung; killed)"
                    return Outcome("stall", why)
                continue
            kind = msg.get("t")
            if kind == "end":
                end: Any = msg.get("kind") if msg.get("kind") in ("eof", "truncated", "stall") else "error"
                return Outcome(end, self._scrub(str(msg.get("reason", ""))))
            if kind != "frame":
                continue
            last = mono
            msg, skipped = worker.newest_frame(msg)
            capped = int(msg.get("capped", 0))
            if capped:
                self._count_drop(DROP_FPS_CAP, capped)
            if skipped:
                self._count_drop(DROP_SUPERSEDED, skipped)
            seq = self._count_captured(capped + skipped + 1)
            if not online:
                online = True
                self._went_online(mono)
            spare, self._spare = self._spare, None
            image = worker.copy_frame(msg, spare)
            if image is None:  # overwritten by the child while we were late: a newer frame is coming
                self._count_drop(DROP_SUPERSEDED)
                continue
            self._deliver(image, seq, mono, clock.time())
        return Outcome("stop", "stopped")

    # -- thread mode --------------------------------------------------------------------------------------

    def _open_in_process(self) -> VideoSource | None:
        return open_opencv(
            self.source, self.kind, transport=self.transport, open_timeout=self.open_timeout,
            read_timeout=self.read_timeout, decode_threads=self._decode_threads, stop=self._stop,
        )

    def _open(self) -> tuple[VideoSource | None, str]:
        src, why, fps = open_in_thread(self._opener, self.source, self.kind, self.open_timeout, self._clock)
        self._source_fps = fps if fps is not None else self._source_fps
        return src, why

    def _read_loop(self, src: VideoSource) -> Outcome:
        """Read in this thread until stop, EOF or failure."""
        clock = self._clock
        stop = self._stop
        cap = FpsCap(self.fps, self._source_fps) if self.fps is not None else None
        is_file = self.kind == "file"
        expected = src.get(cv2.CAP_PROP_FRAME_COUNT) if is_file else 0.0
        period = 1.0 / self._source_fps if self._source_fps else 1.0 / 30.0
        n = 0
        pace_base = 0.0
        while not stop.is_set():
            t_read = clock.monotonic()
            ok = src.grab()
            mono = clock.monotonic()
            if stop.is_set():
                return Outcome("stop", "stopped")
            if not ok:
                return read_failure(self.kind, n, expected, mono - t_read, self.read_timeout)
            if not is_file and mono - t_read >= 0.9 * self.read_timeout:
                # FFmpeg's interrupt cut this read short; what it returns is a flushed partial
                # picture, not a frame (seen with a frozen RTSP server), so it counts as the stall.
                return Outcome("stall", f"no frame for {mono - t_read:.1f} s")
            wall = clock.time()
            if self.realtime and is_file:
                # Pace at the file's own rate, as a camera would deliver it.
                if n == 0:
                    pace_base = mono
                due = pace_base + n * period
                if due > mono and stop.wait(due - mono):
                    return Outcome("stop", "stopped")
                mono = clock.monotonic()
                wall = clock.time()
            seq = self._count_captured(1)
            n += 1
            if n == 1:
                self._went_online(mono)
            if cap is not None:
                pos = src.get(cv2.CAP_PROP_POS_MSEC)
                if not cap.accept(pos / 1000.0 if math.isfinite(pos) else math.nan):
                    self._count_drop(DROP_FPS_CAP)
                    continue  # skip retrieve: no colour conversion for a frame nobody sees
            spare = self._spare
            self._spare = None
            ok, image = src.retrieve(spare) if spare is not None else src.retrieve()
            if not ok or image is None:
                return Outcome("error", "decoded frame could not be retrieved")
            if image.ndim == 2:  # grey sources (some V4L2 devices)
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if not self._deliver(image, seq, mono, wall):
                return Outcome("stop", "stopped")
        return Outcome("stop", "stopped")
