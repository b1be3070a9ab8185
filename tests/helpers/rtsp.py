"""A real RTSP server for tests (GStreamer, via ``scripts/rtsp_serve.py``; the class is shared with the
benchmarks in ``edge/benchmarks/rtsp.py``), plus test clips made by ffmpeg.

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

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Self

import pytest

from edge.benchmarks.rtsp import SERVE_SCRIPT, free_port, system_python
from edge.benchmarks.rtsp import RtspServer as SharedRtspServer

__all__ = ["SERVE_SCRIPT", "RtspServer", "free_port", "make_clip", "require_ffmpeg", "require_rtsp"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = system_python()


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


class RtspServer(SharedRtspServer):
    """The RTSP server of the tests: :class:`edge.benchmarks.rtsp.RtspServer` (the one the benchmarks use
    too), skipping, or failing under CI, when GStreamer's RTSP server is missing."""

    def start(self) -> Self:
        require_rtsp()
        return super().start()
