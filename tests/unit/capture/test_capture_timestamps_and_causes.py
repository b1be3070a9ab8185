"""The fps cap on messy timestamps, and the cause of a failed open from FFmpeg's/OpenCV's own lines."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from edge.capture_core import (
    CAUSE_AUTH,
    CAUSE_NOT_FOUND,
    CAUSE_NOT_VIDEO,
    CAUSE_REFUSED,
    CAUSE_TIMEOUT,
    CAUSE_UNKNOWN,
    CAUSE_UNREACHABLE,
    FpsCap,
    classify_open_failure,
    native_level,
    read_failure,
    strip_native_prefix,
)

# pedestrians.mp4's CAP_PROP_POS_MSEC for its first 40 frames (H.264 with B-frames: it goes backwards).
PEDESTRIANS_MS = [
    0.0, 66.7, 100.1, 133.5, 166.8, 200.2, 233.6, 333.7, 300.3, 367.0, 266.9, 400.4, 433.8, 533.9, 500.5,
    567.2, 467.1, 600.6, 634.0, 734.1, 700.7, 767.4, 667.3, 800.8, 834.2, 934.3, 900.9, 967.6, 867.5,
    1067.7, 1034.4, 1101.1, 1001.0, 1201.2, 1167.8, 1234.6, 1134.5, 1334.7, 1301.3, 1368.0,
]


def _b_frame_stream(seconds: float, fps: float = 29.97) -> list[float]:
    """Timestamps in the order a decoder with B-frames reports them: groups of 4 shuffled like the file."""
    out: list[float] = []
    n = int(seconds * fps)
    for g in range(0, n, 4):
        group = [k / fps for k in range(g, min(g + 4, n))]
        order = [0, 3, 2, 1] if len(group) == 4 else list(range(len(group)))
        out += [group[i] for i in order]
    return out


def _kept(cap: FpsCap, ts: list[float]) -> int:
    return sum(cap.accept(t) for t in ts)


@pytest.mark.parametrize(
    ("name", "timestamps", "seconds"),
    [
        ("B-frames, real pattern", [k * 1.3681 + t / 1e3 for k in range(50) for t in PEDESTRIANS_MS], 68.4),
        ("B-frames, shuffled groups", _b_frame_stream(60.0), 60.0),
        ("missing timestamps (NaN)", [math.nan] * 1800, 60.0),
        ("stuck timestamps (always 0)", [0.0] * 1800, 60.0),
        ("negative timestamps", [-1.0] * 1800, 60.0),
        ("variable frame rate 10-30 fps", [], 60.0),
    ],
)
def test_fps_cap_holds_its_rate_on_messy_timestamps(
    name: str, timestamps: list[float], seconds: float
) -> None:
    if not timestamps:  # VFR: intervals drawn between 1/30 and 1/10 s
        rng = random.Random(5)
        t = 0.0
        while t < seconds:
            timestamps.append(t)
            t += rng.uniform(1 / 30, 1 / 10)
    cap = FpsCap(2.0, source_fps=29.97)
    kept = _kept(cap, timestamps)
    assert abs(kept / seconds - 2.0) <= 0.2, f"{name}: {kept / seconds:.2f} fps"


def test_fps_cap_on_b_frames_never_keeps_two_frames_in_one_bucket() -> None:
    cap = FpsCap(5.0, source_fps=29.97)
    kept = [t for t in _b_frame_stream(20.0) if cap.accept(t)]
    assert abs(len(kept) - 100) <= 2
    # a kept frame may be a B-frame reported late, but kept frames never bunch up
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert min(gaps) > -0.2


def test_fps_cap_still_resyncs_on_a_file_loop_with_b_frames() -> None:
    cap = FpsCap(2.0, source_fps=29.97)
    first = _kept(cap, _b_frame_stream(10.0))
    second = _kept(cap, _b_frame_stream(10.0))  # starts again at 0: a loop, not a B-frame
    assert abs(first - 20) <= 1
    assert abs(second - 20) <= 1


@pytest.mark.parametrize(
    ("lines", "took", "cause", "quoted"),
    [
        (["[OPENCV:FFMPEG:16] Connection to tcp://127.0.0.1:9?timeout=0 failed: Connection refused"], 0.0,
         CAUSE_REFUSED, "Connection refused"),
        (["[OPENCV:FFMPEG:16] Error reading HTTP response: Immediate exit requested"], 10.0,
         CAUSE_TIMEOUT, ""),
        (["[OPENCV:FFMPEG:24] Failed reading RTSP data: Immediate exit requested"], 3.0, CAUSE_TIMEOUT, ""),
        (["[OPENCV:FFMPEG:24] method DESCRIBE failed: 401 Unauthorized"], 0.1, CAUSE_AUTH, "401"),
        (["[OPENCV:FFMPEG:24] HTTP error 403 Forbidden"], 0.1, CAUSE_AUTH, "403"),
        (["[OPENCV:FFMPEG:24] method DESCRIBE failed: 404 Not Found",
          "[OPENCV:FFMPEG:16] Invalid data found when processing input"], 0.1, CAUSE_NOT_FOUND, "404"),
        (["[OPENCV:FFMPEG:24] HTTP error 404 File not found"], 0.0, CAUSE_NOT_FOUND, "404"),
        (["[OPENCV:FFMPEG:16] Failed to resolve hostname nosuch.invalid: Name or service not known"], 0.0,
         CAUSE_NOT_FOUND, "Name or service"),
        (["[OPENCV:FFMPEG:16] Connection to tcp://10.9.9.9:554 failed: No route to host"], 0.5,
         CAUSE_UNREACHABLE, "No route"),
        (["[OPENCV:FFMPEG:24] Format mov,mp4 detected only with low score of 1, misdetection possible!",
          "[OPENCV:FFMPEG:16] moov atom not found"], 0.0, CAUSE_NOT_VIDEO, "misdetection"),
        (["[OPENCV:FFMPEG:16] Invalid data found when processing input"], 0.0,
         CAUSE_NOT_VIDEO, "Invalid data"),
        (["[OPENCV:FFMPEG:16] something new"], 0.0, CAUSE_UNKNOWN, "something new"),
        ([], 0.2, CAUSE_UNKNOWN, "no reason given"),
    ],
)
def test_open_failure_cause(lines: list[str], took: float, cause: str, quoted: str) -> None:
    got, reason = classify_open_failure(lines, took, open_timeout=10.0 if took != 3.0 else 3.0)
    assert got == cause
    assert quoted in reason
    assert "[OPENCV" not in reason


def test_refused_is_called_refused() -> None:
    line = "[OPENCV:FFMPEG:16] Connection to tcp://h:554 failed: Connection refused"
    _, reason = classify_open_failure([line], 0.01, 10.0)
    assert reason.startswith("connection refused")
    assert "open_timeout" not in reason


@pytest.mark.parametrize(
    ("line", "level", "text"),
    [
        ("[OPENCV:FFMPEG:16] Connection refused", 40, "Connection refused"),
        ("[OPENCV:FFMPEG:24] HTTP error 404", 30, "HTTP error 404"),
        ("[OPENCV:FFMPEG:32] Stream #0", 10, "Stream #0"),
        ("[ WARN:0@3.015] global cap_ffmpeg_impl.hpp:453 interrupt_callback Stream timeout", 30,
         "interrupt_callback Stream timeout"),
        ("[ERROR:0@1.0] global cap.cpp:1 boom", 40, "boom"),
        ("plain line", 30, "plain line"),
    ],
)
def test_native_lines_get_a_level_and_lose_their_prefix(line: str, level: int, text: str) -> None:
    assert native_level(line) == level
    assert strip_native_prefix(line) == text


@pytest.mark.parametrize(
    ("kind", "n", "expected", "blocked", "outcome"),
    [
        ("file", 0, 100.0, 0.0, "truncated"),
        ("file", 50, 100.0, 0.0, "truncated"),
        ("file", 99, 100.0, 0.0, "eof"),
        ("file", 10, 0.0, 0.0, "eof"),
        ("stream", 10, 0.0, 9.5, "stall"),
        ("stream", 0, 0.0, 0.1, "error"),
        ("stream", 10, 0.0, 0.1, "error"),
    ],
)
def test_read_failure(kind: str, n: int, expected: float, blocked: float, outcome: str) -> None:
    assert read_failure(kind, n, expected, blocked, read_timeout=10.0).kind == outcome  # type: ignore[arg-type]
