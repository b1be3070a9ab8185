"""``edge evaluate``: compare line counts with the crossings in MOT ground truth.

True crossings are derived from the ground-truth trajectories (rows with ``class == 1`` and
``consider == 1``, i.e. pedestrians) with the *same* line rules as the live counter: the same anchor
point, segment intersection, direction and at-most-once-per-direction rule. Only the hysteresis is
switched off (``min_frames=1``, ``min_distance=0``), because ground-truth boxes do not flicker. The
prediction is either an events file written by ``edge replay`` or a detections file replayed here::

    edge evaluate --gt MOT17-04/gt/gt.txt --config cfg.yaml --camera c --events ev.jsonl
    edge evaluate --gt MOT17-04/gt/gt.txt --config cfg.yaml --camera c --detections det.txt

It prints per line and direction ground truth vs predicted vs error and the total relative count error
``sum(|pred - gt|) / sum(gt)``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import EdgeError
from edge.events import CameraAnalytics, LineCrossing, LineSpec
from edge.tools import report_errors
from edge.types import Detections

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

Tally = dict[tuple[str, str], int]
"""(line name, ``in``/``out``) -> crossings."""


def read_gt(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames int64, ids int64, xyxy float32) of the pedestrian rows of a MOT ``gt.txt``, by frame."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    if rows.shape[1] < 8:
        raise EdgeError(f"{path}: expected the 9-column MOT gt format, got {rows.shape[1]} columns")
    rows = rows[(rows[:, 6] == 1) & (rows[:, 7] == 1)]
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    xyxy = np.column_stack((rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5])).astype(
        np.float32
    )
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), xyxy


def gt_crossings(gt_path: Path, lines: Sequence[LineSpec], class_id: int = 0) -> Tally:
    """True crossings of each line by the ground-truth pedestrians (see the module docstring)."""
    analytics, _events = gt_events(gt_path, lines, class_id)
    return tally(analytics)


def gt_events(
    gt_path: Path, lines: Sequence[LineSpec], class_id: int = 0
) -> tuple[CameraAnalytics, list[LineCrossing]]:
    """The analytics that counted the ground truth, and each true crossing as an event (its
    ``track_id`` is the ground-truth id, its ``frame`` the frame of the crossing)."""
    frames, ids, xyxy = read_gt(gt_path)
    truth = [
        replace(s, min_frames=1, min_distance=0.0, classes=None, backfill_seconds=0.0, forward_seconds=0.0)
        for s in lines
    ]
    analytics = CameraAnalytics("gt", truth, run_id="gt")
    events: list[LineCrossing] = []
    bounds = np.flatnonzero(np.diff(frames)) + 1
    for sel in np.split(np.arange(frames.shape[0]), bounds):
        if sel.shape[0] == 0:
            continue
        dets = Detections(
            xyxy=xyxy[sel],
            confidence=np.ones(sel.shape[0], np.float32),
            class_id=np.full(sel.shape[0], class_id, np.int32),
            track_id=ids[sel],
        )
        found = analytics.update(dets, frame_no=int(frames[sel[0]]))
        events.extend(e for e in found if isinstance(e, LineCrossing))
    return analytics, events


def tally(analytics: CameraAnalytics, class_id: int | None = None) -> Tally:
    """Crossings per (line, direction) of an analytics object, for one class or all."""
    out: Tally = {}
    for name, counter in analytics.lines.items():
        counts = counter.counts()
        for d in ("in", "out"):
            per_class = counts[d]
            out[(name, d)] = sum(per_class.values()) if class_id is None else per_class.get(class_id, 0)
    return out


def events_tally(path: Path, camera: str, lines: Sequence[str], class_id: int | None = None) -> Tally:
    """Crossings per (line, direction) counted from a JSONL events file written by ``edge replay``."""
    out: Tally = {(name, d): 0 for name in lines for d in ("in", "out")}
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError as err:
                raise EdgeError(f"{path}:{n}: not a JSON line ({err})") from None
            if event.get("type") != "line_crossing" or event.get("camera") != camera:
                continue
            if class_id is not None and event.get("class_id") != class_id:
                continue
            key = (event["line"], event["direction"])
            if key in out:
                out[key] += 1
    return out


def relative_error(gt: Mapping[tuple[str, str], int], pred: Mapping[tuple[str, str], int]) -> float:
    """``sum(|pred - gt|) / sum(gt)`` over every (line, direction); ``nan`` when there is no truth."""
    total = sum(gt.values())
    err = sum(abs(pred.get(k, 0) - v) for k, v in gt.items())
    return err / total if total else float("nan")


def report(gt: Tally, pred: Tally) -> str:
    rows = [("line", "direction", "gt", "pred", "error")]
    rows.extend(
        (line, d, str(g), str(pred.get((line, d), 0)), f"{pred.get((line, d), 0) - g:+d}")
        for (line, d), g in gt.items()
    )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    total_gt = sum(gt.values())
    total_err = sum(abs(pred.get(k, 0) - v) for k, v in gt.items())
    return f"{table}\ntotal relative error: {total_err}/{total_gt} = {relative_error(gt, pred):.4f}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge evaluate",
        description="Compare line counts with the crossings of MOT ground-truth trajectories.",
    )
    p.add_argument("--gt", type=Path, required=True, help="MOT gt.txt (frame,id,x,y,w,h,consider,class,vis)")
    p.add_argument("--config", type=Path, required=True, help="edge YAML config with the camera's lines")
    p.add_argument("--camera", help="camera whose lines to use (default: the only one)")
    pred = p.add_mutually_exclusive_group(required=True)
    pred.add_argument("--events", type=Path, help="events JSONL written by `edge replay`")
    pred.add_argument("--detections", type=Path, help="MOT det.txt to replay now")
    p.add_argument("--fps", type=float, help="frame rate for --detections (default: seqinfo.ini, 30)")
    p.add_argument("--size", help="frame size WxH for normalized coordinates (default: seqinfo.ini)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge evaluate``; returns the exit status."""
    args = parser().parse_args(argv)
    return report_errors("evaluate", lambda: _main(args))


def _seqinfo_near(path: Path) -> tuple[int, int, float | None]:
    from edge.tracking.motio import read_seqinfo  # noqa: PLC0415

    for cand in (path.parent / "seqinfo.ini", path.parent.parent / "seqinfo.ini"):
        if cand.is_file():
            info = read_seqinfo(cand)
            return info.width, info.height, info.frame_rate
    return 0, 0, None


def _main(args: argparse.Namespace) -> int:
    from edge.config import COCO_CLASSES, load_settings  # noqa: PLC0415
    from edge.tools import replay  # noqa: PLC0415
    from edge.tools.specs import camera_specs, find_camera  # noqa: PLC0415

    settings = load_settings(args.config, check_model_classes=False)
    try:
        camera = find_camera(settings, args.camera)
    except KeyError as err:
        raise EdgeError(str(err.args[0])) from None
    if not camera.lines:
        raise EdgeError(f"camera {camera.name!r} has no lines to evaluate")
    if not args.gt.is_file():
        raise EdgeError(f"{args.gt}: no such file")
    width, height, fps = _seqinfo_near(args.gt)
    if args.size:
        try:
            w, h = args.size.lower().split("x")
            width, height = int(w), int(h)
        except ValueError:
            raise EdgeError(f"--size must look like 1920x1080, got {args.size!r}") from None
    if camera.coordinates == "normalized" and not (width and height):
        raise EdgeError("normalized coordinates need the frame size: pass --size WxH")
    lines, _zones = camera_specs(camera, width, height, COCO_CLASSES)
    person = 0
    truth = gt_crossings(args.gt, lines, class_id=person)
    if args.events is not None:
        if not args.events.is_file():
            raise EdgeError(f"{args.events}: no such file")
        pred = events_tally(args.events, camera.name, [s.name for s in lines], class_id=person)
    else:
        if not args.detections.is_file():
            raise EdgeError(f"{args.detections}: no such file")
        total, frames = replay.mot_frames(args.detections, class_id=person)
        analytics = replay.run(
            frames,
            total,
            camera=camera.name,
            lines=lines,
            zones=(),
            fps=args.fps or fps or camera.fps or 30.0,
            tracker=settings.tracker,
            class_names=COCO_CLASSES,
        )
        pred = tally(analytics, person)
    print(report(truth, pred))
    return 0
