"""Video capture: one reader thread per camera, a latest-frame-wins slot, reconnects, health states.

A :class:`Capture` owns one source (RTSP/HTTP stream, local file, or V4L2 device), decodes it in a named
thread with OpenCV's FFmpeg backend, and hands frames over through a one-frame slot: a newer frame replaces
an unconsumed older one, and the replaced frame is counted as dropped with reason ``superseded``. Nothing
between capture and the detector can queue stale frames, so a slow consumer sees frames that are at most
one frame interval old, never a growing backlog.

Health is a small state machine, logged once per change (credentials redacted)::

    connecting -> online -> stalled -> offline -> online ...   and any -> stopped

``stalled``: the source was delivering and stopped (a read error, or no frame for ``stall_timeout``); it is
closed and reopened. ``offline``: opening failed; it is retried with exponential backoff and full jitter,
``uniform(0, min(backoff_cap, backoff_base * 2**n))``, where ``n`` is reset after ``healthy_reset_s`` of
uninterrupted frames. Each camera has its own thread, slot and backoff, so one broken camera never slows
the others down.

Several captures can share one :class:`FrameNotifier`, so a single consumer (the batching detector) waits
for a new frame on *any* camera without polling.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.clock import Clock, SystemClock
from edge.logs import redact_url
from edge.metrics import Metrics
from edge.types import Frame

log = logging.getLogger(__name__)

CONNECTING = "connecting"
ONLINE = "online"
STALLED = "stalled"
OFFLINE = "offline"
STOPPED = "stopped"

DROP_FPS_CAP = "fps_cap"
DROP_SUPERSEDED = "superseded"
DROP_SHUTDOWN = "shutdown"

SourceKind = Literal["stream", "file", "device"]
_STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "rtmps://", "udp://", "tcp://", "srt://")


class VideoSource(Protocol):
    """The part of ``cv2.VideoCapture`` capture uses; tests pass fakes through ``Capture(opener=...)``."""

    def grab(self) -> bool: ...

    def retrieve(self, image: Any = ..., flag: int = ...) -> tuple[bool, Any]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


def source_kind(source: str) -> SourceKind:
    """``stream`` for network URLs, ``device`` for ``/dev/videoN`` or a bare device index, else ``file``."""
    lowered = source.lower()
    if lowered.startswith(_STREAM_SCHEMES):
        return "stream"
    if source.startswith("/dev/video") or source.isdigit():
        return "device"
    return "file"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: ``uniform(0, min(cap, base * 2**attempt))``.

    Full jitter spreads the retries of many cameras that failed together (a switch reboot) instead of
    having them all hit the network again in the same instant.
    """
    ceiling = cap if attempt >= 62 else min(cap, base * (2.0**attempt))
    return rng.uniform(0.0, max(0.0, ceiling))


class FpsCap:
    """Evenly thins a frame sequence to ``fps`` frames per second of *stream* time.

    A frame is kept when it is the first one in a new ``1/fps`` time bucket, so a 30 fps source capped at
    15 keeps every 2nd frame and at 5 every 6th - evenly spaced, never a burst followed by a gap. Stream
    time (the frame's presentation timestamp) is used rather than arrival time, so network jitter does not
    make the pattern stutter and an as-fast-as-possible file read is thinned by video time.

    The bucket grid starts half a source frame before the first frame (``source_fps``, when known), so
    bucket edges fall *between* frames: timestamps that wobble by a few milliseconds (RTP clocks do) then
    never flip a frame across an edge. A jump backwards or more than ``resync_s`` forwards (file loop,
    reconnect) restarts the grid.
    """

    def __init__(self, fps: float, source_fps: float | None = None, resync_s: float = 2.0) -> None:
        if not fps > 0:
            raise ValueError(f"fps cap must be > 0, got {fps}")
        self.fps = float(fps)
        self._half = 0.5 / source_fps if source_fps and source_fps > 0 else 0.0
        self._resync_s = resync_s
        self._origin = 0.0
        self._last_bucket: int | None = None
        self._last_t = 0.0

    def accept(self, t: float) -> bool:
        """Whether the frame with stream time ``t`` (seconds) is kept."""
        last = self._last_bucket
        if last is None or t < self._last_t or t - self._last_t > self._resync_s:
            self._origin = t - self._half
            last = None
        self._last_t = t
        # The epsilon keeps k/30 * 15 == k/2 in bucket k//2 despite binary rounding.
        bucket = math.floor((t - self._origin) * self.fps + 1e-6)
        if last is None or bucket > last:
            self._last_bucket = bucket
            return True
        return False


class FrameNotifier:
    """A version counter with a condition, shared by several captures and one consumer.

    Every capture bumps the version when it puts a frame into its slot. A consumer reads :attr:`version`,
    polls every camera, and if nothing was there waits for the version to change - without missing a
    frame that arrived between its poll and its wait::

        v = notifier.version
        frames = [f for c in captures if (f := c.poll()) is not None]
        if not frames:
            notifier.wait(v, timeout=0.1)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def notify(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait(self, version: int, timeout: float | None = None) -> int:
        """Block until the version differs from ``version`` or ``timeout`` passes; returns the version."""
        with self._cond:
            if self._version == version:
                self._cond.wait_for(lambda: self._version != version, timeout)
            return self._version


class _Slot:
    """The one-frame hand-off between the reader thread and the consumer: the newest frame wins."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._frame: Frame | None = None
        self._closed = False

    def put(self, frame: Frame) -> Frame | None:
        """Store ``frame``; return the unconsumed frame it replaced, if any."""
        with self._cond:
            old = self._frame
            self._frame = frame
            self._cond.notify_all()
            return old

    def put_wait(self, frame: Frame, stop: threading.Event) -> bool:
        """Lossless mode: wait until the slot is empty, then store ``frame``; False if stopped first."""
        with self._cond:
            while self._frame is not None and not self._closed:
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
            if self._closed:
                return False
            self._frame = frame
            self._cond.notify_all()
            return True

    def poll(self) -> Frame | None:
        with self._cond:
            frame, self._frame = self._frame, None
            if frame is not None:
                self._cond.notify_all()  # a lossless writer waits for the slot to empty
            return frame

    def take(self, timeout: float | None) -> Frame | None:
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            if frame is not None:
                self._cond.notify_all()
            return frame

    def close(self) -> Frame | None:
        """Wake every waiter for good; return the frame nobody took."""
        with self._cond:
            self._closed = True
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def finish(self) -> None:
        """No more frames will come: wake waiters, but keep the last frame takeable."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _OptionsGate:
    """Serialises ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` between concurrent RTSP opens.

    OpenCV reads FFmpeg options (here: the RTSP transport) from that process-wide environment variable at
    the start of each open - there is no per-capture parameter for it. Opens that want the same value run
    concurrently; an open that needs another value waits until the in-flight ones have finished. With every
    camera on TCP (the default) nothing ever waits, so a camera that hangs in open never delays the others.
    This is the one piece of module state in capture, and it mirrors state the process has anyway.
    """

    VAR = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._value: str | None = None
        self._users = 0
        # Options the operator set for the process are kept; only the transport is added to them.
        self._base = os.environ.get(self.VAR, "")

    def options(self, transport: str) -> str:
        """The variable's value for an open with ``transport``."""
        own = f"rtsp_transport;{transport}"
        return f"{self._base}|{own}" if self._base else own

    @contextlib.contextmanager
    def use(self, value: str, stop: threading.Event) -> Iterator[bool]:
        with self._cond:
            while self._users > 0 and self._value != value:
                if stop.is_set():
                    break
                self._cond.wait(0.1)
            entered = not stop.is_set()
            if entered:
                if self._users == 0 and self._value != value:
                    os.environ[self.VAR] = value
                    self._value = value
                self._users += 1
        try:
            yield entered
        finally:
            if entered:
                with self._cond:
                    self._users -= 1
                    self._cond.notify_all()


_OPTIONS_GATE = _OptionsGate()


class _Outcome:
    """Why a read loop ended (a small value, not an exception: these are expected events)."""

    __slots__ = ("kind", "reason")

    def __init__(self, kind: Literal["stop", "eof", "truncated", "error", "stall"], reason: str) -> None:
        self.kind = kind
        self.reason = reason


class Capture:
    """Reads one camera in its own thread and always offers its newest frame.

    Args:
        camera: camera name, carried by every frame and used as metric label.
        source: ``rtsp://``/``http(s)://`` URL, a local file path, or ``/dev/videoN``.
        fps: cap on delivered frames per second, thinned evenly by stream time; ``None`` = every frame.
            Lower saves detector CPU at the cost of temporal resolution for tracking.
        transport: RTSP over ``tcp`` (default: no packet loss, works through NAT) or ``udp`` (slightly
            less latency, but lost packets show up as smeared frames).
        loop: files only - start again at the end (demos). Without it the capture ends at EOF with state
            ``stopped`` (clean end) or ``offline`` (the file ended early: truncated or corrupt).
        realtime: files only - pace reading at the file's frame rate, as a camera would deliver it.
            Without it a file is decoded as fast as possible.
        lossless: files without ``realtime`` only - wait for the consumer to take each frame instead of
            replacing it, for offline tools that must see every frame. Live sources always drop.
        stall_timeout: seconds without a frame before a source that was delivering is declared stalled
            and reopened. Lower detects a dead camera sooner but may reconnect on a merely slow one.
        open_timeout: seconds FFmpeg may spend opening a source; also bounds how long :meth:`stop` may
            leave a thread blocked in open behind it.
        read_timeout: seconds one blocking read may take (FFmpeg interrupt); ``None`` = ``stall_timeout``.
            Never more than ``stall_timeout``, so a hung source is detected in time.
        backoff_base: first retry ceiling in seconds; doubled per consecutive failure.
        backoff_cap: largest retry ceiling. Lower reconnects sooner after long outages at the cost of
            more connection attempts against a dead camera.
        healthy_reset_s: seconds of uninterrupted frames after which the backoff starts again at
            ``backoff_base`` (so a flapping camera is not hammered, a recovered one retries fast).
        clock: monotonic/wall time for frame timestamps and health timing.
        metrics: counters and state gauges; ``None`` for none.
        rng: random source for backoff jitter (tests pass a seeded one).
        on_state: called as ``on_state(camera, new_state)`` from the reader thread on every change.
        notify: shared :class:`FrameNotifier`, bumped on every new frame.
        opener: builds the source; default opens ``source`` with OpenCV (tests pass fakes).
        decode_threads: FFmpeg decoder threads; 0 = OpenCV's default (one per CPU). More threads raise
            the throughput of one large stream; with many cameras the default is usually right.
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
        backoff_cap: float = 30.0,
        healthy_reset_s: float = 30.0,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        on_state: Callable[[str, str], None] | None = None,
        notify: FrameNotifier | None = None,
        opener: Callable[[], VideoSource | None] | None = None,
        decode_threads: int = 0,
    ) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', got {transport!r}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        if stall_timeout <= 0 or open_timeout <= 0:
            raise ValueError("stall_timeout and open_timeout must be > 0")
        self.camera = camera
        self.source = source
        self.kind: SourceKind = source_kind(source)
        self.fps = fps
        self.transport = transport
        self.loop = loop
        self.realtime = realtime
        self.lossless = lossless and self.kind == "file" and not realtime
        self.stall_timeout = stall_timeout
        self.open_timeout = open_timeout
        self.read_timeout = min(read_timeout if read_timeout is not None else stall_timeout, stall_timeout)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.healthy_reset_s = healthy_reset_s
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._rng = rng if rng is not None else random.Random()
        self._on_state = on_state
        self._notify = notify
        self._opener = opener if opener is not None else self._open_opencv
        self._decode_threads = decode_threads
        self._redacted = redact_url(source)

        self._slot = _Slot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._state = CONNECTING
        self._seq = 0
        self._reconnects = 0
        self._drops = {DROP_FPS_CAP: 0, DROP_SUPERSEDED: 0, DROP_SHUTDOWN: 0}
        self._source_fps: float | None = None
        # Arrival times of the last frames, a fixed ring (no per-frame allocation) for fps_estimate.
        self._ring = np.zeros(32, np.float64)
        self._ring_n = 0
        # The image of a superseded frame was never handed out, so the next retrieve can reuse it.
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
        """Start the reader thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"capture {self.camera} already started")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop reading; returns within ``timeout`` seconds even if the thread is blocked in open/read.

        Returns True when the thread has ended. If it is still inside a blocking OpenCV call (which
        cannot be interrupted from outside), it is a daemon thread that ends on its own within
        ``open_timeout`` / ``read_timeout`` and will not touch the slot or the state again.
        """
        self._stop.set()
        leftover = self._slot.close()
        if leftover is not None:
            self._count_drop(DROP_SHUTDOWN)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
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
        """Times the source was opened again after a failure (open, read error or stall)."""
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
        """Decoded frames per second over the last (up to) 32 frames; 0.0 before two frames."""
        n = min(self._ring_n, self._ring.shape[0])
        if n < 2:
            return 0.0
        size = self._ring.shape[0]
        last = self._ring[(self._ring_n - 1) % size]
        first = self._ring[(self._ring_n - n) % size]
        span = float(last - first)
        return (n - 1) / span if span > 0 else 0.0

    @property
    def source_fps(self) -> float | None:
        """Frame rate the source declares (``CAP_PROP_FPS``), or ``None`` before it opened / if unknown."""
        return self._source_fps

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

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

    def _count_drop(self, reason: str) -> None:
        self._drops[reason] += 1
        child = self._m_dropped.get(reason)
        if child is not None:
            child.inc()

    # ------------------------------------------------------------------------------------------------
    # the reader thread

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

    def _run_source(self) -> None:
        attempt = 0  # consecutive failures, drives the backoff
        failed_before = False
        while not self._stop.is_set():
            if failed_before:
                self._reconnects += 1
                if self._m_reconnects is not None:
                    self._m_reconnects.inc()
            src, why = self._open()
            if self._stop.is_set():
                if src is not None:
                    src.release()
                break
            if src is None:
                self._set_state(OFFLINE, why)
                if self.kind == "file":
                    return  # a local file that cannot be opened does not heal by waiting
                failed_before = True
                self._backoff(attempt)
                attempt += 1
                continue
            try:
                outcome, online_since = self._read_loop(src)
            finally:
                src.release()
            if outcome.kind == "stop" or self._stop.is_set():
                break
            if outcome.kind == "eof":
                if self.loop:
                    attempt = 0
                    failed_before = False
                    continue
                self._set_state(STOPPED, outcome.reason)
                self._slot_finish()
                return
            if self.kind == "file" and not self.loop:
                self._set_state(OFFLINE, outcome.reason)
                self._slot_finish()
                return
            if online_since is not None and (
                self._clock.monotonic() - online_since >= self.healthy_reset_s
            ):
                attempt = 0  # it was healthy for a while: retry fast, as after a first failure
            self._set_state(STALLED, outcome.reason)
            failed_before = True
            self._backoff(attempt)
            attempt += 1

    def _slot_finish(self) -> None:
        """At the end of a file nothing more will come: ``take`` stops waiting (the last frame stays)."""
        self._slot.finish()

    def _backoff(self, attempt: int) -> None:
        delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self._rng)
        log.debug("camera=%s retry %d in %.2f s", self.camera, attempt + 1, delay)
        self._stop.wait(delay)

    def _open(self) -> tuple[VideoSource | None, str]:
        if self.kind == "file" and not Path(self.source).is_file():
            return None, f"no such file: {self.source}"
        t0 = self._clock.monotonic()
        try:
            src = self._opener()
        except cv2.error as exc:
            return None, f"cannot open: {exc}"
        if src is None:
            took = self._clock.monotonic() - t0
            if self.kind == "file":
                return None, "cannot open as video (not a video file, unsupported codec or broken header)"
            if self.kind == "device":
                return None, "cannot open device (missing, busy or no permission)"
            if took >= 0.9 * self.open_timeout:
                return None, f"no answer within open_timeout {self.open_timeout:g} s (host unreachable?)"
            return None, f"cannot open stream after {took:.1f} s (refused, wrong path, auth or not video)"
        fps = src.get(cv2.CAP_PROP_FPS)
        if math.isfinite(fps) and 0 < fps < 1000:
            self._source_fps = float(fps)
        return src, "opened"

    def _open_opencv(self) -> VideoSource | None:
        if self.kind == "device":
            index: int | str = int(self.source) if self.source.isdigit() else self.source
            cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                round(self.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                round(self.read_timeout * 1000),
            ]
            if self._decode_threads > 0:
                params += [cv2.CAP_PROP_N_THREADS, self._decode_threads]
            if self.source.lower().startswith(("rtsp://", "rtsps://")):
                with _OPTIONS_GATE.use(_OPTIONS_GATE.options(self.transport), self._stop) as entered:
                    if not entered:
                        return None
                    cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
            else:
                cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _read_loop(self, src: VideoSource) -> tuple[_Outcome, float | None]:
        """Read until stop, EOF or failure; returns the outcome and when frames started flowing."""
        clock = self._clock
        stop = self._stop
        cap = FpsCap(self.fps, self._source_fps) if self.fps is not None else None
        is_file = self.kind == "file"
        expected = src.get(cv2.CAP_PROP_FRAME_COUNT) if is_file else 0.0
        period = 1.0 / self._source_fps if self._source_fps else 1.0 / 30.0
        n = 0
        online_since: float | None = None
        pace_base = 0.0
        ring = self._ring
        size = ring.shape[0]
        while not stop.is_set():
            t_read = clock.monotonic()
            ok = src.grab()
            mono = clock.monotonic()
            if stop.is_set():
                return _Outcome("stop", "stopped"), online_since
            if not ok:
                return self._read_failure(n, expected, mono - t_read), online_since
            if not is_file and mono - t_read >= 0.9 * self.read_timeout:
                # FFmpeg's interrupt cut this read short; what it returns is a flushed partial
                # picture, not a frame (seen with a frozen RTSP server), so it counts as the stall.
                return _Outcome("stall", f"no frame for {mono - t_read:.1f} s"), online_since
            wall = clock.time()
            if self.realtime and is_file:
                # Pace at the file's own rate, as a camera would deliver it.
                if n == 0:
                    pace_base = mono
                due = pace_base + n * period
                if due > mono and stop.wait(due - mono):
                    return _Outcome("stop", "stopped"), online_since
                mono = clock.monotonic()
                wall = clock.time()
            seq = self._seq
            self._seq = seq + 1
            n += 1
            ring[self._ring_n % size] = mono
            self._ring_n += 1
            if self._m_captured is not None:
                self._m_captured.inc()
            if online_since is None:
                online_since = mono
                self._set_state(ONLINE, "receiving frames" if self._reconnects == 0 else
                                f"receiving frames again after {self._reconnects} reconnect(s)")
            if cap is not None and not cap.accept(src.get(cv2.CAP_PROP_POS_MSEC) / 1000.0):
                self._count_drop(DROP_FPS_CAP)
                continue  # skip retrieve: no colour conversion for a frame nobody sees
            spare = self._spare
            self._spare = None
            ok, image = src.retrieve(spare) if spare is not None else src.retrieve()
            if not ok or image is None:
                return _Outcome("error", "decoded frame could not be retrieved"), online_since
            if image.ndim == 2:  # grey sources (some V4L2 devices)
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            frame = Frame(image, self.camera, seq, mono, wall)
            if self.lossless:
                if not self._slot.put_wait(frame, stop):
                    return _Outcome("stop", "stopped"), online_since
            else:
                old = self._slot.put(frame)
                if old is not None:
                    self._count_drop(DROP_SUPERSEDED)
                    if old.image.shape == image.shape:
                        self._spare = old.image
            if self._notify is not None:
                self._notify.notify()
        return _Outcome("stop", "stopped"), online_since

    def _read_failure(self, n: int, expected: float, blocked: float) -> _Outcome:
        if self.kind == "file":
            # FRAME_COUNT comes from the container header, so a file cut or damaged mid-way stops
            # well before it; a few frames of slack cover containers whose count is an estimate.
            if n == 0:
                return _Outcome("truncated", "file opened but no frame could be decoded (corrupt?)")
            if expected > 0 and n < expected * 0.98 - 2:
                return _Outcome(
                    "truncated",
                    f"file ended early after {n} of {int(expected)} frames (truncated or corrupt)",
                )
            return _Outcome("eof", f"end of file after {n} frames")
        if blocked >= 0.9 * self.read_timeout:
            return _Outcome("stall", f"no frame for {blocked:.1f} s")
        if n == 0:
            return _Outcome("error", "opened but no frame could be read")
        return _Outcome("error", "read failed (connection closed or decode error)")
