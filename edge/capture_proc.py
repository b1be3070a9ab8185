"""The daemon's side of a camera's capture process (see :mod:`edge.capture_worker` for the child).

:class:`WorkerProcess` starts the child, asks it to open the source, receives its messages with a timeout,
copies frames out of the shared slots, and kills it - the only way to end a native call that hangs. It is
used by one thread only, the camera's reader thread in :class:`edge.capture.Capture`; that thread starts the
child, so ``PR_SET_PDEATHSIG`` also ends the child when the reader thread ends.

Native output of the child (FFmpeg/OpenCV lines) arrives as messages and is logged on
``edge.capture.native`` at DEBUG with the camera name. While the camera is online, error lines (e.g.
decode errors) are also logged as WARNING, at most one per ``native_warn_interval`` seconds with a count
of those left out: the cause of a failed open is already in the state-change line, so the journal stays
one line per state change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.capture_core import native_level, strip_native_prefix
from edge.capture_worker import HEADER
from edge.clock import Clock
from edge.logs import redact_url

native_log = logging.getLogger("edge.capture.native")

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class WorkerGone(Exception):  # noqa: N818 - an expected event, not an error class of the project
    """The capture process ended (crashed, was killed, or closed its socket)."""


class WorkerProcess:
    """One camera's capture child: spawn, open, receive, copy frames out, kill.

    Args:
        camera: camera name (log lines, the child's command line).
        clock: monotonic time for receive deadlines and the warning rate limit.
        native_warn_interval: seconds between WARNING lines of native errors while online. Lower shows
            more of a misbehaving stream's errors; higher keeps the journal quieter.
        scrub: masks credentials in native lines before they are logged.
        launcher: forks the child from a pre-imported process (milliseconds) instead of starting a
            Python interpreter (~0.15 s of CPU, seconds on a loaded machine); ``None`` = start one.
    """

    def __init__(
        self,
        camera: str,
        clock: Clock,
        *,
        native_warn_interval: float = 60.0,
        scrub: Callable[[str], str] = redact_url,
        launcher: CaptureLauncher | None = None,
    ) -> None:
        self.camera = camera
        self._launcher = launcher
        self._scrub = scrub
        self._clock = clock
        self._warn_interval = native_warn_interval
        self._warned_at: float | None = None
        self._suppressed = 0
        self.online = False  # set by the reader: native errors become warnings only while online
        self.proc: subprocess.Popen[bytes] | ForkedProcess | None = None
        self._sock: socket.socket | None = None
        self._mm: mmap.mmap | None = None
        self._slot_bytes = 0
        self._headers: list[npt.NDArray[np.int64]] = []
        self._pending: deque[dict[str, Any]] = deque()
        self._gone: str | None = None  # why the child ended, noticed while draining frames
        self.spawns = 0

    # -- lifetime --------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._sock is not None

    def spawn(self) -> None:
        """Start the child (``OSError`` if it cannot be started at all)."""
        self.kill()
        if self._launcher is not None:
            pid, sock = self._launcher.launch(self.camera)
            self.proc = ForkedProcess(pid, self._launcher.pid)
            self._sock = sock
            self._pending.clear()
            self._gone = None
            self.spawns += 1
            return
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        # The child runs the same edge as this process, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        try:
            cmd = [sys.executable, "-m", "edge.capture_worker", "--fd", str(child_sock.fileno()),
                   "--parent", str(os.getpid()), "--camera", self.camera]
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                cmd, pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, env=env, close_fds=True,
            )
        except OSError:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self._sock = parent_sock
        self._pending.clear()
        self._gone = None
        self.spawns += 1

    def kill(self) -> None:
        """End the child now (SIGKILL: it holds nothing that needs a clean shutdown) and reap it."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            if proc.stderr is not None:
                proc.stderr.close()
            self.proc = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._unmap()
        self._pending.clear()
        self._gone = None

    def _unmap(self) -> None:
        self._headers = []
        if self._mm is not None:
            with contextlib.suppress(BufferError):  # a view still alive: the GC frees it later
                self._mm.close()
            self._mm = None
        self._slot_bytes = 0

    def death_reason(self) -> str:
        """Why the child ended: its exit status and the last line it printed before its own redirect."""
        proc = self.proc
        if proc is None:
            return "capture process not running"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1.0)
        code = proc.returncode
        tail = ""
        if proc.stderr is not None and code is not None:
            with contextlib.suppress(OSError, ValueError):
                lines = proc.stderr.read(8192).decode(errors="replace").strip().splitlines()
                tail = f": {lines[-1]}" if lines else ""
        if isinstance(proc, ForkedProcess):
            return "capture process ended" if code is not None else "capture process closed its socket"
        if code is None:
            return "capture process closed its socket"
        if code < 0:
            return f"capture process killed by signal {-code}{tail}"
        return f"capture process exited with status {code}{tail}"

    # -- messages --------------------------------------------------------------------------------------------

    def send(self, msg: dict[str, Any]) -> None:
        if self._sock is None:
            raise WorkerGone("capture process not running")
        try:
            self._sock.send(json.dumps(msg).encode())
        except OSError as exc:
            raise WorkerGone(self.death_reason()) from exc

    def recv(self, timeout: float) -> dict[str, Any] | None:
        """The next ``opened``/``failed``/``frame``/``end`` message, or ``None`` after ``timeout`` s.

        ``buffer`` and ``log`` messages are handled here. Raises :class:`WorkerGone` when the child ended.
        """
        if self._pending:
            return self._pending.popleft()
        if self._gone is not None:
            raise WorkerGone(self._gone)
        deadline = self._clock.monotonic() + timeout
        while True:
            msg = self._recv_one(max(0.0, deadline - self._clock.monotonic()))
            if msg is None:
                return None
            if self._handle(msg):
                return msg

    def recv_until(self, stop: threading.Event, timeout: float) -> dict[str, Any] | None:
        """:meth:`recv` within ``timeout`` s, looking at ``stop`` every 0.25 s (``None`` once it is set)."""
        deadline = self._clock.monotonic() + timeout
        while not stop.is_set():
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return None
            msg = self.recv(min(0.25, left))
            if msg is not None:
                return msg
        return None

    def newest_frame(self, msg: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``msg`` or a newer frame message already waiting; and how many older frame messages were skipped.

        A non-frame message behind them (``end``) stays queued for the next :meth:`recv`.
        """
        skipped = 0
        while not self._pending and self._gone is None:
            try:
                nxt = self._recv_one(0.0)
            except WorkerGone as exc:  # this frame is still good: the next recv reports the end
                self._gone = str(exc)
                break
            if nxt is None:
                break
            if not self._handle(nxt):
                continue
            if nxt.get("t") == "frame":
                skipped += 1
                # fps-cap drops reported with the skipped message travel on with the newest one
                nxt["capped"] = int(nxt.get("capped", 0)) + int(msg.get("capped", 0))
                msg = nxt
            else:
                self._pending.append(nxt)
        return msg, skipped

    def _recv_one(self, timeout: float) -> dict[str, Any] | None:
        sock = self._sock
        if sock is None:
            raise WorkerGone("capture process not running")
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return None
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 2)
        except OSError as exc:
            raise WorkerGone(self.death_reason()) from exc
        if not data:
            for fd in fds:
                os.close(fd)
            raise WorkerGone(self.death_reason())
        msg: dict[str, Any] = json.loads(data)
        if fds:
            msg["_fd"] = fds[0]
            for extra in fds[1:]:
                os.close(extra)
        return msg

    def _handle(self, msg: dict[str, Any]) -> bool:
        """Handle ``buffer``/``log`` here; True for the messages the reader acts on."""
        kind = msg.get("t")
        if kind == "buffer":
            fd = int(msg["_fd"])
            try:
                self._unmap()
                slot_bytes = int(msg["slot_bytes"])
                slots = int(msg["slots"])
                self._mm = mmap.mmap(fd, slots * (HEADER + slot_bytes), prot=mmap.PROT_READ)
                self._slot_bytes = slot_bytes
                self._headers = [
                    np.ndarray((1,), np.int64, buffer=self._mm, offset=i * (HEADER + slot_bytes))
                    for i in range(slots)
                ]
            finally:
                os.close(fd)
            return False
        if kind == "log":
            self._native(str(msg.get("line", "")))
            return False
        return True

    def _native(self, line: str) -> None:
        text = self._scrub(strip_native_prefix(line))
        native_log.debug("camera=%s %s", self.camera, text)
        if not self.online or native_level(line) < logging.ERROR:
            return
        now = self._clock.monotonic()
        if self._warned_at is not None and now - self._warned_at < self._warn_interval:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} similar lines left out)" if self._suppressed else ""
        native_log.warning("camera=%s decoder: %s%s", self.camera, text, more)
        self._warned_at = now
        self._suppressed = 0

    # -- frames ----------------------------------------------------------------------------------------------

    def copy_frame(
        self, msg: dict[str, Any], spare: npt.NDArray[np.uint8] | None
    ) -> npt.NDArray[np.uint8] | None:
        """The frame of ``msg`` copied out of its slot (into ``spare`` when it fits); ``None`` if the child
        overwrote the slot before or while it was copied."""
        mm = self._mm
        slot = int(msg["slot"])
        seq = int(msg["seq"])
        if mm is None or slot >= len(self._headers):
            return None
        header = self._headers[slot]
        if int(header[0]) != seq:
            return None
        shape = tuple(int(x) for x in msg["shape"])
        src: npt.NDArray[np.uint8] = np.ndarray(
            shape, np.uint8, buffer=mm, offset=slot * (HEADER + self._slot_bytes) + HEADER
        )
        out = spare if spare is not None and spare.shape == shape else np.empty(shape, np.uint8)
        np.copyto(out, src)
        del src
        if int(header[0]) != seq:
            return None
        return out


class ForkedProcess:
    """The part of ``Popen`` :class:`WorkerProcess` uses, for a child forked by a :class:`CaptureLauncher`.

    The launcher's kernel reaps it, so its exit status is unknown: ``returncode`` is ``-1`` once it is
    gone. A pid is only trusted while its parent is still the launcher (no pid reuse surprises).
    """

    stderr = None

    def __init__(self, pid: int, launcher_pid: int) -> None:
        self.pid = pid
        self._launcher_pid = launcher_pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
                gone = fields[0] == "Z" or int(fields[1]) != self._launcher_pid
            except (OSError, IndexError, ValueError):
                gone = True
            if gone:
                self.returncode = -1
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"capture process {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        return code


class CaptureLauncher:
    """A fork server for capture processes: one pre-started process with OpenCV imported forks them.

    Starting a capture process the plain way costs a Python start-up plus the OpenCV import, ~0.15 s of
    CPU, which a 2-core machine at load average 10 stretched to 1.8 s before the camera even began to
    open. A fork of the launcher takes milliseconds. One launcher serves every camera of a daemon; give
    the same one to each :class:`~edge.capture.Capture`. Its process dies with the daemon: it is started
    from the launcher's own thread, which lives until :meth:`close` (``PR_SET_PDEATHSIG`` follows the
    thread that started a process), and the capture processes die with it. If it dies it is started
    again at the next launch.

    Args:
        start_timeout: seconds to wait for the launcher's answer to a request. Lower gives up sooner on
            a wedged launcher (the camera then retries with its backoff).
    """

    def __init__(self, start_timeout: float = 10.0) -> None:
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._keep = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else -1

    def _start(self) -> None:
        """Start the launcher process from a new thread that stays alive with it."""
        self._stop_process()
        started = threading.Event()
        keep = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
            env["OPENBLAS_NUM_THREADS"] = "1"  # no thread may exist when the launcher forks
            try:
                box["proc"] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    [sys.executable, "-m", "edge.capture_worker", "--launcher", "--fd",
                     str(child_sock.fileno()), "--parent", str(os.getpid())],
                    pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env=env, close_fds=True,
                )
                box["sock"] = parent_sock
            except OSError as exc:
                parent_sock.close()
                box["error"] = exc
            finally:
                child_sock.close()
                started.set()
            keep.wait()

        thread = threading.Thread(target=run, name="capture-launcher", daemon=True)
        thread.start()
        started.wait()
        if "error" in box:
            keep.set()
            raise box["error"]
        self._proc, self._sock, self._keep, self._thread = box["proc"], box["sock"], keep, thread

    def start(self) -> None:
        """Start the launcher process now (else at the first launch), so no camera waits for it."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def launch(self, camera: str) -> tuple[int, socket.socket]:
        """Fork a capture process for ``camera``: its pid and the daemon's end of its socket."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or self._sock is None:
                self._start()
            assert self._sock is not None
            parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                socket.send_fds(self._sock, [camera.encode() or b"-"], [child_sock.fileno()])
                ready, _, _ = select.select([self._sock], [], [], self.start_timeout)
                data = self._sock.recv(4096) if ready else b""
            except OSError as exc:
                parent_sock.close()
                self._stop_process()
                raise OSError(f"capture launcher failed: {exc}") from exc
            finally:
                child_sock.close()
            if not data:
                parent_sock.close()
                self._stop_process()
                raise OSError("capture launcher did not answer")
            return int(json.loads(data)["pid"]), parent_sock

    def _stop_process(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5.0)
            self._proc = None
        self._keep.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None

    def close(self) -> None:
        """End the launcher (capture processes it forked die with it: stop their cameras first)."""
        with self._lock:
            self._stop_process()
