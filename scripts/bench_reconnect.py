#!/usr/bin/env python3
"""Reconnect soak: cameras whose RTSP servers die again and again must show frames <= 5 s after every return.

Serves ``--cameras`` test clips, one real GStreamer RTSP server each (``tests/helpers/rtsp.py``), reads each
with a default :class:`edge.capture.Capture` (capture process, default backoff), and every ``--period``
seconds SIGKILLs all servers for ``--down`` seconds, then restarts them on the same ports. For every
return it records the seconds from "server ready again" to the camera's first new frame. Also watched:
the daemon's and its capture processes' memory, its open file descriptors and its child processes, so a
leak over many reconnects shows up.

    .venv/bin/python scripts/bench_reconnect.py --minutes 20 --json out.json     # the documented soak
    .venv/bin/python scripts/bench_reconnect.py --minutes 3 --period 40 --down 10  # a quick look

Exit status 1 when any return took longer than ``--limit`` seconds (default 5) or a camera never came back.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers.rtsp import RtspServer, make_clip  # noqa: E402

from edge.capture import Capture, FrameNotifier  # noqa: E402

SHARED = Path(os.environ.get("EDGE_SHARED_DIR", REPO.parent / "shared"))
VIDEOS = ("pedestrians.mp4", "car-detection.mp4", "vehicle_counting_input_video.mp4")


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def run(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="edge_bench_reconnect_"))
    clips = [
        make_clip(SHARED / "data" / "video" / v, tmp / f"cam{i}.mp4", fps=30, seconds=20)
        for i, v in ((i, VIDEOS[i % len(VIDEOS)]) for i in range(args.cameras))
    ]
    servers = [RtspServer(c, log_dir=tmp).start() for c in clips]
    notifier = FrameNotifier()
    caps = [Capture(f"cam{i}", s.url(), notify=notifier) for i, s in enumerate(servers)]
    last_frame = [0.0] * len(caps)
    # The first frame at or after mark[i] (the server's return), per camera.
    mark = [float("inf")] * len(caps)
    first_after: list[float | None] = [None] * len(caps)
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            v = notifier.version
            for i, c in enumerate(caps):
                if c.poll() is not None:
                    now = time.monotonic()
                    last_frame[i] = now
                    if first_after[i] is None and now >= mark[i]:
                        first_after[i] = now
            notifier.wait(v, 0.05)

    consumer = threading.Thread(target=consume, name="consumer", daemon=True)
    for c in caps:
        c.start()
    consumer.start()
    t_start = time.monotonic()
    end = t_start + args.minutes * 60.0
    returns: list[list[float]] = [[] for _ in caps]
    missed: list[int] = [0] * len(caps)
    samples: list[dict[str, float]] = []
    me = os.getpid()
    try:
        # Let every camera come online first.
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not all(last_frame):
            time.sleep(0.05)
        outage = 0
        next_kill = t_start + args.period
        while time.monotonic() + args.down + args.limit + 1.0 < end:
            time.sleep(max(0.0, next_kill - time.monotonic()))
            outage += 1
            for i, s in enumerate(servers):
                mark[i] = float("inf")
                first_after[i] = None
                s.stop()  # SIGKILL: a camera that loses power
            time.sleep(args.down)
            back = []
            for i, s in enumerate(servers):
                s.start()  # returns when the server printed READY
                back.append(time.monotonic())
                mark[i] = back[-1]
            wait_until = max(back) + args.limit * 4
            while time.monotonic() < wait_until and any(f is None for f in first_after):
                time.sleep(0.02)
            for i in range(len(caps)):
                got = first_after[i]
                if got is not None:
                    returns[i].append(got - back[i])
                else:
                    missed[i] += 1
            kids = _children(me)
            samples.append({
                "t_s": round(time.monotonic() - t_start, 1),
                "rss_kb": _rss_kb(me),
                "children_rss_kb": sum(_rss_kb(k) for k in kids),
                "children": len(kids),
                "fds": sum(1 for _ in Path("/proc/self/fd").iterdir()),
            })
            print(f"outage {outage}: back after " + ", ".join(
                f"{r[-1]:.2f}" if r else "-" for r in returns) + " s; " + json.dumps(samples[-1]), flush=True)
            next_kill += args.period
    finally:
        stop.set()
        consumer.join(2.0)
        for c in caps:
            c.stop(5.0)
        for s in servers:
            s.stop(crash=False)
    time.sleep(0.5)
    left = [k for k in _children(me) if b"capture_worker" in _cmdline(k)]
    flat = [x for r in returns for x in r]
    return {
        "cameras": len(caps),
        "minutes": args.minutes,
        "period_s": args.period,
        "down_s": args.down,
        "outages": outage,
        "returns_s": [[round(x, 2) for x in r] for r in returns],
        "missed": missed,
        "p50_s": round(statistics.median(flat), 2) if flat else None,
        "p100_s": round(max(flat), 2) if flat else None,
        "reconnects": [c.reconnects for c in caps],
        "samples": samples,
        "capture_processes_left": len(left),
        "wall_s": round(time.monotonic() - t_start, 1),
        "ok": bool(flat) and max(flat) <= args.limit and not any(missed) and not left,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--period", type=float, default=120.0, help="seconds between server kills")
    parser.add_argument("--down", type=float, default=15.0, help="seconds each outage lasts")
    parser.add_argument("--limit", type=float, default=5.0, help="allowed seconds from return to frames")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args)
    text = json.dumps(result)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
