"""Counting accuracy on the 7 MOT17 train sequences: edge vs supervision's LineZone.

For every sequence two lines are drawn through the middle of the frame (W x H from seqinfo.ini):

* ``h``: horizontal, A=(0, H/2) -> B=(W, H/2); ``in`` = downwards;
* ``v``: vertical, A=(W/2, 0) -> B=(W/2, H); ``in`` = towards the left (right-hand side of A->B on screen);

both test the bottom-center anchor. Ground truth is derived from gt.txt pedestrians by ``edge evaluate``'s
rule (same anchor, segment intersection, once per direction per track). On the same FRCNN ``det.txt``:

* **edge**: ``edge replay`` (edge's ByteTracker + CameraAnalytics, default config) writes events; they
  are tallied per line and direction;
* **supervision**: roboflow's ByteTrack (``trackers.ByteTrackTracker``, defaults; ``sv.ByteTrack`` was
  removed from supervision in 0.31.0 in its favour) feeding ``sv.LineZone`` (defaults, bottom-center
  anchor). LineZone calls a downward crossing of a left-to-right line ``out``, so its in/out are swapped
  to edge's convention (checked at start);
* **edge tracker + LineZone**: edge's tracks fed to ``sv.LineZone``, to separate tracker and counting
  logic.

Prints per-sequence tables and the total relative error ``sum|pred - gt| / sum gt`` of each.

    .venv/bin/python scripts/bench_counting.py [--data ../shared/data/mot17] [--seqs MOT17-02 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mot17"

Tally = dict[tuple[str, str], int]
LineDefs = dict[str, tuple[tuple[float, float], tuple[float, float]]]


def lines_for(width: int, height: int) -> LineDefs:
    return {
        "h": ((0.0, height / 2), (float(width), height / 2)),
        "v": ((width / 2, 0.0), (width / 2, float(height))),
    }


def write_config(path: Path, name: str, source: Path, lines: LineDefs) -> None:
    body = [f"cameras:\n  - name: {name}\n    source: {source}\n    lines:"]
    for line, (a, b) in lines.items():
        body.append(f"      - name: {line}\n        points: [[{a[0]}, {a[1]}], [{b[0]}, {b[1]}]]")
    path.write_text("\n".join(body) + "\n", encoding="utf-8")


def sv_line_zones(sv: object, lines: LineDefs) -> dict[str, object]:
    return {
        name: sv.LineZone(  # type: ignore[attr-defined]
            start=sv.Point(*a),  # type: ignore[attr-defined]
            end=sv.Point(*b),  # type: ignore[attr-defined]
            triggering_anchors=[sv.Position.BOTTOM_CENTER],  # type: ignore[attr-defined]
        )
        for name, (a, b) in lines.items()
    }


def sv_tally(zones: dict[str, object]) -> Tally:
    # LineZone's "out" is edge's "in" for the same A->B (see check_sv_convention).
    out: Tally = {}
    for name, lz in zones.items():
        out[(name, "in")] = int(lz.out_count)  # type: ignore[attr-defined]
        out[(name, "out")] = int(lz.in_count)  # type: ignore[attr-defined]
    return out


def check_sv_convention(sv: object) -> None:
    """A box walking down across a left-to-right line must be LineZone's out_count (edge's in)."""
    (lz,) = sv_line_zones(sv, {"h": ((0.0, 100.0), (640.0, 100.0))}).values()
    for y in (80, 90, 110, 120, 130):
        det = sv.Detections(  # type: ignore[attr-defined]
            xyxy=np.array([[310.0, y - 40.0, 330.0, float(y)]]),
            confidence=np.array([0.9]),
            class_id=np.array([0]),
            tracker_id=np.array([1]),
        )
        lz.trigger(det)  # type: ignore[attr-defined]
    assert (lz.in_count, lz.out_count) == (0, 1), (lz.in_count, lz.out_count)  # type: ignore[attr-defined]


def supervision_tracker_name(sv: object) -> str:
    return "sv.ByteTrack" if hasattr(sv, "ByteTrack") else "trackers.ByteTrackTracker"


def run_supervision(sv: object, det_path: Path, length: int, fps: float, lines: LineDefs) -> Tally:
    from edge.tracking.motio import read_mot_detections

    dets = read_mot_detections(det_path)
    if hasattr(sv, "ByteTrack"):  # supervision < 0.31: its own ByteTrack, the baseline
        bytetrack = sv.ByteTrack(frame_rate=round(fps))
        update = bytetrack.update_with_detections
    else:  # supervision 0.31 moved ByteTrack into roboflow's `trackers` package
        from trackers import ByteTrackTracker

        update = ByteTrackTracker(frame_rate=fps).update
    zones = sv_line_zones(sv, lines)
    for f in range(1, length + 1):
        xyxy, scores = dets.frame(f)
        det = sv.Detections(  # type: ignore[attr-defined]
            xyxy=xyxy.astype(np.float64),
            confidence=scores.astype(np.float64),
            class_id=np.zeros(xyxy.shape[0], int),
        )
        tracked = update(det)
        for lz in zones.values():
            lz.trigger(tracked)  # type: ignore[attr-defined]
    return sv_tally(zones)


def run_edge_tracks_sv_lines(sv: object, det_path: Path, length: int, fps: float, lines: LineDefs) -> Tally:
    from edge.config import TrackerConfig
    from edge.tools.replay import mot_frames
    from edge.tools.specs import build_tracker

    bt = build_tracker(TrackerConfig(), fps, "bench")
    zones = sv_line_zones(sv, lines)
    _total, frames = mot_frames(det_path, last_frame=length)
    for _f, d in frames:
        t = bt.update(d)
        keep = t.track_id >= 0  # LineZone would lump untracked rows together (supervision#2578)
        det = sv.Detections(  # type: ignore[attr-defined]
            xyxy=t.xyxy[keep].astype(np.float64),
            confidence=t.confidence[keep].astype(np.float64),
            class_id=t.class_id[keep].astype(int),
            tracker_id=t.track_id[keep].astype(int),
        )
        for lz in zones.values():
            lz.trigger(det)  # type: ignore[attr-defined]
    return sv_tally(zones)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seqs", nargs="*", help="sequence folder names (default: all)")
    args = ap.parse_args(argv)

    import supervision as sv

    from edge.events import LineSpec
    from edge.tools import replay
    from edge.tools.evaluate import events_tally, gt_crossings, relative_error
    from edge.tracking.motio import read_seqinfo

    check_sv_convention(sv)
    seqs = sorted(p for p in args.data.iterdir() if (p / "det.txt").is_file())
    if args.seqs:
        seqs = [p for p in seqs if p.name in set(args.seqs)]
    totals: dict[str, tuple[int, int]] = {}
    all_gt: Tally = {}
    preds: dict[str, Tally] = {"edge": {}, "supervision": {}, "edge tracker + LineZone": {}}
    timings: dict[str, float] = dict.fromkeys(preds, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for seq in seqs:
            info = read_seqinfo(seq / "seqinfo.ini")
            lines = lines_for(info.width, info.height)
            specs = [LineSpec(n, a, b) for n, (a, b) in lines.items()]
            gt = gt_crossings(seq / "gt.txt", specs)
            cfg = Path(tmp) / f"{seq.name}.yaml"
            events = Path(tmp) / f"{seq.name}.jsonl"
            write_config(cfg, seq.name, seq / "det.txt", lines)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                rc = replay.main(
                    [
                        "--detections",
                        str(seq / "det.txt"),
                        "--config",
                        str(cfg),
                        "--camera",
                        seq.name,
                        "--events-out",
                        str(events),
                        "--quiet",
                    ]
                )
            timings["edge"] += time.perf_counter() - t0
            if rc != 0:
                print(f"{seq.name}: edge replay failed with {rc}", file=sys.stderr)
                return rc
            results = {"edge": events_tally(events, seq.name, list(lines))}
            t0 = time.perf_counter()
            results["supervision"] = run_supervision(sv, seq / "det.txt", info.length, info.frame_rate, lines)
            timings["supervision"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            results["edge tracker + LineZone"] = run_edge_tracks_sv_lines(
                sv, seq / "det.txt", info.length, info.frame_rate, lines
            )
            timings["edge tracker + LineZone"] += time.perf_counter() - t0
            print(f"\n{seq.name} ({info.width}x{info.height}, {info.frame_rate:g} fps, {info.length} frames)")
            print(f"  {'line':4} {'dir':3} {'gt':>4} " + " ".join(f"{k:>24}" for k in results))
            for key, g in gt.items():
                cells = " ".join(f"{r[key]:>24}" for r in results.values())
                print(f"  {key[0]:4} {key[1]:3} {g:>4} {cells}")
            for name, r in results.items():
                for key, n in r.items():
                    preds[name][(seq.name, *key)] = n  # type: ignore[index]
            for key, g in gt.items():
                all_gt[(seq.name, *key)] = g  # type: ignore[index]
    print(f"\nTotal ground-truth crossings: {sum(all_gt.values())} over {len(seqs)} sequences, 2 lines each")
    print(f"supervision {sv.__version__} (tracker: {supervision_tracker_name(sv)})")  # type: ignore[attr-defined]
    for name, pred in preds.items():
        err = sum(abs(pred.get(k, 0) - g) for k, g in all_gt.items())
        totals[name] = (err, sum(all_gt.values()))
        print(
            f"  {name:24} total relative error = {err}/{sum(all_gt.values())} = "
            f"{relative_error(all_gt, pred):.4f}   ({timings[name]:.1f} s)"
        )
    edge_err = relative_error(all_gt, preds["edge"])
    sv_err = relative_error(all_gt, preds["supervision"])
    print(f"\nedge / supervision error ratio: {edge_err / sv_err:.3f}" if sv_err else "")
    return 0 if edge_err < sv_err else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
