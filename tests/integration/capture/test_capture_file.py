"""Local files: real-time pacing with loop (demos) and lossless as-fast-as-possible reading (tools)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers.rtsp import make_clip

from edge.capture import ONLINE, STOPPED, Capture

pytestmark = [pytest.mark.integration, pytest.mark.timing]


@pytest.fixture(scope="module")
def short_clip(video_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("capture_file") / "short_30fps.mp4"
    return make_clip(video_dir / "pedestrians.mp4", out, fps=30, seconds=1.5)


def test_realtime_loop_plays_at_the_file_rate_across_the_end(short_clip: Path) -> None:
    seen: list[str] = []
    cap = Capture("demo", str(short_clip), realtime=True, loop=True, on_state=lambda _c, s: seen.append(s))
    cap.start()
    try:
        first = cap.take(10.0)  # the capture process starts first (~0.2 s, more on a loaded machine)
        assert first is not None
        taken = [first]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:
            f = cap.take(1.0)
            assert f is not None
            taken.append(f)
        fps = cap.fps_estimate
        captured = cap.frames_captured
    finally:
        cap.stop(2.0)
    assert seen == [ONLINE, STOPPED]  # looping is not an outage
    assert captured > 45 + 30  # went past the end of the 45-frame clip
    assert 27.0 <= fps <= 33.0
    rate = (taken[-1].seq - taken[0].seq) / (taken[-1].captured_mono - taken[0].captured_mono)
    assert 27.0 <= rate <= 33.0
    assert cap.source_fps == pytest.approx(30.0)


def test_lossless_fast_read_sees_every_frame_and_caps_by_video_time(clip30: Path) -> None:
    every = Capture("a", str(clip30), lossless=True)
    capped = Capture("b", str(clip30), lossless=True, fps=5.0)
    result = {}
    for cap in (every, capped):
        cap.start()
        seqs = []
        while (f := cap.take(5.0)) is not None:
            seqs.append(f.seq)
        cap.stop(2.0)
        assert cap.state == STOPPED
        result[cap.camera] = seqs
    assert result["a"] == list(range(180))
    assert every.drops["superseded"] == 0
    assert len(result["b"]) == 30  # 6 s of video at 5 fps
    assert set(np.diff(result["b"]).tolist()) == {6}
    assert capped.drops["fps_cap"] == 150
