"""``edge bench counting``: line-count error on a grid of lines over MOT17, edge vs supervision.

Protocol (issue 12; the numbers in docs/benchmarks.md come from this module):

* **Lines.** On every sequence a grid of 36 lines in four orientations, each at 10 %, 20 %, ... 90 % of
  the frame, clipped to the frame inset by 5 % on every side (normalised coordinates u = x / W,
  v = y / H):

  - ``h``: horizontal, v = p, from u = 0.05 to 0.95; ``in`` = downwards;
  - ``v``: vertical, u = p; ``in`` = towards the left;
  - ``d``: parallel to the main diagonal (v = u + 1 - 2p, through (p, 1 - p));
  - ``a``: parallel to the anti-diagonal (u + v = 2p, through (p, p)).

  All test the bottom-center anchor.
* **Ground truth** is ``edge evaluate``'s: the crossings of the gt.txt pedestrian trajectories
  (``class == 1``, ``consider == 1``) under the same rules with the hysteresis off, every frame of the
  sequence, once per id and direction.
* **Contestants** get the same FRCNN ``det.txt``:

  - **edge**: the ByteTracker built from the default ``TrackerConfig`` (as the daemon builds it) and
    ``CameraAnalytics`` with the default line settings;
  - **supervision**: ``sv.ByteTrack`` (defaults, ``frame_rate`` rounded) + ``sv.LineZone`` (defaults,
    bottom-center anchor) per line. supervision 0.26.1 is the last release with its own ByteTrack; it
    runs in a separate interpreter (``--sv-python``, e.g. a venv with ``supervision==0.26.1``), fed by
    this module in ``--sv-worker`` mode. LineZone's in/out are swapped to edge's convention (checked).

* **Rates.** Every frame (the sequence's own rate: 30, or 14 and 25 for MOT17-05 and -13) and
  ``~5 fps``: every ``round(fps / 5)``-th frame (every 6th at 30 fps, every 3rd of MOT17-05, every 5th
  of MOT17-13), with the tracker's ``frame_rate`` set to the processed rate, as a daemon running the
  camera at that rate would.
* **Split.** Defaults are chosen on MOT17-02, -04, -09, -10 (``tuned``); MOT17-05, -11, -13 are
  ``held out`` and reported separately.

The error of a set of counts is ``sum |pred - gt| / sum gt`` over every (line, direction).

    .venv/bin/python -m edge.benchmarks.counting --sv-python /tmp/svenv/bin/python [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edge.events import CameraAnalytics, Event
    from edge.types import Detections

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mot17"
TUNED = ("MOT17-02", "MOT17-04", "MOT17-09", "MOT17-10")
HELD_OUT = ("MOT17-05", "MOT17-11", "MOT17-13")
POSITIONS = tuple(round(0.1 * i, 1) for i in range(1, 10))
INSET = 0.05
ORIENTATIONS = ("h", "v", "d", "a")

Key = tuple[str, str, str]  # (sequence, line, direction)
LineDefs = dict[str, tuple[tuple[float, float], tuple[float, float]]]


def _clip(
    p0: tuple[float, float], p1: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Clip the infinite line through p0, p1 to the inset square (Liang-Barsky on the line's span)."""
    lo, hi = INSET, 1.0 - INSET
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    t0, t1 = -1e9, 1e9
    for p, d in ((p0[0], du), (p0[1], dv)):
        if d == 0.0:
            continue
        a, b = (lo - p) / d, (hi - p) / d
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return (p0[0] + t0 * du, p0[1] + t0 * dv), (p0[0] + t1 * du, p0[1] + t1 * dv)


def grid_lines(width: int, height: int) -> LineDefs:
    """The 36 lines of the protocol in pixels, named ``{orientation}{percent}`` (``h10`` ... ``a90``)."""
    out: LineDefs = {}
    for p in POSITIONS:
        pct = round(p * 100)
        norm = {
            "h": ((INSET, p), (1.0 - INSET, p)),
            "v": ((p, INSET), (p, 1.0 - INSET)),
            "d": _clip((p, 1.0 - p), (p + 1.0, 2.0 - p)),
            "a": _clip((p, p), (p + 1.0, p - 1.0)),
        }
        for o, (a, b) in norm.items():
            out[f"{o}{pct}"] = ((a[0] * width, a[1] * height), (b[0] * width, b[1] * height))
    return out


def stride_for(fps: float, target: float | None) -> int:
    """Frames to step for a processed rate near ``target`` (``None``: every frame)."""
    return 1 if target is None else max(1, round(fps / target))


@dataclass(frozen=True)
class Sequence:
    name: str
    path: Path
    width: int
    height: int
    fps: float
    length: int


def load(data: Path, names: list[str] | None) -> list[Sequence]:
    from edge.tracking.motio import read_seqinfo  # noqa: PLC0415

    seqs = []
    for p in sorted(data.iterdir()):
        if not (p / "det.txt").is_file() or (names and p.name not in names):
            continue
        info = read_seqinfo(p / "seqinfo.ini")
        seqs.append(Sequence(p.name, p, info.width, info.height, info.frame_rate, info.length))
    return seqs


# ---- ground truth and edge ---------------------------------------------------------------------


def ground_truth(seq: Sequence, lines: LineDefs) -> dict[Key, int]:
    from edge.events import LineSpec  # noqa: PLC0415
    from edge.tools.evaluate import gt_crossings  # noqa: PLC0415

    specs = [LineSpec(n, a, b) for n, (a, b) in lines.items()]
    return {(seq.name, ln, d): n for (ln, d), n in gt_crossings(seq.path / "gt.txt", specs).items()}


def run_edge(
    seq: Sequence,
    lines: LineDefs,
    stride: int,
    *,
    line_kw: dict[str, Any] | None = None,
    analytics_kw: dict[str, Any] | None = None,
    tracker_kw: dict[str, Any] | None = None,
) -> dict[Key, int]:
    """edge's tracker (default config) + CameraAnalytics on every ``stride``-th frame.

    The keyword dicts override line, analytics and tracker settings (for measuring one lever).
    """
    from edge.tools.evaluate import tally  # noqa: PLC0415

    analytics = edge_analytics(seq, lines, line_kw=line_kw, analytics_kw=analytics_kw)
    for _frame in edge_frames(seq, stride, analytics, tracker_kw=tracker_kw):
        pass
    return {(seq.name, ln, d): n for (ln, d), n in tally(analytics).items()}


def edge_analytics(
    seq: Sequence,
    lines: LineDefs,
    *,
    line_kw: dict[str, Any] | None = None,
    analytics_kw: dict[str, Any] | None = None,
) -> CameraAnalytics:
    """The ``CameraAnalytics`` of :func:`run_edge`: default line settings unless overridden."""
    from edge.events import CameraAnalytics, LineSpec  # noqa: PLC0415

    specs = [LineSpec(n, a, b, **(line_kw or {})) for n, (a, b) in lines.items()]
    return CameraAnalytics(seq.name, specs, run_id="bench", **(analytics_kw or {}))


def edge_frames(
    seq: Sequence,
    stride: int,
    analytics: CameraAnalytics,
    *,
    tracker_kw: dict[str, Any] | None = None,
) -> Iterator[tuple[int, Detections, list[Event]]]:
    """Every ``stride``-th frame of ``seq`` through the daemon's tracker (default config, ``frame_rate``
    the processed rate; ``tracker_kw`` are ``ByteTracker`` keyword arguments replacing the config's) and
    ``analytics``: yields (MOT frame number, tracked detections, the events of that frame)."""
    from edge.config import TrackerConfig  # noqa: PLC0415
    from edge.tools.replay import mot_frames  # noqa: PLC0415
    from edge.tools.specs import build_tracker  # noqa: PLC0415

    # Overrides go to the constructor: the kernel's thresholds are fixed there, so setting an
    # attribute afterwards would silently measure the defaults.
    tracker = build_tracker(TrackerConfig(), seq.fps / stride, seq.name, **(tracker_kw or {}))
    _total, frames = mot_frames(seq.path / "det.txt", last_frame=seq.length)
    for f, dets in frames:
        if (f - 1) % stride:
            continue
        tracked = tracker.update(dets)
        t = (f - 1) / seq.fps
        yield f, tracked, analytics.update(tracked, tracker.removed_ids(), f, t, t)


def match_iou(
    truth: npt.NDArray[np.floating[Any]], boxes: npt.NDArray[np.floating[Any]], min_iou: float = 0.5
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """One-to-one matching of ground-truth boxes to boxes (xyxy) that maximises the total IoU, pairs
    below ``min_iou`` dropped: (truth rows, box rows)."""
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

    if truth.shape[0] == 0 or boxes.shape[0] == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    a, b = truth.astype(np.float64), boxes.astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    r, c = linear_sum_assignment(-iou)
    ok = iou[r, c] >= min_iou
    return r[ok].astype(np.intp), c[ok].astype(np.intp)


def run_oracle(seq: Sequence, lines: LineDefs, stride: int) -> dict[Key, int]:
    """What perfect identities would count on these detections (a floor for any tracker).

    Each frame's detections scoring above 0.1 (ByteTrack's low threshold) are matched one-to-one to
    the ground-truth boxes by IoU (optimal assignment, IoU >= 0.5) and take their ground-truth id;
    unmatched ones are dropped. Counted with ``min_frames`` 1. What is left is the detector's share of
    the error: people never detected, or detected on one side of a line only, and visible-part boxes
    whose bottom is not the feet the (amodal) ground truth marks. Ids are never given up, so the
    forward projection (which acts on tracks the tracker removes) does not run here.
    """
    from edge.events import CameraAnalytics, LineSpec  # noqa: PLC0415
    from edge.tools.evaluate import read_gt, tally  # noqa: PLC0415
    from edge.tracking.motio import read_mot_detections  # noqa: PLC0415
    from edge.types import Detections  # noqa: PLC0415

    frames, ids, gxy = read_gt(seq.path / "gt.txt")
    dets = read_mot_detections(seq.path / "det.txt")
    specs = [LineSpec(n, a, b, min_frames=1) for n, (a, b) in lines.items()]
    analytics = CameraAnalytics(seq.name, specs, run_id="oracle")
    for f in range(1, seq.length + 1, stride):
        g = frames == f
        xyxy, scores = dets.frame(f)
        xyxy = xyxy[scores > 0.1]
        if not g.any() or xyxy.shape[0] == 0:
            continue
        r, c = match_iou(gxy[g], xyxy)
        k = r.shape[0]
        d = Detections.from_arrays(xyxy[c].astype(np.float64), np.ones(k), np.zeros(k), ids[g][r])
        analytics.update(d, frame_no=f, ts_mono=(f - 1) / seq.fps)
    return {(seq.name, ln, d): n for (ln, d), n in tally(analytics).items()}


# ---- supervision (in its own interpreter) ------------------------------------------------------


def sv_worker() -> int:
    """Read a job list (JSON on stdin), run sv.ByteTrack + LineZone, print tallies as JSON."""
    import supervision as sv  # noqa: PLC0415

    _check_sv_convention(sv)
    out: dict[str, Any] = {"version": sv.__version__, "results": []}
    for job in json.load(sys.stdin):
        rows = np.loadtxt(job["det"], delimiter=",", ndmin=2)
        frames = rows[:, 0].astype(np.int64)
        stride = int(job["stride"])
        tracker = sv.ByteTrack(frame_rate=round(job["fps"] / stride))
        zones = {
            n: sv.LineZone(
                start=sv.Point(*a), end=sv.Point(*b), triggering_anchors=[sv.Position.BOTTOM_CENTER]
            )
            for n, (a, b) in job["lines"].items()
        }
        for f in range(1, int(job["length"]) + 1, stride):
            r = rows[frames == f]
            xyxy = np.column_stack((r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]))
            det = sv.Detections(xyxy=xyxy, confidence=r[:, 6], class_id=np.zeros(len(r), int))
            tracked = tracker.update_with_detections(det)
            for lz in zones.values():
                lz.trigger(tracked)
        # LineZone's out is edge's in for the same A->B.
        tallies = {n: {"in": int(lz.out_count), "out": int(lz.in_count)} for n, lz in zones.items()}
        out["results"].append({"seq": job["seq"], "stride": stride, "tallies": tallies})
    json.dump(out, sys.stdout)
    return 0


def _check_sv_convention(sv: Any) -> None:
    """A box walking down across a left-to-right line must be LineZone's out_count (edge's in)."""
    lz = sv.LineZone(
        start=sv.Point(0.0, 100.0), end=sv.Point(640.0, 100.0), triggering_anchors=[sv.Position.BOTTOM_CENTER]
    )
    for y in (80, 90, 110, 120, 130):
        det = sv.Detections(
            xyxy=np.array([[310.0, y - 40.0, 330.0, float(y)]]),
            confidence=np.array([0.9]),
            class_id=np.array([0]),
            tracker_id=np.array([1]),
        )
        lz.trigger(det)
    if (lz.in_count, lz.out_count) != (0, 1):
        msg = f"LineZone convention changed: in={lz.in_count} out={lz.out_count} for a downward crossing"
        raise RuntimeError(msg)


def start_sv(python: str, jobs: list[dict[str, Any]]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(  # noqa: S603 - our own module, run by the interpreter the user named
        [python, "-m", "edge.benchmarks.counting", "--sv-worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(jobs))
    proc.stdin.close()
    return proc


# ---- report ------------------------------------------------------------------------------------


def error(gt: dict[Key, int], pred: dict[Key, int], keep: Any = None) -> tuple[int, int]:
    """(sum |pred - gt|, sum gt) over the keys ``keep(key)`` accepts."""
    err = tot = 0
    for k, g in gt.items():
        if keep is None or keep(k):
            err += abs(pred.get(k, 0) - g)
            tot += g
    return err, tot


def _cell(e: tuple[int, int]) -> str:
    return f"{e[0]}/{e[1]} = {e[0] / e[1]:.3f}" if e[1] else "-"


def report(gt: dict[Key, int], preds: dict[str, dict[Key, int]], seqs: list[str]) -> dict[str, Any]:
    """Print the tables of one rate; return the figures."""
    names = list(preds)
    rows: list[tuple[str, ...]] = [("", *names)]
    figures: dict[str, Any] = {}
    groups: list[tuple[str, Any]] = [(s, lambda k, s=s: k[0] == s) for s in seqs]
    groups += [(f"orientation {o}", lambda k, o=o: k[1][0] == o) for o in ORIENTATIONS]
    groups += [
        ("tuned (02, 04, 09, 10)", lambda k: k[0] in TUNED),
        ("held out (05, 11, 13)", lambda k: k[0] in HELD_OUT),
        ("overall", None),
    ]
    for label, keep in groups:
        cells = {n: error(gt, p, keep) for n, p in preds.items()}
        figures[label] = {n: {"err": e, "gt": t, "rel": e / t if t else None} for n, (e, t) in cells.items()}
        rows.append((label, *(_cell(cells[n]) for n in names)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    return figures


def add_variant_args(ap: argparse.ArgumentParser) -> None:
    """``--line-kw``, ``--analytics-kw``, ``--tracker-kw``: one lever measured from the command line."""
    for what, where in (("line", "LineSpec"), ("analytics", "CameraAnalytics"), ("tracker", "ByteTracker")):
        ap.add_argument(
            f"--{what}-kw",
            type=_json_object,
            default={},
            metavar="JSON",
            help=f"edge's {where} settings to override, as a JSON object (e.g. a lever to measure)",
        )


def variant_kw(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The keyword arguments of :func:`run_edge` that :func:`add_variant_args` parsed."""
    return {"line_kw": args.line_kw, "analytics_kw": args.analytics_kw, "tracker_kw": args.tracker_kw}


def variant_problem(kw: dict[str, dict[str, Any]]) -> str | None:
    """Why the overrides of :func:`variant_kw` cannot run (an unknown or invalid setting), or None."""
    from edge.config import TrackerConfig  # noqa: PLC0415
    from edge.events import CameraAnalytics, LineSpec  # noqa: PLC0415
    from edge.tools.specs import build_tracker  # noqa: PLC0415

    try:
        LineSpec("probe", (0.0, 0.0), (1.0, 0.0), **kw["line_kw"])
        CameraAnalytics("probe", [], run_id="probe", **kw["analytics_kw"])
        build_tracker(TrackerConfig(), 30.0, "probe", **kw["tracker_kw"])
    except (TypeError, ValueError) as err:
        return str(err)
    return None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"min_frames\": 2}'")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="edge bench counting", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of MOT17-XX sequences")
    ap.add_argument("--seqs", nargs="*", help="sequence names (default: all)")
    ap.add_argument("--rates", nargs="*", default=["native", "5"], help="'native' and/or target fps")
    ap.add_argument("--sv-python", help="interpreter with supervision 0.26.x (omit: edge only)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument(
        "--oracle", action="store_true", help="also count with ground-truth ids on the detections"
    )
    ap.add_argument("--sv-worker", action="store_true", help=argparse.SUPPRESS)
    add_variant_args(ap)
    args = ap.parse_args(argv)
    if args.sv_worker:
        return sv_worker()

    seqs = load(args.data, args.seqs)
    if not seqs:
        print(f"no MOT17 sequences under {args.data}", file=sys.stderr)
        return 2
    problem = variant_problem(variant_kw(args))
    if problem:
        print(f"edge bench counting: {problem}", file=sys.stderr)
        return 2
    rates: list[float | None] = [None if r == "native" else float(r) for r in args.rates]
    lines = {s.name: grid_lines(s.width, s.height) for s in seqs}
    jobs = [
        {
            "seq": s.name,
            "det": str(s.path / "det.txt"),
            "fps": s.fps,
            "length": s.length,
            "stride": stride_for(s.fps, r),
            "lines": lines[s.name],
        }
        for r in rates
        for s in seqs
    ]
    sv_proc = start_sv(args.sv_python, jobs) if args.sv_python else None

    gt: dict[Key, int] = {}
    for s in seqs:
        gt.update(ground_truth(s, lines[s.name]))
    t0 = time.perf_counter()
    edge_by_rate: list[dict[Key, int]] = []
    for r in rates:
        pred: dict[Key, int] = {}
        for seq in seqs:
            pred.update(run_edge(seq, lines[seq.name], stride_for(seq.fps, r), **variant_kw(args)))
        edge_by_rate.append(pred)
    edge_s = time.perf_counter() - t0
    oracle_by_rate: list[dict[Key, int]] = []
    if args.oracle:
        for r in rates:
            pred = {}
            for seq in seqs:
                pred.update(run_oracle(seq, lines[seq.name], stride_for(seq.fps, r)))
            oracle_by_rate.append(pred)

    sv_by_rate: list[dict[Key, int]] = [{} for _ in rates]
    sv_version = None
    if sv_proc is not None:
        assert sv_proc.stdout is not None
        out = sv_proc.stdout.read()
        sv_proc.wait()
        if sv_proc.returncode != 0:
            print(f"supervision worker failed with {sv_proc.returncode}", file=sys.stderr)
            return 1
        res = json.loads(out)
        sv_version = res["version"]
        for i, item in enumerate(res["results"]):
            ri = i // len(seqs)
            for ln, dirs in item["tallies"].items():
                for d, n in dirs.items():
                    sv_by_rate[ri][(item["seq"], ln, d)] = n

    total_gt = sum(gt.values())
    print(f"{len(seqs)} sequences x {len(ORIENTATIONS) * len(POSITIONS)} lines, {total_gt} true crossings")
    if sv_version:
        print(f"supervision {sv_version} (sv.ByteTrack + sv.LineZone)")
    result: dict[str, Any] = {"gt_total": total_gt, "supervision": sv_version, "rates": {}}
    ok = True
    for i, (r, e_pred, s_pred) in enumerate(zip(rates, edge_by_rate, sv_by_rate, strict=True)):
        label = "native fps (every frame)" if r is None else f"~{r:g} fps (every round(fps/{r:g})-th frame)"
        print(f"\n== {label}")
        preds = {"edge": e_pred}
        if sv_proc is not None:
            preds["supervision"] = s_pred
        if oracle_by_rate:
            preds["oracle ids (floor)"] = oracle_by_rate[i]
        figs = report(gt, preds, [s.name for s in seqs])
        result["rates"]["native" if r is None else f"{r:g}"] = figs
        if sv_proc is not None:
            ok &= all(figs[s.name]["edge"]["err"] < figs[s.name]["supervision"]["err"] for s in seqs)
    print(f"\nedge tracking + counting, all rates: {edge_s:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
