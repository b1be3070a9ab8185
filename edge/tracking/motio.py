"""Read MOTChallenge files: ``det.txt`` / ``gt.txt`` (comma-separated rows) and ``seqinfo.ini``.

The detection format is ``frame, id, x, y, w, h, score[, ...]`` with 1-based frames and top-left
``x, y``; boxes come back as ``float32`` x1, y1, x2, y2 so they feed :class:`edge.types.Detections`
directly. Used by the tracker benchmark and by ``edge replay``.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class SeqInfo:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``."""

    name: str
    frame_rate: float
    length: int
    width: int
    height: int


@dataclass(frozen=True, slots=True, eq=False)
class MotDetections:
    """All rows of a ``det.txt``, sorted by frame, with per-frame slices.

    Attributes:
        frames: ``int64 (N,)`` 1-based frame of each row (non-decreasing).
        xyxy: ``float32 (N, 4)`` boxes as x1, y1, x2, y2.
        scores: ``float32 (N,)`` detection scores (column 7).
        starts: ``int64 (F + 2,)`` row range of frame ``f`` is ``starts[f]:starts[f + 1]`` for
            ``0 <= f <= F`` where ``F`` is the last frame (frame 0 is always empty).
    """

    frames: npt.NDArray[np.int64]
    xyxy: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    starts: npt.NDArray[np.int64]

    @property
    def last_frame(self) -> int:
        return int(self.starts.shape[0] - 2)

    def frame(self, f: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Boxes and scores of 1-based frame ``f`` (views; empty arrays past the last frame)."""
        if f < 0 or f > self.last_frame:
            return self.xyxy[:0], self.scores[:0]
        a, b = int(self.starts[f]), int(self.starts[f + 1])
        return self.xyxy[a:b], self.scores[a:b]


def _load_rows(path: Path, min_cols: int) -> npt.NDArray[np.float64]:
    text = path.read_text(encoding="utf-8")
    if not text.strip():  # np.loadtxt warns on empty input; an empty file is just no rows
        return np.zeros((0, min_cols), np.float64)
    rows = np.loadtxt(text.splitlines(), delimiter=",", dtype=np.float64, ndmin=2)
    if rows.shape[1] < min_cols:
        raise ValueError(f"{path}: expected at least {min_cols} comma-separated columns, got {rows.shape[1]}")
    return rows


def read_mot_detections(path: Path, *, min_score: float = -np.inf) -> MotDetections:
    """Read a MOTChallenge ``det.txt`` (``frame, -1, x, y, w, h, score, ...``) sorted by frame.

    Rows scoring below ``min_score`` are left out. Row order within a frame is kept (stable sort).
    """
    rows = _load_rows(path, 7)
    rows = rows[rows[:, 6] >= min_score]
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    frames = rows[:, 0].astype(np.int64)
    if frames.size and frames[0] < 1:
        raise ValueError(f"{path}: frame numbers start at 1, found {frames[0]}")
    xyxy = np.empty((rows.shape[0], 4), np.float32)
    xyxy[:, 0] = rows[:, 2]
    xyxy[:, 1] = rows[:, 3]
    xyxy[:, 2] = rows[:, 2] + rows[:, 4]
    xyxy[:, 3] = rows[:, 3] + rows[:, 5]
    last = int(frames[-1]) if frames.size else 0
    starts = np.searchsorted(frames, np.arange(last + 2), side="left").astype(np.int64)
    return MotDetections(frames, xyxy, rows[:, 6].astype(np.float32), starts)


def read_mot_detections_by_frame(
    path: Path, *, min_score: float = -np.inf
) -> dict[int, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    """``{frame: (xyxy float32 (N, 4), scores float32 (N,))}`` for the frames that have detections."""
    dets = read_mot_detections(path, min_score=min_score)
    return {int(f): dets.frame(int(f)) for f in np.unique(dets.frames)}


def read_seqinfo(path: Path) -> SeqInfo:
    """Parse ``seqinfo.ini`` (``path`` may be the file or the sequence folder)."""
    if path.is_dir():
        path = path / "seqinfo.ini"
    parser = configparser.ConfigParser()
    with path.open(encoding="utf-8") as fh:
        parser.read_file(fh)
    seq = parser["Sequence"]
    return SeqInfo(
        name=seq.get("name", path.parent.name),
        frame_rate=float(seq["frameRate"]),
        length=int(seq["seqLength"]),
        width=int(seq.get("imWidth", "0")),
        height=int(seq.get("imHeight", "0")),
    )
