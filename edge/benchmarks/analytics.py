"""``edge bench analytics``: time per frame of the line and zone analytics on real tracks.

Each MOT17 sequence's public FRCNN detections are tracked once by the daemon's tracker (default
``TrackerConfig``); then only ``CameraAnalytics.update`` is timed on those tracks, per frame, with a
typical camera's setup: four lines through the frame's middle (horizontal, vertical and both
diagonals) and two zones (a rectangle with ``loiter_seconds`` and a concave five-sided one). Reports
the median and p99 microseconds per frame over all sequences.

With ``--baseline TREE`` (e.g. ``git worktree add /tmp/base <commit>``) it times the tree at ``TREE``
and this one alternately, A B A B ..., each pass in a fresh process, and prints the ratio of the
medians: the way to compare two versions on a machine whose speed swings between runs.

    .venv/bin/python -m edge bench analytics [--baseline /tmp/base --rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge.benchmarks import data_dir

# Runs in a tree given by --baseline (PYTHONPATH) and in this one: uses only API both have.
_SNIPPET = """
import json, sys, time
from pathlib import Path
import numpy as np
from edge.config import TrackerConfig
from edge.events import CameraAnalytics, LineSpec
from edge.events.zones import ZoneSpec
from edge.tools.replay import mot_frames
from edge.tools.specs import build_tracker
from edge.tracking.motio import read_seqinfo
mot = Path(sys.argv[1])
names = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else None
times = []
for d in sorted(p for p in mot.iterdir() if (p / "det.txt").exists()):
    if names and d.name not in names:
        continue
    info = read_seqinfo(d / "seqinfo.ini")
    w, h = float(info.width), float(info.height)
    tracker = build_tracker(TrackerConfig(), info.frame_rate, d.name)
    _n, frames = mot_frames(d / "det.txt", last_frame=info.length)
    tracked = []
    for f, dets in frames:
        tracked.append((f, tracker.update(dets), tracker.removed_ids().copy()))
    lines = [
        LineSpec("h", (0.05 * w, 0.5 * h), (0.95 * w, 0.5 * h)),
        LineSpec("v", (0.5 * w, 0.05 * h), (0.5 * w, 0.95 * h)),
        LineSpec("d", (0.05 * w, 0.05 * h), (0.95 * w, 0.95 * h)),
        LineSpec("a", (0.05 * w, 0.95 * h), (0.95 * w, 0.05 * h)),
    ]
    zones = [
        ZoneSpec("rect", ((0.2 * w, 0.3 * h), (0.7 * w, 0.3 * h), (0.7 * w, 0.8 * h), (0.2 * w, 0.8 * h)),
                 loiter_seconds=3.0),
        ZoneSpec("notch", ((0.1 * w, 0.1 * h), (0.9 * w, 0.1 * h), (0.5 * w, 0.5 * h), (0.9 * w, 0.9 * h),
                           (0.1 * w, 0.9 * h))),
    ]
    analytics = CameraAnalytics(d.name, lines, zones, run_id="bench")
    for f, dets, removed in tracked:
        t = (f - 1) / info.frame_rate
        t0 = time.perf_counter_ns()
        analytics.update(dets, removed, f, t, t)
        times.append((time.perf_counter_ns() - t0) / 1e3)
print(json.dumps({"median": float(np.median(times)), "p99": float(np.percentile(times, 99)),
                  "frames": len(times)}))
"""


def run_tree(tree: Path, mot_dir: Path, names: str) -> dict[str, float]:
    """One timed pass in a fresh interpreter with ``tree`` first on the import path."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(  # noqa: S603 - our own snippet, the current interpreter
        [sys.executable, "-c", _SNIPPET, str(mot_dir), names],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge bench analytics", description=__doc__.splitlines()[0])
    parser.add_argument("--mot-dir", type=Path, default=data_dir() / "mot17")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    parser.add_argument(
        "--baseline", type=Path, help="time this tree against the tree at this path (A/B, alternating)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="passes per tree (median of their medians)")
    args = parser.parse_args(argv)
    if not args.mot_dir.is_dir():
        print(f"no MOT sequences under {args.mot_dir}", file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parents[2]
    trees = [("baseline", args.baseline), ("this tree", here)] if args.baseline else [("this tree", here)]
    # One untimed pass per tree first: Numba compiles (or loads its cache) outside the timed rounds.
    for _label, tree in trees:
        run_tree(tree, args.mot_dir, args.sequences)
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    for _ in range(max(1, args.rounds)):
        for label, tree in trees:
            results[label].append(run_tree(tree, args.mot_dir, args.sequences))
            print(f"{label:10} {results[label][-1]}", flush=True)
    print("\n| tree | frames | median us/frame | p99 us/frame |\n|---|---|---|---|")
    medians = {}
    for label, runs in results.items():
        medians[label] = float(np.median([r["median"] for r in runs]))
        p99 = float(np.median([r["p99"] for r in runs]))
        print(f"| {label} | {int(runs[0]['frames'])} | {medians[label]:.0f} | {p99:.0f} |")
    if args.baseline:
        ratio = medians["baseline"] / medians["this tree"]
        print(f"\nthis tree is {ratio:.2f}x as fast as the baseline (median per frame, interleaved)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
