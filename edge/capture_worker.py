"""The capture child process: one per camera, so no camera's open, read or decode can block another's.

Started by :class:`edge.capture_proc.WorkerProcess` as ``python -m edge.capture_worker --fd N --parent PID``
with one end of a ``SOCK_SEQPACKET`` socket pair (message boundaries kept, file descriptors passable).
It imports only OpenCV, NumPy and :mod:`edge.capture_core` - never the daemon - so it starts in ~0.2 s.

Why a process: OpenCV's FFmpeg backend serialises opens inside one process (an open that hangs on a
silent host held every other camera's open for its whole timeout, 9.5 s for a local file in the issue), and
``OPENCV_FFMPEG_CAPTURE_OPTIONS`` is process-wide. A process per camera has neither problem, takes decode
off the daemon's GIL, and can be killed when a native call hangs - a thread cannot.

Protocol (JSON messages; ``t`` is the type)::

    parent -> child  {"t": "open", "source": ..., "kind": ..., "fps": ..., ...}
    child -> parent  {"t": "opened", "fps": 30.0, "frames": 0.0}  or  {"t": "failed", "cause", "reason"}
    child -> parent  {"t": "buffer", "slot_bytes": N, "slots": K}  + the memfd (SCM_RIGHTS)
    child -> parent  {"t": "frame", "slot": i, "seq": s, "pos": 1.23, "shape": [h, w, c], "capped": k}
    child -> parent  {"t": "end", "kind": "eof"|"truncated"|"error"|"stall", "reason": ...}
    child -> parent  {"t": "log", "level": 30, "line": ...}      native FFmpeg/OpenCV output

Frames travel through a ``memfd`` of ``K`` slots, each an 8-byte sequence header and the BGR image. The
child decodes straight into the next slot (``retrieve`` into a view of it) and writes the header last,
``-1`` while writing, so the parent can tell a slot that was overwritten while it copied (a seqlock). A
memfd rather than a named ``multiprocessing.shared_memory`` block: it has no name to leak in ``/dev/shm``
when the daemon is SIGKILLed, and needs no resource-tracker process.

The child dies with its parent: ``PR_SET_PDEATHSIG`` (SIGKILL), and it also exits when the socket to the
parent closes. Its stdout/stderr (where FFmpeg and OpenCV print) go into a pipe read by a thread here:
lines are kept for the cause of a failed open and forwarded to the parent, which logs them rate-limited
with the camera name. Nothing native reaches the daemon's stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import mmap
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from typing import Any

from edge.capture_core import FpsCap, classify_open_failure, read_failure

SLOTS = 3
HEADER = 8
_PR_SET_PDEATHSIG = 1
# FFmpeg warnings (24) carry the HTTP/RTSP status lines that name a cause (404, 401); info and debug
# would flood the pipe. OpenCV's own warnings are mostly noise about backends, so only errors.
_ENV_DEFAULTS = {"OPENCV_FFMPEG_LOGLEVEL": "24", "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_VIDEOIO_DEBUG": "0"}


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the thread that started it (the camera's reader) or its process dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


class _NativeOutput:
    """Owns fds 1 and 2: FFmpeg/OpenCV print there; lines are kept and forwarded to the parent."""

    def __init__(self, send: Any) -> None:
        self._send = send
        r, w = os.pipe()
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(w)
        self._r = r
        self._cond = threading.Condition()
        self._lines: deque[str] = deque(maxlen=64)
        self._marks = 0
        self._thread = threading.Thread(target=self._pump, name="native-output", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with os.fdopen(self._r, "r", encoding="utf-8", errors="replace") as f:
            for raw in f:
                line = raw.rstrip()
                if not line:
                    continue
                if line == "\x00edge-mark":
                    with self._cond:
                        self._marks += 1
                        self._cond.notify_all()
                    continue
                with self._cond:
                    self._lines.append(line)
                with contextlib.suppress(OSError):
                    self._send({"t": "log", "line": line})

    def clear(self) -> None:
        with self._cond:
            self._lines.clear()

    def since_clear(self, timeout: float = 0.5) -> list[str]:
        """The lines printed since :meth:`clear`, after everything printed so far has been read."""
        with self._cond:
            target = self._marks + 1
        os.write(2, b"\x00edge-mark\n")
        with self._cond:
            self._cond.wait_for(lambda: self._marks >= target, timeout)
            return list(self._lines)


class _Child:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        self.native = _NativeOutput(self.send)
        # Imported after fds 1/2 point at the pipe, so OpenCV's first messages are caught too.
        import cv2  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415

        self.cv2 = cv2
        self.np = np
        self._mm: mmap.mmap | None = None
        self._slot_bytes = 0
        self._next_slot = 0
        self._headers: Any = None

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        data = json.dumps(msg).encode()
        with self._send_lock:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.send(data)

    def recv(self) -> dict[str, Any] | None:
        data = self.sock.recv(65536)
        if not data:
            return None
        msg: dict[str, Any] = json.loads(data)
        return msg

    def parent_gone(self) -> bool:
        """True when the parent closed its end (checked between frames, without blocking)."""
        try:
            data = self.sock.recv(65536, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return not data

    def serve(self) -> int:
        while True:
            msg = self.recv()
            if msg is None:
                return 0
            if msg.get("t") == "open":
                self.run_source(msg)

    # -- one open + read loop ------------------------------------------------------------------------------

    def _open(self, cfg: dict[str, Any]) -> Any:
        cv2 = self.cv2
        source = str(cfg["source"])
        kind = cfg["kind"]
        if kind == "device":
            index: int | str = int(source) if source.isdigit() else source
            return cv2.VideoCapture(index, cv2.CAP_V4L2)
        if source.lower().startswith(("rtsp://", "rtsps://")):
            # Process-wide in OpenCV, but this process has one camera: no gate needed. fpsprobesize 0:
            # FFmpeg otherwise decodes ~1 s of frames during open only to estimate the frame rate
            # (open 1.7 s -> 0.45 s on a 30 fps test camera, on every reconnect); the rate then comes
            # from the stream's own timing info, and where it has none capture reports no source fps.
            # The operator's options come after it (and may set it back); the configured transport last.
            base = cfg.get("base_options") or ""
            parts = ["fpsprobesize;0", base, f"rtsp_transport;{cfg['transport']}"]
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join(p for p in parts if p)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(float(cfg["open_timeout"]) * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(float(cfg["read_timeout"]) * 1000),
        ]
        if int(cfg.get("decode_threads", 0)) > 0:
            params += [cv2.CAP_PROP_N_THREADS, int(cfg["decode_threads"])]
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)

    def run_source(self, cfg: dict[str, Any]) -> None:
        self.native.clear()
        t0 = time.monotonic()
        cap = self._open(cfg)
        took = time.monotonic() - t0
        if not cap.isOpened():
            cap.release()
            lines = self.native.since_clear()
            if cfg["kind"] == "device":
                cause, reason = "not found", "cannot open device (missing, busy or no permission)"
            else:
                cause, reason = classify_open_failure(lines, took, float(cfg["open_timeout"]), cfg["kind"])
            self.send({"t": "failed", "cause": cause, "reason": reason, "took": round(took, 3)})
            return
        fps = cap.get(self.cv2.CAP_PROP_FPS)
        frames = cap.get(self.cv2.CAP_PROP_FRAME_COUNT) if cfg["kind"] == "file" else 0.0
        source_fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else None
        self.send({"t": "opened", "fps": source_fps, "frames": frames, "took": round(took, 3)})
        try:
            kind, reason = self._read(cap, cfg, source_fps, frames)
        finally:
            cap.release()
        self.send({"t": "end", "kind": kind, "reason": reason})

    def _slot_view(self, shape: tuple[int, ...]) -> tuple[int, Any]:
        """The next slot as an image array of ``shape``, reallocating the memfd when it does not fit."""
        np = self.np
        nbytes = int(np.prod(shape))
        if self._mm is None or nbytes > self._slot_bytes:
            slot_bytes = nbytes
            fd = os.memfd_create("edge-capture", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, SLOTS * (HEADER + slot_bytes))
                mm = mmap.mmap(fd, SLOTS * (HEADER + slot_bytes))
                self.send({"t": "buffer", "slot_bytes": slot_bytes, "slots": SLOTS}, [fd])
            finally:
                os.close(fd)
            if self._mm is not None:
                self._headers = None
                with contextlib.suppress(BufferError):
                    self._mm.close()
            self._mm = mm
            self._slot_bytes = slot_bytes
            self._headers = [
                np.ndarray((1,), np.int64, buffer=mm, offset=i * (HEADER + slot_bytes)) for i in range(SLOTS)
            ]
            self._next_slot = 0
        i = self._next_slot
        self._next_slot = (i + 1) % SLOTS
        view = np.ndarray(shape, np.uint8, buffer=self._mm, offset=i * (HEADER + self._slot_bytes) + HEADER)
        return i, view

    def _read(
        self, cap: Any, cfg: dict[str, Any], source_fps: float | None, expected: float
    ) -> tuple[str, str]:
        cv2 = self.cv2
        np = self.np
        kind = cfg["kind"]
        is_file = kind == "file"
        read_timeout = float(cfg["read_timeout"])
        realtime = bool(cfg.get("realtime")) and is_file
        fps_cap = FpsCap(float(cfg["fps"]), source_fps) if cfg.get("fps") else None
        period = 1.0 / source_fps if source_fps else 1.0 / 30.0
        n = 0
        seq = 0
        capped = 0
        pace_base = 0.0
        shape: tuple[int, ...] | None = None
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w > 0 and h > 0:
            shape = (h, w, 3)
        while True:
            if n % 8 == 0 and self.parent_gone():
                return "stop", "parent gone"
            t_read = time.monotonic()
            ok = cap.grab()
            mono = time.monotonic()
            if not ok:
                outcome = read_failure(kind, n, expected, mono - t_read, read_timeout)
                return outcome.kind, outcome.reason
            if not is_file and mono - t_read >= 0.9 * read_timeout:
                # FFmpeg's interrupt cut this read short; what it returns is a flushed partial picture.
                return "stall", f"no frame for {mono - t_read:.1f} s"
            if realtime:
                if n == 0:
                    pace_base = mono
                due = pace_base + n * period
                if due > mono:
                    time.sleep(due - mono)
            n += 1
            if fps_cap is not None:
                pos = cap.get(cv2.CAP_PROP_POS_MSEC)
                if not fps_cap.accept(pos / 1000.0 if math.isfinite(pos) else math.nan):
                    capped += 1
                    continue  # skip retrieve: no colour conversion for a frame nobody sees
            if shape is None:
                ok, image = cap.retrieve()
                if not ok or image is None:
                    return "error", "decoded frame could not be retrieved"
                shape = (image.shape[0], image.shape[1], 3)
            slot, view = self._slot_view(shape)
            header = self._headers[slot]
            header[0] = -1
            ok, image = cap.retrieve(view)
            if not ok or image is None:
                return "error", "decoded frame could not be retrieved"
            if image.ndim == 2:  # grey sources (some V4L2 devices)
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if image.shape != shape or image.ctypes.data != view.ctypes.data:
                if image.shape != shape:
                    shape = (image.shape[0], image.shape[1], 3)
                    slot, view = self._slot_view(shape)
                    header = self._headers[slot]
                    header[0] = -1
                np.copyto(view, image)
            header[0] = seq
            self.send({
                "t": "frame", "slot": slot, "seq": seq, "shape": list(shape), "capped": capped,
                "mono": mono, "wall": time.time(),
            })
            seq += 1
            capped = 0


def _serve(sock: socket.socket) -> int:
    try:
        return _Child(sock).serve()
    except (BrokenPipeError, ConnectionResetError):
        return 0


def _launcher(sock: socket.socket) -> int:
    """Fork server (``--launcher``): import OpenCV once, then fork one capture process per request.

    A request is a camera name with one end of a new socket pair (SCM_RIGHTS); the answer is the pid.
    Nothing here starts a thread before forking (OpenBLAS is held to one thread by the daemon), and the
    kernel reaps the children (SIGCHLD ignored). Each child dies with this process (PR_SET_PDEATHSIG).
    """
    import cv2  # noqa: F401, PLC0415 - imported once here (with NumPy), inherited by every fork

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    me = os.getpid()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
        except OSError:
            return 0
        if not data:
            return 0
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:  # the capture process
            code = 1
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _die_with_parent(me)
                code = _serve(socket.socket(fileno=fds[0]))
            finally:
                os._exit(code)
        os.close(fds[0])
        sock.send(json.dumps({"pid": pid}).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge.capture_worker", description="one camera's capture process")
    parser.add_argument("--fd", type=int, required=True, help="this end of the SOCK_SEQPACKET pair")
    parser.add_argument("--parent", type=int, required=True, help="pid of the daemon")
    parser.add_argument("--camera", default="", help="camera name (shows in ps)")
    parser.add_argument("--launcher", action="store_true", help="fork capture processes on request")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    sock = socket.socket(fileno=args.fd)
    return _launcher(sock) if args.launcher else _serve(sock)


if __name__ == "__main__":
    sys.exit(main())
