"""Decode throughput of edge's capture thread against ``ffmpeg -benchmark`` on the same 1080p file.

``python -m edge.benchmarks.capture`` (or ``scripts/bench_capture.py``) makes a 1080p30 H.264 clip from a
shared video with ffmpeg in a temporary directory (never in the repository), then alternates, ``repeats``
times each:

* ``ffmpeg -benchmark -i FILE -f null -``: FFmpeg's own decoder, frames to nowhere (no colour conversion);
* a :class:`~edge.capture.Capture` reading the file as fast as possible (no ``realtime``), i.e. the reader
  thread's full job: demux, decode, convert to BGR, wrap in a ``Frame``, hand over through the slot.

Both figures are frames per second of wall time including opening the file; the result is the ratio of
the medians, measured in the same run, so the shared machine's load cancels out as far as it can. The
capture runs once per repeat for each ``--isolation`` (default both: ``process``, the default, where a
child process decodes and frames come back through shared memory, and ``thread``, decoding in the reader
thread), so the cost of the process hop is measured against the in-process reader in the same run.

``--hanging N`` also measures what isolation is for: the seconds until a camera reading a local file
delivers its first frame while ``N`` other cameras hang in open (an HTTP server that accepts and never
answers, default ``open_timeout`` 10 s), once per isolation, against the same camera alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

from edge.benchmarks.rtsp import SilentServer
from edge.capture import STOPPED, Capture, Isolation


def first_frame_s(path: Path, isolation: Isolation, hanging: int) -> float:
    """Seconds from start to the first frame of a camera on ``path`` while ``hanging`` others hang in open."""
    silent = SilentServer()
    port = silent.port
    bad = [Capture(f"hang{i}", f"http://127.0.0.1:{port}/s{i}", isolation=isolation) for i in range(hanging)]
    try:
        for c in bad:
            c.start()
        time.sleep(1.0 if hanging else 0.0)  # their opens are under way
        cap = Capture("file", str(path), isolation=isolation, realtime=True)
        t0 = time.perf_counter()
        cap.start()
        frame = cap.take(60.0)
        took = time.perf_counter() - t0
        cap.stop(5.0)
        if frame is None:
            raise RuntimeError("no frame within 60 s")
        return took
    finally:
        for c in bad:
            c.stop(5.0)
        silent.close()


def _default_source() -> Path:
    shared = Path(os.environ.get("EDGE_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
    data = Path(os.environ.get("EDGE_DATA_DIR", shared / "data"))
    return data / "video" / "pedestrians.mp4"


def make_1080p(src: Path, dst: Path, *, seconds: float, bitrate: str, ffmpeg: str) -> Path:
    """A 1920x1080, 30 fps H.264 clip of ``seconds`` (source looped) at a camera-like constant bitrate."""
    subprocess.run(  # noqa: S603 - our own argument list, no shell
        [
            ffmpeg, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", f"{seconds}",
            "-vf", "scale=1920:1080:flags=bicubic,fps=30", "-an", "-c:v", "libx264", "-preset", "veryfast",
            "-pix_fmt", "yuv420p", "-g", "60", "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
            str(dst),
        ],
        check=True,
        timeout=900,
    )
    return dst


def count_frames(path: Path, ffprobe: str) -> int:
    out = subprocess.run(  # noqa: S603 - our own argument list, no shell
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=300,
    )
    return int(out.stdout.strip().splitlines()[0])


def ffmpeg_fps(path: Path, frames: int, ffmpeg: str, *, bgr: bool = False) -> float:
    """Frames per second of ``ffmpeg -benchmark -i FILE -f null -`` (its own ``rtime``).

    With ``bgr`` the frames are also converted to ``bgr24`` as OpenCV does - not the acceptance
    baseline, but it shows how much of the gap is the colour conversion ffmpeg's baseline skips.
    """
    convert = ["-pix_fmt", "bgr24"] if bgr else []
    out = subprocess.run(  # noqa: S603 - our own argument list, no shell
        [ffmpeg, "-hide_banner", "-nostats", "-benchmark", "-i", str(path), *convert, "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=900,
    )
    m = re.search(r"rtime=([0-9.]+)s", out.stderr)
    if m is None:
        raise RuntimeError(f"no rtime in ffmpeg output: {out.stderr[-500:]}")
    return frames / float(m.group(1))


def capture_fps(path: Path, decode_threads: int, isolation: Isolation = "process") -> tuple[float, int]:
    """Frames per second of a Capture reading ``path`` as fast as possible; and the frames it decoded."""
    done = threading.Event()
    ended: list[float] = []

    def on_state(_camera: str, state: str) -> None:
        if state == STOPPED:
            ended.append(time.perf_counter())
            done.set()

    cap = Capture("bench", str(path), on_state=on_state, decode_threads=decode_threads, isolation=isolation)
    t0 = time.perf_counter()
    cap.start()
    if not done.wait(900):
        cap.stop(5.0)
        raise RuntimeError("capture did not finish the file")
    cap.stop(5.0)
    return cap.frames_captured / (ended[0] - t0), cap.frames_captured


def run(
    video: Path | None,
    source: Path,
    *,
    seconds: float,
    bitrate: str,
    repeats: int,
    decode_threads: int,
    isolations: tuple[Isolation, ...] = ("process", "thread"),
    hanging: int = 0,
) -> dict[str, object]:
    ffmpeg = shutil.which("ffmpeg")
    ffprobe = shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        raise SystemExit("ffmpeg and ffprobe are needed (apt-get install ffmpeg)")
    generated = video is None
    with tempfile.TemporaryDirectory(prefix="edge_bench_capture_") as tmp:
        if video is None:
            if not source.is_file():
                raise SystemExit(f"source video not found: {source} (set EDGE_SHARED_DIR or --source)")
            video = make_1080p(source, Path(tmp) / "bench_1080p.mp4", seconds=seconds, bitrate=bitrate,
                               ffmpeg=ffmpeg)
        frames = count_frames(video, ffprobe)
        per_mode: dict[str, list[float]] = {m: [] for m in isolations}
        theirs: list[float] = []
        theirs_bgr: list[float] = []
        for mode in isolations:
            capture_fps(video, decode_threads, mode)  # warm-up: page cache, lazy library loading
        for _ in range(repeats):
            theirs.append(ffmpeg_fps(video, frames, ffmpeg))
            theirs_bgr.append(ffmpeg_fps(video, frames, ffmpeg, bgr=True))
            for mode in isolations:
                fps, decoded = capture_fps(video, decode_threads, mode)
                if decoded != frames:
                    raise RuntimeError(f"capture ({mode}) decoded {decoded} frames, the file has {frames}")
                per_mode[mode].append(fps)
        opens: dict[str, float] = {}
        if hanging > 0:
            for mode in isolations:
                opens[f"{mode}_alone_s"] = round(first_frame_s(video, mode, 0), 3)
                opens[f"{mode}_beside_{hanging}_hanging_s"] = round(first_frame_s(video, mode, hanging), 3)
        ours = per_mode[isolations[0]]
        size = video.stat().st_size
    ffmpeg_version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)  # noqa: S603
    med_ours = statistics.median(ours)
    med_theirs = statistics.median(theirs)
    return {
        "video": f"generated from {source.name}" if generated else str(video),
        "frames": frames,
        "resolution": "1920x1080",
        "bitrate": bitrate,
        "file_mbit_s": round(size * 8 / (frames / 30.0) / 1e6, 2),
        "repeats": repeats,
        "decode_threads": decode_threads,
        "cpus": os.cpu_count(),
        "isolation": isolations[0],
        "capture_fps": [round(x, 1) for x in ours],
        "capture_fps_by_isolation": {m: [round(x, 1) for x in v] for m, v in per_mode.items()},
        "capture_fps_median_by_isolation": {m: round(statistics.median(v), 1) for m, v in per_mode.items()},
        "first_frame": opens,
        "ffmpeg_fps": [round(x, 1) for x in theirs],
        "capture_fps_median": round(med_ours, 1),
        "ffmpeg_fps_median": round(med_theirs, 1),
        "ratio": round(med_ours / med_theirs, 3),
        "ffmpeg_bgr24_fps": [round(x, 1) for x in theirs_bgr],
        "ffmpeg_bgr24_fps_median": round(statistics.median(theirs_bgr), 1),
        "ratio_vs_bgr24": round(med_ours / statistics.median(theirs_bgr), 3),
        "opencv": cv2.__version__,
        "ffmpeg": ffmpeg_version.stdout.split("\n", 1)[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge bench capture", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=None, help="use this file instead of generating one")
    parser.add_argument("--source", type=Path, default=None, help="shared video to make the 1080p clip from")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    parser.add_argument("--bitrate", default="6M", help="bitrate of the generated clip (cameras: 4-8M)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each; medians compared")
    parser.add_argument("--decode-threads", type=int, default=0, help="Capture(decode_threads=...)")
    parser.add_argument("--min-ratio", type=float, default=0.8, help="exit 1 below this ratio")
    parser.add_argument(
        "--isolation", choices=("both", "process", "thread"), default="both",
        help="capture mode(s) to run; the ratio uses the first (process when both)",
    )
    parser.add_argument(
        "--hanging", type=int, default=0, help="also time a first frame beside N cameras hanging in open"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(
        args.video,
        args.source if args.source is not None else _default_source(),
        seconds=args.seconds,
        bitrate=args.bitrate,
        repeats=args.repeats,
        decode_threads=args.decode_threads,
        isolations=("process", "thread") if args.isolation == "both" else (args.isolation,),
        hanging=args.hanging,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    ok = float(result["ratio"]) >= args.min_ratio  # type: ignore[arg-type]
    print(
        f"capture {result['capture_fps_median']} fps vs ffmpeg {result['ffmpeg_fps_median']} fps: "
        f"ratio {result['ratio']} ({'ok' if ok else 'BELOW'} {args.min_ratio})",
        file=sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
