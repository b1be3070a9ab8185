"""Decode YOLOv8 / YOLO11 detect outputs into :class:`~edge.types.Detections`.

The models' raw output is ``float32 (B, 4 + nc, N)``: for each of ``N`` anchors the box centre, width and
height in model-input pixels, then one score per class (no objectness column). Decoding one image is:

1. best score per anchor over the allowed classes (one contiguous pass per class row, vectorised),
2. score threshold — cheap, and it leaves a few hundred of the thousands of anchors,
3. for the survivors only: best class, ``cx, cy, w, h`` -> ``x1, y1, x2, y2``,
4. class-aware greedy NMS, stopping at ``max_det`` kept boxes,
5. undo the letterbox (subtract padding, divide by scale) and clip to the frame.

Everything runs in Numba kernels compiled with ``nogil=True`` (so a detector thread does not hold the GIL
while decoding) and ``cache=True`` (so a restart does not pay the compile time again). This module does not
import onnxruntime: it is tested with hand-made arrays.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from edge.types import Detections

if TYPE_CHECKING:
    from collections.abc import Sequence

FloatArray = npt.NDArray[np.float32]

MAX_CANDIDATES = 30_000
"""At most this many above-threshold anchors enter NMS (the highest-scoring ones), as Ultralytics does;
it bounds NMS time when a too-low threshold lets everything through."""


@njit(nogil=True, cache=True)
def _best_scores(pred: FloatArray, class_rows: npt.NDArray[np.int64], best: FloatArray) -> None:
    # Row by row: each class row is contiguous, so this inner loop vectorises; a per-anchor argmax over
    # the class axis would stride through memory instead.
    n = pred.shape[1]
    for j in range(n):
        best[j] = -np.inf
    for c in class_rows:
        row = pred[4 + c]
        for j in range(n):
            best[j] = max(best[j], row[j])


@njit(nogil=True, cache=True)
def _decode_one(
    pred: FloatArray,
    class_rows: npt.NDArray[np.int64],
    best: FloatArray,
    confidence: float,
    iou: float,
    max_det: int,
    max_candidates: int,
    scale: float,
    pad_x: float,
    pad_y: float,
    width: float,
    height: float,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int32]]:
    _best_scores(pred, class_rows, best)
    # Compare in float32, the scores' own precision, so a score equal to the threshold is dropped.
    cand = np.nonzero(best > np.float32(confidence))[0]
    # Highest score first; a stable sort keeps equal scores in anchor order, so results are deterministic.
    order = np.argsort(-best[cand], kind="mergesort")
    if order.shape[0] > max_candidates:
        order = order[:max_candidates]
    k = order.shape[0]
    boxes = np.empty((k, 4), np.float32)
    scores = np.empty(k, np.float32)
    classes = np.empty(k, np.int32)
    for i in range(k):
        j = cand[order[i]]
        s = best[j]
        cls = -1
        for c in class_rows:
            if pred[4 + c, j] == s:
                cls = c
                break
        cx = pred[0, j]
        cy = pred[1, j]
        hw = pred[2, j] * np.float32(0.5)
        hh = pred[3, j] * np.float32(0.5)
        boxes[i, 0] = cx - hw
        boxes[i, 1] = cy - hh
        boxes[i, 2] = cx + hw
        boxes[i, 3] = cy + hh
        scores[i] = s
        classes[i] = cls

    # Greedy NMS against the boxes kept so far: O(k * max_det), bounded even for a low threshold.
    keep = np.empty(min(k, max_det), np.int64)
    n_keep = 0
    for i in range(k):
        if n_keep >= max_det:
            break
        x1 = boxes[i, 0]
        y1 = boxes[i, 1]
        x2 = boxes[i, 2]
        y2 = boxes[i, 3]
        area_i = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
        suppressed = False
        for m in range(n_keep):
            q = keep[m]
            if classes[q] != classes[i]:
                continue
            iw = min(x2, boxes[q, 2]) - max(x1, boxes[q, 0])
            ih = min(y2, boxes[q, 3]) - max(y1, boxes[q, 1])
            if iw <= 0.0 or ih <= 0.0:
                continue
            inter = iw * ih
            area_q = max(boxes[q, 2] - boxes[q, 0], 0.0) * max(boxes[q, 3] - boxes[q, 1], 0.0)
            if inter > iou * (area_i + area_q - inter):
                suppressed = True
                break
        if not suppressed:
            keep[n_keep] = i
            n_keep += 1

    xyxy = np.empty((n_keep, 4), np.float32)
    conf = np.empty(n_keep, np.float32)
    cls_out = np.empty(n_keep, np.int32)
    inv = 1.0 / scale
    for m in range(n_keep):
        q = keep[m]
        xyxy[m, 0] = min(max((boxes[q, 0] - pad_x) * inv, 0.0), width)
        xyxy[m, 1] = min(max((boxes[q, 1] - pad_y) * inv, 0.0), height)
        xyxy[m, 2] = min(max((boxes[q, 2] - pad_x) * inv, 0.0), width)
        xyxy[m, 3] = min(max((boxes[q, 3] - pad_y) * inv, 0.0), height)
        conf[m] = scores[q]
        cls_out[m] = classes[q]
    return xyxy, conf, cls_out


@njit(nogil=True, cache=True)
def _decode_batch(
    out: npt.NDArray[np.float32],
    params: npt.NDArray[np.float64],
    class_rows: npt.NDArray[np.int64],
    best: FloatArray,
    confidence: float,
    iou: float,
    max_det: int,
    max_candidates: int,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    # One call for the whole batch: each Python -> Numba dispatch costs more than decoding a frame's
    # few candidates once the model has flushed the caches. Rows of image b are bounds[b]:bounds[b + 1].
    n = out.shape[0]
    xyxy = np.empty((n * max_det, 4), np.float32)
    conf = np.empty(n * max_det, np.float32)
    cls = np.empty(n * max_det, np.int32)
    bounds = np.zeros(n + 1, np.int64)
    k = 0
    for b in range(n):
        bx, bc, bk = _decode_one(
            out[b],
            class_rows,
            best,
            confidence,
            iou,
            max_det,
            max_candidates,
            params[b, 0],
            params[b, 1],
            params[b, 2],
            params[b, 3],
            params[b, 4],
        )
        m = bc.shape[0]
        xyxy[k : k + m] = bx
        conf[k : k + m] = bc
        cls[k : k + m] = bk
        k += m
        bounds[b + 1] = k
    return xyxy[:k], conf[:k], cls[:k], bounds


def class_rows_for(num_classes: int, classes: Sequence[int] | None) -> npt.NDArray[np.int64]:
    """``int64`` indices of the class rows to consider; all of them when ``classes`` is ``None``.

    Raises ``ValueError`` for an index outside ``0 .. num_classes - 1``.
    """
    if classes is None:
        return np.arange(num_classes, dtype=np.int64)
    rows = np.unique(np.asarray(list(classes), dtype=np.int64))
    bad = rows[(rows < 0) | (rows >= num_classes)]
    if bad.size:
        msg = f"class ids {bad.tolist()} out of range: the model has classes 0..{num_classes - 1}"
        raise ValueError(msg)
    return rows


class YoloDecoder:
    """Turns one model output into one :class:`Detections` per image.

    Args:
        num_classes: ``nc``; the output must have ``4 + nc`` rows.
        confidence: keep boxes whose best class score is strictly above this. Lower finds more faint or
            occluded objects at the cost of more false positives (and a little more NMS time).
        iou: suppress a box whose IoU with a higher-scoring box of the same class is above this. Higher
            keeps more boxes of crowded, overlapping objects and also more duplicates.
        classes: class ids to keep (``None`` = all). Filtering happens before the threshold, so unwanted
            classes cost nothing downstream and never suppress wanted ones.
        max_det: at most this many boxes per image, highest scores first.

    Not thread-safe: it owns a scratch buffer; use one decoder per thread.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        confidence: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[int] | None = None,
        max_det: int = 300,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be in 0..1, got {confidence}")
        if not 0.0 <= iou <= 1.0:
            raise ValueError(f"iou must be in 0..1, got {iou}")
        if max_det < 1:
            raise ValueError(f"max_det must be >= 1, got {max_det}")
        self.num_classes = num_classes
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.class_rows = class_rows_for(num_classes, classes)
        self._best = np.empty(0, np.float32)

    def decode(
        self,
        pred: FloatArray,
        *,
        scale: float = 1.0,
        pad_x: float = 0.0,
        pad_y: float = 0.0,
        width: float,
        height: float,
    ) -> Detections:
        """Decode ``float32 (4 + nc, N)`` for one image.

        ``scale``, ``pad_x``, ``pad_y`` describe the letterbox (input = frame * scale + pad); ``width`` and
        ``height`` are the original frame's size, which boxes are clipped to.
        """
        if pred.ndim != 2 or pred.shape[0] != 4 + self.num_classes:
            msg = f"expected model output (4 + {self.num_classes}, N) per image, got {pred.shape}"
            raise ValueError(msg)
        if pred.dtype != np.float32:
            pred = pred.astype(np.float32)
        if self._best.shape[0] != pred.shape[1]:
            self._best = np.empty(pred.shape[1], np.float32)
        xyxy, conf, cls = _decode_one(
            pred,
            self.class_rows,
            self._best,
            self.confidence,
            self.iou,
            self.max_det,
            MAX_CANDIDATES,
            float(scale),
            float(pad_x),
            float(pad_y),
            float(width),
            float(height),
        )
        return Detections(xyxy, conf, cls, np.full(conf.shape[0], -1, np.int64))

    def decode_batch(self, out: FloatArray, params: npt.NDArray[np.float64]) -> list[Detections]:
        """Decode ``float32 (B, 4 + nc, N)`` for a batch; ``params`` is ``float64 (B, 5)`` with each
        image's ``scale, pad_x, pad_y, width, height`` (see :meth:`decode`). One Numba call for all."""
        if out.ndim != 3 or out.shape[1] != 4 + self.num_classes:
            msg = f"expected model output (B, 4 + {self.num_classes}, N), got {out.shape}"
            raise ValueError(msg)
        if params.shape != (out.shape[0], 5):
            raise ValueError(f"expected params ({out.shape[0]}, 5), got {params.shape}")
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        if self._best.shape[0] != out.shape[2]:
            self._best = np.empty(out.shape[2], np.float32)
        xyxy, conf, cls, bounds = _decode_batch(
            out, params, self.class_rows, self._best, self.confidence, self.iou, self.max_det, MAX_CANDIDATES
        )
        track = np.full(conf.shape[0], -1, np.int64)
        edges = bounds.tolist()
        # Views into the batch arrays: no copy per image.
        return [Detections(xyxy[i:j], conf[i:j], cls[i:j], track[i:j]) for i, j in pairwise(edges)]
