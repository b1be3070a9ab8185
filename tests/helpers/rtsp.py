"""A real RTSP server for tests (GStreamer, via ``scripts/rtsp_serve.py``), plus test clips made by ffmpeg.

``RtspServer`` runs the server as a subprocess under Debian's ``/usr/bin/python3`` (which has ``gi``; the
venv does not) on a free port of 127.0.0.1, waits for its ``READY`` lines, and can kill and restart it on
the *same* port, so a client sees a camera that went away and came back::

    clip = make_clip(video_dir / "pedestrians.mp4", tmp_path / "c.mp4", fps=30, seconds=6)
    with RtspServer(clip) as server:
        url = server.url()             # rtsp://127.0.0.1:PORT/stream
        server.stop()                  # SIGKILL: a crash, the connection drops
        server.start()                 # same port, same paths

``require_rtsp()`` / ``require_ffmpeg()`` fail under ``CI=true`` and skip elsewhere when the parts are
missing, like ``tests/conftest.py``'s ``require()``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO_ROOT / "scripts" / "rtsp_serve.py"
SYSTEM_PYTHON = os.environ.get("EDGE_RTSP_PYTHON", "/usr/bin/python3")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(message: str) -> None:
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def _rtsp_problem() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "missing = [e for e in ('x264enc', 'rtph264pay', 'h264parse', 'parsebin', 'appsrc', 'qtdemux') "
        "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))"
    )
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    if out.returncode != 0:
        return "GStreamer RTSP server for python3 is missing (python3-gi, gir1.2-gst-rtsp-server-1.0)"
    if out.stdout.strip():
        return f"GStreamer elements missing: {out.stdout.strip()} (gstreamer1.0-plugins-good/bad/ugly)"
    return None


def require_rtsp() -> None:
    """Fail under CI, skip elsewhere, when the GStreamer RTSP server cannot run."""
    problem = _rtsp_problem()
    if problem is not None:
        _missing(f"{problem} (.ci/run installs it)")


def require_ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        _missing("required program 'ffmpeg' is not installed (.ci/run installs it)")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_clip(
    src: Path,
    dst: Path,
    *,
    fps: float = 30.0,
    width: int = 640,
    height: int = 360,
    seconds: float = 6.0,
    gop: int | None = None,
    bitrate: str | None = None,
) -> Path:
    """Encode ``src`` into a constant-rate H.264 (baseline, no B-frames) clip the server passes through.

    ``gop`` defaults to one key frame per second, so a client (re)connecting waits at most a second for
    its first picture. The source is looped if it is shorter than ``seconds``.
    """
    ffmpeg = require_ffmpeg()
    if dst.exists():
        return dst
    g = gop if gop is not None else round(fps)
    cmd = [
        ffmpeg, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", f"{seconds}",
        "-vf", f"scale={width}:{height},fps={fps}", "-an", "-c:v", "libx264", "-preset", "veryfast",
        "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", str(g), "-keyint_min", str(g),
        "-sc_threshold", "0",
    ]
    if bitrate is not None:
        cmd += ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    tmp = dst.with_name(dst.stem + ".part" + dst.suffix)
    subprocess.run([*cmd, str(tmp)], check=True, timeout=300)
    tmp.replace(dst)
    return dst


class RtspServer:
    """``scripts/rtsp_serve.py`` as a subprocess that can be killed and restarted on the same port.

    Args:
        files: one file, or several (served on ``paths``, default ``/stream`` or ``/stream0``, ...).
        paths: mount paths, one per file.
        port: fixed port; default a free one chosen at the first start and kept for restarts.
        encode: ``auto`` (pass H.264 without B-frames through, else x264), ``copy`` or ``x264``.
        ready_timeout: seconds to wait for the READY lines.
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

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """Start (or restart on the same port) and wait until every path is ready."""
        require_rtsp()
        if self.running:
            return self
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
        cmd = [SYSTEM_PYTHON, str(SERVE_SCRIPT), *map(str, self.files), "--port", str(self.port)]
        cmd += ["--encode", self.encode]
        for p in self.paths:
            cmd += ["--path", p]
        stderr_path = (self.log_dir or Path("/tmp")) / f"rtsp_serve_{os.getpid()}_{self.port}.log"
        with stderr_path.open("a") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
            )
        proc = self.proc
        assert proc.stdout is not None
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
