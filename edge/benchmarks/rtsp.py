"""One RTSP test server for the tests and the benchmarks: ``scripts/rtsp_serve.py`` as a subprocess.

The server (GStreamer) runs under Debian's ``/usr/bin/python3``, which has ``gi`` (the venv does not;
``EDGE_RTSP_PYTHON`` overrides it), on a free port of 127.0.0.1. :class:`RtspServer` waits for its
``READY`` lines, and can pause it (SIGSTOP: frozen cameras), kill it and start it again on the *same*
port, so a client sees a camera that went away and came back::

    with RtspServer(clip) as server:
        url = server.url()             # rtsp://127.0.0.1:PORT/stream
        server.stop()                  # SIGKILL: a crash, the connection drops
        server.start()                 # same port, same paths

``tests/helpers/rtsp.py`` adds the pytest side (skip, or fail under CI, when GStreamer is missing);
``edge bench pipeline`` serves its N cameras with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO_ROOT / "scripts" / "rtsp_serve.py"


def system_python() -> str:
    """The interpreter that runs the server (it needs ``gi``)."""
    return os.environ.get("EDGE_RTSP_PYTHON", "/usr/bin/python3")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """``scripts/rtsp_serve.py`` serving ``files`` as looping live streams.

    Args:
        files: one file, or several (served on ``paths``, default ``/stream`` or ``/stream0``, ...).
        paths: mount paths, one per file.
        port: fixed port; default a free one chosen at the first start and kept for restarts.
        encode: ``auto`` (pass H.264 without B-frames through, else x264), ``copy`` or ``x264``.
        ready_timeout: seconds to wait for the READY lines. Longer tolerates a loaded machine; shorter
            reports a broken server sooner.
        log_dir: where the server's stderr goes (``rtsp_serve_<pid>_<port>.log``; default ``/tmp``).
    """

    def __init__(
        self,
        files: Path | Sequence[Path],
        *,
        paths: Sequence[str] | None = None,
        port: int | None = None,
        encode: str = "auto",
        ready_timeout: float = 30.0,
        log_dir: Path | None = None,
    ) -> None:
        self.files = [files] if isinstance(files, Path) else list(files)
        if paths is None:
            paths = ["/stream"] if len(self.files) == 1 else [f"/stream{i}" for i in range(len(self.files))]
        if len(paths) != len(self.files):
            raise ValueError("one path per file")
        self.paths = list(paths)
        self._fixed_port = port
        self.port = port or 0
        self.encode = encode
        self.ready_timeout = ready_timeout
        self.log_dir = log_dir
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self._reader: threading.Thread | None = None

    def url(self, path: str | None = None, *, user: str | None = None, password: str | None = None) -> str:
        p = self.paths[0] if path is None else (path if path.startswith("/") else "/" + path)
        auth = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{p}"

    def urls(self) -> list[str]:
        """Every path's URL, in order."""
        return [self.url(p) for p in self.paths]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return (self.log_dir or Path("/tmp")) / f"rtsp_serve_{os.getpid()}_{self.port}.log"  # noqa: S108

    def start(self) -> Self:
        """Start (or restart on the same port) and wait until every path is ready; ``RuntimeError`` if not."""
        if self.running:
            return self
        if not SERVE_SCRIPT.exists():
            raise RuntimeError(f"{SERVE_SCRIPT} not found (the RTSP server runs from a source checkout)")
        tries = 1 if (self._fixed_port or self.starts) else 5
        last_error = ""
        for _ in range(tries):
            if not (self._fixed_port or self.starts):
                self.port = free_port()
            ok, last_error = self._spawn()
            if ok:
                self.starts += 1
                return self
        msg = f"RTSP server did not start on port {self.port}: {last_error}"
        raise RuntimeError(msg)

    def _spawn(self) -> tuple[bool, str]:
        cmd = [system_python(), str(SERVE_SCRIPT), *map(str, self.files), "--port", str(self.port)]
        cmd += ["--encode", self.encode]
        for p in self.paths:
            cmd += ["--path", p]
        stderr_path = self.log_path
        with stderr_path.open("a") as err:
            self.proc = subprocess.Popen(  # noqa: S603 - argv list of our own script and files, no shell
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
            )
        proc = self.proc
        ready: list[str] = []
        done = threading.Event()

        def reader() -> None:
            assert proc.stdout is not None
            with proc.stdout:  # closed here at EOF, when the server exits
                for line in proc.stdout:
                    if line.startswith("READY "):
                        ready.append(line.split()[1])
                        if len(ready) == len(self.paths):
                            done.set()
            done.set()

        self._reader = threading.Thread(target=reader, name="rtsp-server-stdout", daemon=True)
        self._reader.start()
        done.wait(self.ready_timeout)
        if len(ready) == len(self.paths) and proc.poll() is None:
            return True, ""
        self._kill(signal.SIGKILL)
        tail = ""
        with contextlib.suppress(OSError):
            tail = stderr_path.read_text()[-2000:]
        return False, tail

    def _kill(self, sig: int) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
                proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        self.proc = None

    def stop(self, *, crash: bool = True) -> None:
        """Stop the server: SIGKILL by default (a camera that dies), SIGTERM with ``crash=False``."""
        self._kill(signal.SIGKILL if crash else signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the server hangs with its connections open (a frozen camera)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, *, down_s: float = 0.0) -> None:
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.resume()
        self.stop(crash=False)


class SilentServer:
    """A TCP port on 127.0.0.1 that accepts every connection and never says a word: a wedged camera or
    NVR, whose RTSP or HTTP open hangs until the client's own timeout.

        with SilentServer() as silent:
            Capture("stuck", f"rtsp://127.0.0.1:{silent.port}/x")
    """

    def __init__(self, backlog: int = 64) -> None:
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(backlog)
        self._srv.settimeout(0.1)
        self.port = int(self._srv.getsockname()[1])
        self._done = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                self._conns.append(self._srv.accept()[0])  # kept open, never answered
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        for conn in self._conns:
            conn.close()
        self._srv.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
