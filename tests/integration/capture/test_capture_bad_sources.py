"""Broken sources end in a clear log line and a state - never a crash, never a hang."""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers.rtsp import require_ffmpeg

from edge.capture import OFFLINE, ONLINE, STOPPED, Capture

pytestmark = [pytest.mark.integration, pytest.mark.timing]


def run_until_settled(cap: Capture, timeout: float) -> list[str]:
    """Start, consume frames until the reader ends or ``timeout``, stop; returns the states seen."""
    seen: list[str] = [cap.state]
    cap._on_state = lambda _c, s: seen.append(s)
    cap.start()
    deadline = time.monotonic() + timeout
    while cap.running and time.monotonic() < deadline:
        cap.take(0.2)
    t0 = time.monotonic()
    cap.stop(2.0)
    assert time.monotonic() - t0 < 2.5
    return seen


@pytest.fixture(scope="module")
def faststart_clip(clip30: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 30 fps clip with its index (moov) first, as cameras and web videos write them."""
    out = tmp_path_factory.mktemp("capture_bad") / "faststart.mp4"
    subprocess.run(
        [require_ffmpeg(), "-v", "error", "-y", "-i", str(clip30), "-c", "copy", "-movflags", "+faststart",
         str(out)],
        check=True,
        timeout=60,
    )
    return out


def test_file_truncated_midway_is_reported_as_ended_early(
    faststart_clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = faststart_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        seen = run_until_settled(Capture("cam", str(cut)), timeout=20.0)
    assert seen[-2:] == [OFFLINE, STOPPED]
    assert ONLINE in seen
    assert "file ended early after" in caplog.text
    assert "(truncated or corrupt)" in caplog.text


def test_file_with_index_cut_off_cannot_be_opened(
    clip30: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = clip30.read_bytes()  # ffmpeg's default layout: the index is at the end, so it is lost
    cut = tmp_path / "cut_noindex.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        seen = run_until_settled(Capture("cam", str(cut)), timeout=10.0)
    assert seen == ["connecting", OFFLINE, STOPPED]
    assert "not a video" in caplog.text


def test_file_corrupt_midway_keeps_going_or_ends_with_a_reason(
    faststart_clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytearray(faststart_clip.read_bytes())
    n = len(data)
    data[n // 2 : n // 2 + n // 4] = os.urandom(n // 4)  # a quarter of the media overwritten
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    cap = Capture("cam", str(bad), loop=True, backoff_base=0.05, backoff_cap=0.2)
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        seen = run_until_settled(cap, timeout=2.0)
    # With loop the camera plays what it can, reports the damage once per state change, and goes on.
    assert ONLINE in seen
    assert seen[-1] == STOPPED
    assert "(truncated or corrupt)" in caplog.text
    assert cap.frames_captured > 90


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"hello, this is not a video\n" * 100, "notes.mp4"), (None, "noise.mp4"), (None, "noise.txt")],
)
def test_non_video_file_is_offline_with_a_clear_reason(
    content: bytes | None, name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / name
    # Fixed noise: about 1 random file in 100 probes as some format (FFmpeg's h263 probe found one) and
    # is then "opened but no frame could be decoded", a clear reason too but not the one checked here.
    path.write_bytes(content if content is not None else random.Random(0).randbytes(200_000))
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        seen = run_until_settled(Capture("cam", str(path)), timeout=10.0)
    assert seen == ["connecting", OFFLINE, STOPPED]
    assert "camera=cam connecting -> offline: not a video" in caplog.text


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("where", ["refused", "silent", "bad_host"])
def test_wrong_host_or_port_is_offline_and_retried(
    where: str, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = {
        "refused": f"rtsp://viewer:Pw0rd123@127.0.0.1:{closed_port()}/stream",
        "silent": f"rtsp://viewer:Pw0rd123@127.0.0.1:{silent_port}/stream",
        "bad_host": "rtsp://viewer:Pw0rd123@no-such-camera.invalid:554/stream",
    }[where]
    cap = Capture("cam", url, open_timeout=1.0, backoff_base=0.1, backoff_cap=0.2)
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        seen = run_until_settled(cap, timeout=2.2)
    assert seen == ["connecting", OFFLINE, STOPPED]  # one line for the outage, not one per retry
    assert cap.reconnects >= 1
    text = caplog.text
    assert "camera=cam connecting -> offline:" in text
    cause = {"refused": "connection refused", "silent": "no answer within open_timeout 1 s",
             "bad_host": "not found"}[where]
    assert f"camera=cam connecting -> offline: {cause}" in text
    assert "Pw0rd123" not in text
    assert "rtsp://viewer:***@" in text
