"""The hand-offs of capture: the one-frame slot (newest wins) and the notifier shared by several cameras.

Also what in-process (``isolation="thread"``) reading needs: the source protocol, the OpenCV opener and the
gate for ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` (capture processes have one camera each and need no gate).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2

from edge.clock import Clock
from edge.types import Frame


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


class FrameSlot:
    """The one-frame hand-off between the reader thread and the consumer: the newest frame wins."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._frame: Frame | None = None
        self._closed = False

    def put(self, frame: Frame) -> Frame | None:
        """Store ``frame``; return the unconsumed frame it replaced, if any (``frame`` itself once closed)."""
        with self._cond:
            if self._closed:
                return frame  # stopped: nobody will take it
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


class OptionsGate:
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


OPTIONS_GATE = OptionsGate()


class VideoSource(Protocol):
    """The part of ``cv2.VideoCapture`` capture uses; tests pass fakes through ``Capture(opener=...)``."""

    def grab(self) -> bool: ...

    def retrieve(self, image: Any = ..., flag: int = ...) -> tuple[bool, Any]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


def open_opencv(
    source: str,
    kind: str,
    *,
    transport: str,
    open_timeout: float,
    read_timeout: float,
    decode_threads: int,
    stop: threading.Event,
) -> VideoSource | None:
    """Open ``source`` with OpenCV in this process (FFmpeg; V4L2 for devices); ``None`` if it fails."""
    if kind == "device":
        index: int | str = int(source) if source.isdigit() else source
        cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            round(open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            round(read_timeout * 1000),
        ]
        if decode_threads > 0:
            params += [cv2.CAP_PROP_N_THREADS, decode_threads]
        if source.lower().startswith(("rtsp://", "rtsps://")):
            with OPTIONS_GATE.use(OPTIONS_GATE.options(transport), stop) as entered:
                if not entered:
                    return None
                cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def open_in_thread(
    opener: Callable[[], VideoSource | None], source: str, kind: str, open_timeout: float, clock: Clock
) -> tuple[VideoSource | None, str, float | None]:
    """Run ``opener`` here; the source (or ``None``), the reason, and the frame rate it declares."""
    if kind == "file" and not Path(source).is_file():
        return None, f"no such file: {source}", None
    t0 = clock.monotonic()
    try:
        src = opener()
    except cv2.error as exc:
        return None, f"cannot open: {exc}", None
    if src is None:
        took = clock.monotonic() - t0
        # OpenCV says nothing more than "not opened" here; capture processes see FFmpeg's own words.
        if kind == "file":
            why = "cannot open as video (not a video file, unsupported codec or broken header)"
        elif kind == "device":
            why = "cannot open device (missing, busy or no permission)"
        elif took >= 0.9 * open_timeout:
            why = f"no answer within open_timeout {open_timeout:g} s"
        else:
            why = f"cannot open stream after {took:.1f} s (refused, wrong path, auth or not video)"
        return None, why, None
    fps = src.get(cv2.CAP_PROP_FPS)
    return src, "opened", float(fps) if math.isfinite(fps) and 0 < fps < 1000 else None
