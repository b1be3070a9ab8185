"""Fixtures for capture's integration tests: 30 fps test clips and real RTSP servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.rtsp import RtspServer, make_clip, require_rtsp

from edge.benchmarks.rtsp import SilentServer


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts every connection and never says a word (a wedged camera or NVR)."""
    with SilentServer() as silent:
        yield silent.port


@pytest.fixture(scope="session")
def clip30(video_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s, 30 fps, 640x360 H.264 clip (key frame every second) made from a shared video."""
    out = tmp_path_factory.mktemp("capture_clips") / "pedestrians_30fps.mp4"
    return make_clip(video_dir / "pedestrians.mp4", out, fps=30, seconds=6)


@pytest.fixture(scope="session")
def clip30_b(video_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second 30 fps clip, from another shared video, for the second camera."""
    out = tmp_path_factory.mktemp("capture_clips_b") / "cars_30fps.mp4"
    return make_clip(video_dir / "car-detection.mp4", out, fps=30, seconds=6)


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[Callable[..., RtspServer]]:
    """Factory: ``rtsp_server(clip)`` starts a server on a free port; all are stopped at teardown."""
    require_rtsp()
    servers: list[RtspServer] = []

    def start(*files: Path, **kwargs: object) -> RtspServer:
        server = RtspServer(list(files), log_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for s in servers:
        s.resume()
        s.stop(crash=False)
