"""``edge bench tracker``: accuracy (TrackEval) and speed of edge's ByteTracker against peer trackers.

On the MOT17 public FRCNN detections (``<data>/mot17/<SEQ>/det.txt``), runs edge's tracker and, when
installed, roboflow ``trackers`` ByteTrack in the same process with the official ByteTrack MOT17
settings (track_thresh 0.6, new-track 0.7, low 0.1, match 0.8, buffer 30 scaled by fps / 30, score
fusion). Prints HOTA / MOTA / IDF1 / IDSW from the ``trackeval`` package, tracker-only median / p99
microseconds per frame, and a scaling table on synthetic scenes. Peer trackers and trackeval are
bench-only dependencies (``pip install edge-analytics[bench]``).

Output boxes are written like the official demo: the track's Kalman box, dropped when its area is
<= 100 px^2 or w / h > 1.6.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.benchmarks import data_dir
from edge.tracking import ByteTracker
from edge.tracking.motio import MotDetections, SeqInfo, read_mot_detections, read_seqinfo
from edge.types import Detections

MIN_BOX_AREA = 100.0
MAX_ASPECT = 1.6


@dataclass
class Run:
    """One tracker's results on one or more sequences."""

    name: str
    times_us: list[float] = field(default_factory=list)
    # sequence name -> rows "frame,id,x,y,w,h,1,-1,-1,-1"
    outputs: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _keep(w: npt.NDArray[np.float64], h: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return (w * h > MIN_BOX_AREA) & ~(w / np.maximum(h, 1e-9) > MAX_ASPECT)


def _rows(frame: int, ids: npt.NDArray[np.int64], xyxy: npt.NDArray[np.floating[Any]]) -> list[str]:
    x1, y1 = xyxy[:, 0].astype(np.float64), xyxy[:, 1].astype(np.float64)
    w = xyxy[:, 2].astype(np.float64) - x1
    h = xyxy[:, 3].astype(np.float64) - y1
    keep = _keep(w, h) & (ids >= 0)
    return [
        f"{frame},{int(i)},{a:.2f},{b:.2f},{c:.2f},{d:.2f},1,-1,-1,-1"
        for i, a, b, c, d in zip(ids[keep], x1[keep], y1[keep], w[keep], h[keep], strict=True)
    ]


def load_sequences(mot_dir: Path) -> list[tuple[SeqInfo, MotDetections]]:
    dirs = sorted(p for p in mot_dir.iterdir() if (p / "det.txt").exists())
    return [(read_seqinfo(d), read_mot_detections(d / "det.txt")) for d in dirs]


def run_edge(
    seqs: list[tuple[SeqInfo, MotDetections]],
    *,
    det_boxes: bool = False,
    camera_motion: bool = False,
    confirm_thresh: float | None = None,
) -> Run:
    """Edge's tracker; ``det_boxes`` writes the detection boxes (what edge emits downstream) and goes
    through ``update(Detections)`` instead of ``update_arrays``, so its time includes that wrapper.
    ``camera_motion`` and ``confirm_thresh`` turn on the daemon's camera-motion vote and confirmation
    at birth (the latter at <= 10 fps only); both are off officially."""
    run = Run("edge update(Detections), det boxes" if det_boxes else "edge update_arrays, Kalman boxes")
    for info, dets in seqs:
        tracker = ByteTracker(info.frame_rate, camera_motion=camera_motion, confirm_thresh=confirm_thresh)
        out: list[str] = []
        for f in range(1, info.length + 1):
            xyxy, scores = dets.frame(f)
            if det_boxes:
                d = Detections(xyxy, scores, np.zeros(len(xyxy), np.int32), np.full(len(xyxy), -1, np.int64))
                t0 = time.perf_counter_ns()
                ids = tracker.update(d).track_id
                run.times_us.append((time.perf_counter_ns() - t0) / 1e3)
                out += _rows(f, ids, xyxy)
            else:
                t0 = time.perf_counter_ns()
                tracker.update_arrays(xyxy, scores)
                run.times_us.append((time.perf_counter_ns() - t0) / 1e3)
                tids, boxes = tracker.tracks()
                out += _rows(f, tids, boxes)
        run.outputs[info.name] = out
    return run


def run_roboflow(seqs: list[tuple[SeqInfo, MotDetections]]) -> Run | None:
    try:
        import supervision as sv  # noqa: PLC0415 - optional, bench-only peer
        from trackers import ByteTrackTracker  # noqa: PLC0415
    except ImportError:
        return None
    run = Run(f"roboflow trackers {metadata.version('trackers')} ByteTrack")
    for info, dets in seqs:
        tracker = ByteTrackTracker(
            lost_track_buffer=30,
            frame_rate=info.frame_rate,
            track_activation_threshold=0.7,
            minimum_consecutive_frames=2,
            minimum_iou_threshold=0.2,  # = 1 - match_thresh 0.8
            high_conf_det_threshold=0.6,
        )
        out: list[str] = []
        for f in range(1, info.length + 1):
            xyxy, scores = dets.frame(f)
            d = sv.Detections(
                xyxy=xyxy.astype(np.float32),
                confidence=scores.astype(np.float32),
                class_id=np.zeros(len(xyxy), int),
            )
            t0 = time.perf_counter_ns()
            res = tracker.update(d)
            run.times_us.append((time.perf_counter_ns() - t0) / 1e3)
            ids = np.asarray(res.tracker_id if res.tracker_id is not None else [], np.int64)
            out += _rows(f, ids, np.asarray(res.xyxy).reshape(-1, 4))
        run.outputs[info.name] = out
    return run


def evaluate(runs: list[Run], mot_dir: Path, seqs: list[tuple[SeqInfo, MotDetections]]) -> None:
    """HOTA / MOTA / IDF1 / IDSW over all sequences with TrackEval's MOTChallenge 2D box dataset."""
    # TrackEval 1.x still uses aliases numpy 2 removed; restore them for this bench process only.
    for alias, typ in (("float", float), ("int", int), ("bool", bool)):
        if not hasattr(np, alias):
            setattr(np, alias, typ)
    import trackeval  # noqa: PLC0415 - bench-only, and only after the numpy aliases exist

    with tempfile.TemporaryDirectory(prefix="edge-trackeval-") as tmp:
        root = Path(tmp)
        gt = root / "gt"
        names = [info.name for info, _ in seqs]
        for info, _ in seqs:
            src = mot_dir / info.name.split("-FRCNN")[0]
            (gt / info.name / "gt").mkdir(parents=True)
            (gt / info.name / "gt" / "gt.txt").symlink_to(src / "gt.txt")
            (gt / info.name / "seqinfo.ini").symlink_to(src / "seqinfo.ini")
        seqmap = root / "seqmap.txt"
        seqmap.write_text("name\n" + "\n".join(names) + "\n", encoding="utf-8")
        folders = {}
        for k, run in enumerate(runs):
            folder = f"t{k}"
            folders[folder] = run
            data = root / "trackers" / folder / "data"
            data.mkdir(parents=True)
            for name in names:
                (data / f"{name}.txt").write_text("\n".join(run.outputs[name]) + "\n", encoding="utf-8")
        eval_cfg = trackeval.Evaluator.get_default_eval_config()
        eval_cfg.update(
            {
                "PRINT_RESULTS": False,
                "PRINT_CONFIG": False,
                "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False,
                "OUTPUT_DETAILED": False,
                "PLOT_CURVES": False,
                "PRINT_ONLY_COMBINED": True,
                "USE_PARALLEL": False,
                "DISPLAY_LESS_PROGRESS": True,
            }
        )
        ds_cfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
        ds_cfg.update(
            {
                "GT_FOLDER": str(gt),
                "TRACKERS_FOLDER": str(root / "trackers"),
                "SKIP_SPLIT_FOL": True,
                "SEQMAP_FILE": str(seqmap),
                "PRINT_CONFIG": False,
                "TRACKERS_TO_EVAL": list(folders),
                "BENCHMARK": "MOT17",
                "SPLIT_TO_EVAL": "train",
            }
        )
        evaluator = trackeval.Evaluator(eval_cfg)
        dataset = trackeval.datasets.MotChallenge2DBox(ds_cfg)
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
        results, _ = evaluator.evaluate([dataset], metrics)
        for folder, run in folders.items():
            combined = results["MotChallenge2DBox"][folder]["COMBINED_SEQ"]["pedestrian"]
            run.metrics = {
                "HOTA": 100 * float(np.mean(combined["HOTA"]["HOTA"])),
                "MOTA": 100 * float(combined["CLEAR"]["MOTA"]),
                "IDF1": 100 * float(combined["Identity"]["IDF1"]),
                "IDSW": float(combined["CLEAR"]["IDSW"]),
            }


def synthetic_scene(
    n_objects: int, n_frames: int, seed: int = 0
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    """Objects moving at constant velocity in a 1920x1080 frame with jitter, misses and churn."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1880, 980], (n_objects, 2))
    vel = rng.normal(0, 2, (n_objects, 2))
    size = rng.uniform([20, 50], [40, 100], (n_objects, 2))
    frames = []
    for _ in range(n_frames):
        pos += vel
        out = (pos[:, 0] < 0) | (pos[:, 0] > 1880) | (pos[:, 1] < 0) | (pos[:, 1] > 980)
        pos[out] = rng.uniform([0, 0], [1880, 980], (int(out.sum()), 2))  # leaves, a new one enters
        seen = rng.random(n_objects) > 0.05
        jitter = rng.normal(0, 1.5, (n_objects, 4))
        boxes = np.concatenate([pos, pos + size], axis=1) + jitter
        scores = rng.uniform(0.3, 1.0, n_objects)
        frames.append((boxes[seen].astype(np.float32), scores[seen].astype(np.float32)))
    return frames


def time_scene(update: Any, frames: list[Any]) -> float:
    times = []
    for xyxy, scores in frames:
        t0 = time.perf_counter_ns()
        update(xyxy, scores)
        times.append((time.perf_counter_ns() - t0) / 1e3)
    return float(np.median(times[len(times) // 10 :]))


def scaling(sizes: list[int], n_frames: int, with_peers: bool) -> list[tuple[int, float, float | None]]:
    rows: list[tuple[int, float, float | None]] = []
    for n in sizes:
        frames = synthetic_scene(n, n_frames, seed=n)
        edge = ByteTracker(30.0)
        t_edge = time_scene(edge.update_arrays, frames)
        t_peer = None
        if with_peers:
            try:
                import supervision as sv  # noqa: PLC0415 - optional, bench-only peer
                from trackers import ByteTrackTracker  # noqa: PLC0415
            except ImportError:
                pass
            else:
                peer = ByteTrackTracker(minimum_iou_threshold=0.2)

                def upd(xyxy: Any, scores: Any, peer: Any = peer) -> None:
                    classes = np.zeros(len(xyxy), int)
                    peer.update(sv.Detections(xyxy=xyxy, confidence=scores, class_id=classes))

                t_peer = time_scene(upd, frames[: max(20, n_frames // 4)])
        rows.append((n, t_edge, t_peer))
    return rows


def compile_times() -> tuple[float, float]:
    """Seconds for ``warmup()`` in a fresh process with an empty Numba cache, then with it filled."""
    code = "from edge.tracking import warmup; print(warmup())"
    with tempfile.TemporaryDirectory(prefix="edge-numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = []
        for _ in range(2):
            res = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def _fmt_times(run: Run) -> str:
    t = np.asarray(run.times_us)
    med, p99 = float(np.median(t)), float(np.percentile(t, 99))
    return f"{med:.1f} | {p99:.1f} | {1e6 / float(np.mean(t)):.0f}"


# Runs in a tree given by --baseline (PYTHONPATH) and in this one: uses only API both have.
_AB_SNIPPET = """
import json, sys, time
import numpy as np
from edge.tracking import ByteTracker
from edge.tracking.motio import read_mot_detections, read_seqinfo
from edge.types import Detections
from pathlib import Path
mot = Path(sys.argv[1])
arrays, wrapped = [], []
for d in sorted(p for p in mot.iterdir() if (p / "det.txt").exists()):
    info, dets = read_seqinfo(d / "seqinfo.ini"), read_mot_detections(d / "det.txt")
    for out, det_api in ((arrays, False), (wrapped, True)):
        tracker = ByteTracker(info.frame_rate)
        for f in range(1, info.length + 1):
            xyxy, scores = dets.frame(f)
            if det_api:
                n = len(xyxy)
                d_ = Detections(xyxy, scores, np.zeros(n, np.int32), np.full(n, -1, np.int64))
                t0 = time.perf_counter_ns()
                tracker.update(d_)
            else:
                t0 = time.perf_counter_ns()
                tracker.update_arrays(xyxy, scores)
            out.append((time.perf_counter_ns() - t0) / 1e3)
print(json.dumps({"update_arrays": float(np.median(arrays)), "update": float(np.median(wrapped))}))
"""


def ab_times(baseline: Path, mot_dir: Path, rounds: int) -> int:
    """Median us/frame of ``update_arrays`` and ``update(Detections)`` on MOT17, this tree against the
    tree at ``baseline`` (e.g. ``git worktree add /tmp/base <commit>``), alternating A B A B ..., each
    pass in a fresh process after the kernel is compiled (or loaded from cache)."""
    here = Path(__file__).resolve().parents[2]
    results: dict[str, list[dict[str, float]]] = {"baseline": [], "this tree": []}
    for _ in range(rounds):
        for label, tree in (("baseline", baseline), ("this tree", here)):
            env = dict(os.environ, PYTHONPATH=str(tree))
            out = subprocess.run(  # noqa: S603 - our own snippet, the current interpreter
                [sys.executable, "-c", _AB_SNIPPET, str(mot_dir)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{label:10} {results[label][-1]}", flush=True)
    print("\n| API | baseline median us/frame | this tree | ratio |\n|---|---|---|---|")
    for api in ("update_arrays", "update"):
        a = float(np.median([r[api] for r in results["baseline"]]))
        b = float(np.median([r[api] for r in results["this tree"]]))
        print(f"| {api} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge bench tracker", description=__doc__.splitlines()[0])
    parser.add_argument("--mot-dir", type=Path, default=data_dir() / "mot17")
    parser.add_argument("--no-peers", action="store_true", help="only edge's tracker")
    parser.add_argument("--no-eval", action="store_true", help="skip TrackEval (speed only)")
    parser.add_argument("--scaling", default="10,50,200,500", help="objects per synthetic frame")
    parser.add_argument("--scaling-frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of edge over MOT17 (median)")
    parser.add_argument("--compile", action="store_true", help="also measure cold / cached JIT time")
    parser.add_argument(
        "--baseline", type=Path, help="only time this tree against the tree at this path (A/B, alternating)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="A/B rounds with --baseline")
    parser.add_argument(
        "--camera-motion", action="store_true", help="turn on the camera-motion vote (the daemon's default)"
    )
    parser.add_argument(
        "--confirm-thresh", type=float, help="confirm new tracks this confident at birth (at <= 10 fps)"
    )
    args = parser.parse_args(argv)
    if args.baseline is not None:
        return ab_times(args.baseline, args.mot_dir, args.rounds)

    seqs = load_sequences(args.mot_dir)
    if not seqs:
        print(f"no MOT sequences under {args.mot_dir}", file=sys.stderr)
        return 2
    n_frames = sum(info.length for info, _ in seqs)
    n_dets = sum(len(d.frames) for _, d in seqs)
    print(
        f"{len(seqs)} sequences, {n_frames} frames, {n_dets} detections; numpy {np.__version__}, "
        f"numba {metadata.version('numba')}"
    )

    # Edge runs several passes and keeps the per-frame median over passes (noise on a shared machine).
    daemon = {"camera_motion": args.camera_motion, "confirm_thresh": args.confirm_thresh}
    edge_runs = [run_edge(seqs, **daemon) for _ in range(max(1, args.repeat))]
    edge = edge_runs[0]
    edge.times_us = list(np.median(np.array([r.times_us for r in edge_runs]), axis=0))
    runs = [edge, run_edge(seqs, det_boxes=True, **daemon)]
    if not args.no_peers:
        peer = run_roboflow(seqs)
        if peer is None:
            print("roboflow trackers not installed: peers skipped")
        else:
            runs.append(peer)
    if not args.no_eval:
        evaluate(runs, args.mot_dir, seqs)

    print("\n| implementation | HOTA | MOTA | IDF1 | IDSW | median us/frame | p99 us/frame | frames/s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        m = run.metrics
        acc = (
            f"{m['HOTA']:.1f} | {m['MOTA']:.1f} | {m['IDF1']:.1f} | {m['IDSW']:.0f}" if m else "- | - | - | -"
        )
        print(f"| {run.name} | {acc} | {_fmt_times(run)} |")
    if len(runs) > 2:
        ratio = float(np.median(runs[2].times_us)) / float(np.median(edge.times_us))
        print(f"\nedge is {ratio:.1f}x faster than {runs[2].name} (median per frame, same run)")

    sizes = [int(s) for s in args.scaling.split(",") if s]
    if sizes:
        print("\n| objects/frame | edge median us/frame | roboflow trackers median us/frame | ratio |")
        print("|---|---|---|---|")
        for n, te, tp in scaling(sizes, args.scaling_frames, not args.no_peers):
            peer_s = f"{tp:.0f} | {tp / te:.0f}x" if tp is not None else "- | -"
            print(f"| {n} | {te:.1f} | {peer_s} |")
    if args.compile:
        cold, cached = compile_times()
        print(f"\nJIT: cold compile {cold:.2f} s, load from cache {cached:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
