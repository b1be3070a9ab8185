"""Build the development sets used to choose tracker and counting rules without the held-out MOT17.

The counting protocol (``edge bench counting``) tunes on MOT17-02, -04, -09 and -10 and holds out -05,
-11 and -13. Only one tuning sequence (-10) has a moving camera, while all three held-out ones do, so a
rule for moving cameras cannot be judged on the tuning sequences alone. This script writes five more
sets, in MOT17's layout, that ``edge bench counting --data DIR`` and ``edge bench tracker --mot-dir DIR``
read like MOT17:

* ``DEST/mot15``: the seven MOT15 train sequences of ``shared/data/mot15`` (two moving cameras:
  ETH-Sunnyday at 14 fps and KITTI-13 at 10 fps). Their ACF detection scores are not 0..1; each
  sequence's scores are replaced by their rank, scaled to (0, 1] (so half of the detections are
  "high" at ``track_thresh`` 0.5). The ground truth gets MOT17's class and visibility columns.
* ``DEST/pans``: MOT17-02, -04 and -09 (static cameras, tuning sequences) as if the camera panned:
  every detection and ground-truth box is shifted by a slow sway (8 % of the width, 8 s period) and one
  turn of 40 % of the width over 1.5 s at 40 % of the sequence (up to 27 px per frame at 30 fps).
  Detections whose centre leaves the frame are dropped. Pure translation: a turning car also
  changes the perspective, which this does not model.
* ``DEST/zooms``: the same three sequences as if the camera moved forward and back (a camera on a
  walking person or a vehicle): every box is scaled about a point near the frame's centre by
  ``1.25 + 0.25 sin(2 pi t / 10 s)`` (up to 13 % per second, about a walker's pace towards people
  10 m away), so boxes near the edges move outward fast and grow while those at the centre barely
  move. Boxes whose centre leaves the frame are dropped. One scale for every depth: real forward
  motion enlarges near people faster than far ones (``walks`` does).
* ``DEST/shakes`` (stop 28): the same three sequences as if the camera were hand-held by a walker:
  every box shifted by a bob of 1.5 % of the height at 1.8 Hz (the steps) and a sway of 1 % of the
  width at 0.9 Hz. A track's Kalman velocity cannot follow a motion that reverses every quarter
  second, and a person standing near a line is carried over it and back (the ground truth counts
  that once per direction, as it would for the real camera).
* ``DEST/walks`` (stop 28): the same three sequences as if the camera walked 4 m into the scene and
  back over 16 s (up to 0.8 m/s). Each box is scaled about the frame's centre by Z / (Z - d), with
  its depth Z from its height (a 1.7 m person, focal length 0.9 frame widths) and d the camera's
  travel: near people grow and sweep outward fast, far ones barely move, and people the camera
  passes (nearer than 1.5 m) leave. A detection takes the depth of the ground-truth box it overlaps,
  so a half-hidden person moves with its whole self.

    .venv/bin/python scripts/make_counting_devsets.py /tmp/dev
    .venv/bin/python -m edge bench counting --data /tmp/dev/mot15 --rates native 5
"""

from __future__ import annotations

import argparse
import configparser
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAN_SEQUENCES = ("MOT17-02", "MOT17-04", "MOT17-09")

Rows = npt.NDArray[np.float64]


def read_info(path: Path) -> tuple[float, int, int, int]:
    cp = configparser.ConfigParser()
    cp.read(path)
    s = cp["Sequence"]
    return float(s["frameRate"]), int(s["seqLength"]), int(s["imWidth"]), int(s["imHeight"])


def write_sequence(dest: Path, name: str, info: tuple[float, int, int, int], det: Rows, gt: Rows) -> None:
    fps, length, width, height = info
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps:g}\nseqLength={length}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n",
        encoding="utf-8",
    )
    np.savetxt(dest / "det.txt", det, fmt="%g", delimiter=",")
    np.savetxt(dest / "gt.txt", gt, fmt="%g", delimiter=",")


def mot15(src: Path, dest: Path) -> list[str]:
    names = []
    for seq in sorted(p for p in src.iterdir() if (p / "det.txt").is_file()):
        det = np.loadtxt(seq / "det.txt", delimiter=",", ndmin=2)[:, :7]
        rank = np.argsort(np.argsort(det[:, 6], kind="stable"), kind="stable")
        det[:, 6] = (rank + 1) / len(rank)
        det = det[np.argsort(det[:, 0], kind="stable")]
        gt = np.loadtxt(seq / "gt.txt", delimiter=",", ndmin=2)[:, :6]
        ones = np.ones((len(gt), 3))  # consider, class (pedestrian), visibility
        write_sequence(dest / seq.name, seq.name, read_info(seq / "seqinfo.ini"), det, np.hstack([gt, ones]))
        names.append(seq.name)
    return names


def pan_shift(fps: float, length: int, width: int) -> npt.NDArray[np.float64]:
    """Horizontal scene shift per frame (index = frame - 1) in pixels."""
    t = np.arange(1, length + 1) / fps
    t0 = 0.4 * length / fps
    turn = 0.4 * width * 0.5 * (1.0 - np.cos(np.pi * np.clip((t - t0) / 1.5, 0.0, 1.0)))
    return 0.08 * width * np.sin(2.0 * np.pi * t / 8.0) - turn + 0.2 * width


def pan_moves(info: tuple[float, int, int, int], _gt: Rows) -> Callable[[Rows], Rows]:
    """The pans' move of MOT rows: a horizontal shift per frame (:func:`pan_shift`)."""
    fps, length, width, _height = info
    shift = pan_shift(fps, length, width)

    def move(rows: Rows) -> Rows:
        out = rows.copy()
        out[:, 2] += shift[rows[:, 0].astype(np.int64) - 1]
        return out

    return move


def zoom_scale(fps: float, length: int) -> npt.NDArray[np.float64]:
    """Scale of the scene about the zoom centre per frame (index = frame - 1)."""
    t = np.arange(1, length + 1) / fps
    return 1.25 + 0.25 * np.sin(2.0 * np.pi * t / 10.0)


def zoom_moves(info: tuple[float, int, int, int], _gt: Rows) -> Callable[[Rows], Rows]:
    """The zooms' move of MOT rows: every box scaled per frame (:func:`zoom_scale`) about a point near
    the frame's centre."""
    fps, length, width, height = info
    scale = zoom_scale(fps, length)
    centre = np.array([0.5 * width, 0.45 * height])

    def move(rows: Rows) -> Rows:
        out = rows.copy()
        s = scale[rows[:, 0].astype(np.int64) - 1, None]
        out[:, 2:4] = centre + s * (rows[:, 2:4] - centre)
        out[:, 4:6] = s * rows[:, 4:6]
        return out

    return move


def shake_moves(info: tuple[float, int, int, int], _gt: Rows) -> Callable[[Rows], Rows]:
    """The shakes' move of MOT rows: a hand-held camera's bob, every box shifted by
    1.5 % of the height at 1.8 Hz (a walker's steps) and 1 % of the width at 0.9 Hz."""
    fps, length, width, height = info
    t = np.arange(1, length + 1) / fps
    dx = 0.01 * width * np.sin(2.0 * np.pi * 0.9 * t + 1.0)
    dy = 0.015 * height * np.sin(2.0 * np.pi * 1.8 * t)

    def move(rows: Rows) -> Rows:
        out = rows.copy()
        i = rows[:, 0].astype(np.int64) - 1
        out[:, 2] += dx[i]
        out[:, 3] += dy[i]
        return out

    return move


WALK_FOCAL = 0.9  # focal length in frame widths (a 58 degree horizontal field of view)
WALK_PERSON_M = 1.7  # a person's height in metres: depth = focal * 1.7 m / box height
WALK_METRES = 4.0  # how far the camera walks in, and back, over WALK_PERIOD_S
WALK_PERIOD_S = 16.0
WALK_NEAREST_M = 1.5  # people closer than this to the camera are passed: their boxes are dropped


def depth_of(heights: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    """Depth in metres of a person whose box is ``heights`` pixels tall (pinhole camera)."""
    return WALK_FOCAL * width * WALK_PERSON_M / np.maximum(heights, 1.0)


def detection_depths(det: Rows, gt: Rows, width: int) -> npt.NDArray[np.float64]:
    """Depth of every row of ``det``: that of the ground-truth box it overlaps most in its frame (IoU >=
    0.3; ground-truth boxes are full-body, so a half-hidden person does not look far); a detection of
    nobody is judged by its own height."""
    order = np.argsort(det[:, 0], kind="stable")  # ground truth is sorted by id, not frame
    det = det[order]
    depth = depth_of(det[:, 5], width)
    d_starts = np.searchsorted(det[:, 0], np.unique(det[:, 0]))
    g_sorted = gt[np.argsort(gt[:, 0], kind="stable")]
    for lo, hi in zip(d_starts, [*d_starts[1:], len(det)], strict=True):
        f = det[lo, 0]
        g = g_sorted[np.searchsorted(g_sorted[:, 0], f) : np.searchsorted(g_sorted[:, 0], f, side="right")]
        if len(g) == 0:
            continue
        a, b = det[lo:hi, None, 2:6], g[None, :, 2:6]  # x, y, w, h
        lo_xy = np.maximum(a[..., :2], b[..., :2])
        hi_xy = np.minimum(a[..., :2] + a[..., 2:], b[..., :2] + b[..., 2:])
        inter = np.prod(np.clip(hi_xy - lo_xy, 0, None), axis=-1)
        iou = inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)
        best = np.argmax(iou, axis=1)
        hit = iou[np.arange(hi - lo), best] >= 0.3
        depth[lo:hi][hit] = depth_of(g[best[hit], 5], width)
    out = np.empty_like(depth)
    out[order] = depth
    return out


def walk_rows(info: tuple[float, int, int, int], rows: Rows, depth: npt.NDArray[np.float64]) -> Rows:
    """The walks' move of MOT rows at ``depth`` metres: the camera walks ``WALK_METRES`` forward and
    back along its axis (a cosine over ``WALK_PERIOD_S``, up to 0.8 m/s), so a box at depth Z is
    scaled by Z / (Z - d) about the frame's centre: near people grow and sweep outward fast, far ones
    barely move. Rows nearer than ``WALK_NEAREST_M`` after the move (passed by the camera) are dropped."""
    fps, _length, width, height = info
    t = rows[:, 0] / fps
    d = WALK_METRES * 0.5 * (1.0 - np.cos(2.0 * np.pi * t / WALK_PERIOD_S))
    keep = depth - d >= WALK_NEAREST_M
    s = (depth / np.maximum(depth - d, 1e-6))[:, None]
    centre = np.array([0.5 * width, 0.45 * height])
    out = rows.copy()
    out[:, 2:4] = centre + s * (rows[:, 2:4] - centre)
    out[:, 4:6] = s * rows[:, 4:6]
    return out[keep]


def walk_moves(info: tuple[float, int, int, int], gt: Rows) -> Callable[[Rows], Rows]:
    """The walks' move of MOT rows (:func:`walk_rows`), each row at the depth of
    :func:`detection_depths` (a ground-truth row overlaps itself most, so it keeps its own)."""

    def move(rows: Rows) -> Rows:
        return walk_rows(info, rows, detection_depths(rows, gt, info[2]))

    return move


Moves = Callable[[tuple[float, int, int, int], Rows], Callable[[Rows], Rows]]
"""A set's move: (seqinfo, the sequence's ground truth) -> the function that moves MOT rows."""


def moved(src: Path, dest: Path, suffix: str, moves: Moves) -> list[str]:
    """:data:`PAN_SEQUENCES` with every detection and ground-truth box moved as ``moves(info, gt)``
    says, as ``<name><suffix>``; detections whose centre leaves the frame are dropped."""
    names = []
    for name in PAN_SEQUENCES:
        info = read_info(src / name / "seqinfo.ini")
        _fps, _length, width, height = info
        gt = np.loadtxt(src / name / "gt.txt", delimiter=",", ndmin=2)
        move = moves(info, gt)
        det = move(np.loadtxt(src / name / "det.txt", delimiter=",", ndmin=2))
        cx = det[:, 2] + det[:, 4] / 2.0
        cy = det[:, 3] + det[:, 5] / 2.0
        det = det[(cx > 0) & (cx < width) & (cy > 0) & (cy < height)]
        gt = move(gt)
        write_sequence(dest / f"{name}{suffix}", f"{name}{suffix}", info, det, gt)
        names.append(f"{name}{suffix}")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path, help="folder to write mot15/, pans/, zooms/, shakes/ and walks/ into")
    ap.add_argument("--data", type=Path, default=SHARED, help="shared/data (with mot15/ and mot17/)")
    args = ap.parse_args(argv)
    if not (args.data / "mot15").is_dir() or not (args.data / "mot17").is_dir():
        print(f"no mot15/ and mot17/ under {args.data}", file=sys.stderr)
        return 2
    a = mot15(args.data / "mot15", args.dest / "mot15")
    b = moved(args.data / "mot17", args.dest / "pans", "p", pan_moves)
    c = moved(args.data / "mot17", args.dest / "zooms", "z", zoom_moves)
    d = moved(args.data / "mot17", args.dest / "shakes", "s", shake_moves)
    e = moved(args.data / "mot17", args.dest / "walks", "w", walk_moves)
    for group, names in (("mot15", a), ("pans", b), ("zooms", c), ("shakes", d), ("walks", e)):
        print(f"{args.dest / group}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
