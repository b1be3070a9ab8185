"""Do two detectors agree? Box-by-box comparison of one backend/precision against a reference.

Used by ``edge bench detector --agreement`` and the OpenVINO tests. The protocol (issue 17): run both
detectors on the same decoded frames; in each frame, pair every reference box with the candidate box of
the same class that overlaps it most, one to one, greedily from the highest IoU down; a pair counts as
*matched* when its IoU is at least ``iou_min`` (0.9). Reported: the share of reference boxes matched, the
share of candidate boxes matched (so extra boxes count against agreement too), and the confidence
differences of matched pairs (maximum and 99th percentile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from edge.types import Detections


def iou_matrix(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """IoU of every box in ``a (N, 4)`` with every box in ``b (M, 4)``, both x1, y1, x2, y2."""
    a64 = a.astype(np.float64)[:, None, :]
    b64 = b.astype(np.float64)[None, :, :]
    iw = np.clip(np.minimum(a64[..., 2], b64[..., 2]) - np.maximum(a64[..., 0], b64[..., 0]), 0, None)
    ih = np.clip(np.minimum(a64[..., 3], b64[..., 3]) - np.maximum(a64[..., 1], b64[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a64[..., 2] - a64[..., 0]) * (a64[..., 3] - a64[..., 1])
    area_b = (b64[..., 2] - b64[..., 0]) * (b64[..., 3] - b64[..., 1])
    union = area_a + area_b - inter
    out: npt.NDArray[np.float64] = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def match(ref: Detections, cand: Detections, iou_min: float = 0.9) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(ref row, cand row, IoU)`` of the same class with IoU >= ``iou_min``."""
    if len(ref.xyxy) == 0 or len(cand.xyxy) == 0:
        return []
    iou = iou_matrix(ref.xyxy, cand.xyxy)
    iou[ref.class_id[:, None] != cand.class_id[None, :]] = 0.0
    pairs: list[tuple[int, int, float]] = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        r, c = divmod(int(flat), iou.shape[1])
        value = float(iou[r, c])
        if value < iou_min:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c, value))
    return pairs


@dataclass
class Agreement:
    """Running totals of :func:`match` over many frames."""

    iou_min: float = 0.9
    frames: int = 0
    ref_boxes: int = 0
    cand_boxes: int = 0
    matched: int = 0
    conf_diffs: list[float] = field(default_factory=list)

    def add(self, ref: Detections, cand: Detections) -> None:
        pairs = match(ref, cand, self.iou_min)
        self.frames += 1
        self.ref_boxes += len(ref.xyxy)
        self.cand_boxes += len(cand.xyxy)
        self.matched += len(pairs)
        self.conf_diffs += [abs(float(ref.confidence[r]) - float(cand.confidence[c])) for r, c, _ in pairs]

    @property
    def ref_matched(self) -> float:
        """Share of reference boxes with a matching candidate box (1.0 when there are none)."""
        return self.matched / self.ref_boxes if self.ref_boxes else 1.0

    @property
    def cand_matched(self) -> float:
        """Share of candidate boxes with a matching reference box (1.0 when there are none)."""
        return self.matched / self.cand_boxes if self.cand_boxes else 1.0

    @property
    def conf_diff_max(self) -> float:
        return max(self.conf_diffs, default=0.0)

    @property
    def conf_diff_p99(self) -> float:
        return float(np.percentile(self.conf_diffs, 99)) if self.conf_diffs else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "iou_min": self.iou_min,
            "ref_boxes": self.ref_boxes,
            "cand_boxes": self.cand_boxes,
            "matched": self.matched,
            "ref_matched": round(self.ref_matched, 5),
            "cand_matched": round(self.cand_matched, 5),
            "conf_diff_max": round(self.conf_diff_max, 5),
            "conf_diff_p99": round(self.conf_diff_p99, 5),
        }
