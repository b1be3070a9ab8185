"""The data contract between stages.

Stages share exactly two types: :class:`Frame` (what capture hands to the detector) and
:class:`Detections` (what the detector hands to the tracker, and the tracker to the analytics).
``Detections`` is a set of parallel numpy arrays, one row per object, so every stage works on whole
arrays and no stage builds a Python object per detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Sequence

NO_TRACK: int = -1
"""``track_id`` of a detection that is not (yet) part of a confirmed track."""

BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.integer]


def _check(name: str, array: object, dtype: type[np.generic], shape: tuple[int | None, ...]) -> None:
    """Raise ``ValueError`` naming the field, the expected dtype/shape and what was given.

    Runs on every ``Detections`` built on the hot path, so the message is only formatted on failure.
    """
    if not isinstance(array, np.ndarray):
        msg = f"Detections.{name}: expected numpy.ndarray, got {type(array).__name__}"
        raise TypeError(msg)
    if array.dtype != dtype:
        msg = f"Detections.{name}: expected dtype {np.dtype(dtype)}, got {array.dtype}"
        raise ValueError(msg)
    got = array.shape
    if len(got) != len(shape) or any(
        want is not None and g != want for g, want in zip(got, shape, strict=False)
    ):
        dims = ["N" if d is None else str(d) for d in shape]
        expected = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
        msg = f"Detections.{name}: expected shape {expected}, got {got}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Objects found in one frame, as parallel arrays with one row per object.

    Attributes:
        xyxy: ``float32 (N, 4)`` boxes as x1, y1, x2, y2 in frame pixels.
        confidence: ``float32 (N,)`` detector score in 0..1.
        class_id: ``int32 (N,)`` class index of the model.
        track_id: ``int64 (N,)`` id of the confirmed track the row belongs to, ``-1`` for none.
        track_xyxy: optional ``float32 (N, 4)``, set by the tracker: the track's Kalman box for rows of a
            confirmed track (smoother than the detection box, whose bottom edge jumps when legs are
            occluded), the detection box itself elsewhere. ``None`` when nobody tracked the rows.
        link_id: optional ``int64 (N,)``, set by the tracker: on the first frame a new track is reported,
            the id of a *lost* track whose predicted box lay close to it (the same object, most likely,
            after an id switch), else ``-1``. The analytics let the new id inherit the lost one's line
            state so one passage never counts twice and a crossing through the gap still counts.

    Shapes and dtypes are checked on construction; a mismatch raises ``ValueError`` saying what was
    expected and what was given. Use :meth:`from_arrays` to convert loosely typed input.
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int32]
    track_id: npt.NDArray[np.int64]
    track_xyxy: npt.NDArray[np.float32] | None = None
    link_id: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        _check("xyxy", self.xyxy, np.float32, (None, 4))
        n = self.xyxy.shape[0]
        _check("confidence", self.confidence, np.float32, (n,))
        _check("class_id", self.class_id, np.int32, (n,))
        _check("track_id", self.track_id, np.int64, (n,))
        if self.track_xyxy is not None:
            _check("track_xyxy", self.track_xyxy, np.float32, (n, 4))
        if self.link_id is not None:
            _check("link_id", self.link_id, np.int64, (n,))

    @classmethod
    def empty(cls) -> Detections:
        """A ``Detections`` with zero rows."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            track_id=np.zeros(0, np.int64),
        )

    @classmethod
    def from_arrays(
        cls,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike,
        class_id: npt.ArrayLike,
        track_id: npt.ArrayLike | None = None,
    ) -> Detections:
        """Build from any array-likes, converting dtypes (``track_id`` defaults to all ``-1``)."""
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        n = boxes.shape[0]
        ids = (
            np.full(n, NO_TRACK, np.int64)
            if track_id is None
            else np.asarray(track_id, dtype=np.int64).reshape(-1)
        )
        return cls(
            xyxy=boxes,
            confidence=np.asarray(confidence, dtype=np.float32).reshape(-1),
            class_id=np.asarray(class_id, dtype=np.int32).reshape(-1),
            track_id=ids,
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: BoolArray | IndexArray | Sequence[int] | slice) -> Detections:
        """Select rows by boolean mask, index array or slice; the result has the same columns."""
        if isinstance(index, slice):
            sel: slice | npt.NDArray[np.generic] = index
        else:
            sel = np.asarray(index)
            if sel.dtype == np.bool_:
                if sel.shape != (len(self),):
                    msg = f"Detections mask: expected shape ({len(self)},), got {sel.shape}"
                    raise ValueError(msg)
            elif sel.size == 0:
                sel = sel.astype(np.intp)
            elif not np.issubdtype(sel.dtype, np.integer):
                msg = f"Detections index: expected bool mask or integer indices, got {sel.dtype}"
                raise TypeError(msg)
        return Detections(
            xyxy=self.xyxy[sel],
            confidence=self.confidence[sel],
            class_id=self.class_id[sel],
            track_id=self.track_id[sel],
            track_xyxy=None if self.track_xyxy is None else self.track_xyxy[sel],
            link_id=None if self.link_id is None else self.link_id[sel],
        )

    def with_track_ids(
        self,
        track_id: npt.NDArray[np.int64],
        track_xyxy: npt.NDArray[np.float32] | None = None,
        link_id: npt.NDArray[np.int64] | None = None,
    ) -> Detections:
        """The same rows with ``track_id`` (and the tracker's optional columns) replaced; arrays are
        shared, not copied."""
        return Detections(self.xyxy, self.confidence, self.class_id, track_id, track_xyxy, link_id)

    def anchors(self, anchor: str) -> npt.NDArray[np.float32]:
        """``float32 (N, 2)`` anchor point of each box, see :data:`ANCHORS`."""
        return anchor_points(self.xyxy, anchor)


ANCHORS: tuple[str, ...] = ("bottom_center", "center", "top_center", "bottom_left", "bottom_right")
"""The box points lines and zones can test (y grows downwards in image coordinates)."""


def anchor_points(xyxy: npt.NDArray[np.float32], anchor: str) -> npt.NDArray[np.float32]:
    """``float32 (N, 2)`` anchor point of each ``(N, 4)`` box."""
    x1, y1, x2, y2 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    cx = (x1 + x2) * np.float32(0.5)
    if anchor == "bottom_center":
        cols = (cx, y2)
    elif anchor == "center":
        cols = (cx, (y1 + y2) * np.float32(0.5))
    elif anchor == "top_center":
        cols = (cx, y1)
    elif anchor == "bottom_left":
        cols = (x1, y2)
    elif anchor == "bottom_right":
        cols = (x2, y2)
    else:
        msg = f"unknown anchor {anchor!r}, expected one of {', '.join(ANCHORS)}"
        raise ValueError(msg)
    return np.stack(cols, axis=1).astype(np.float32, copy=False)


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One decoded video frame as capture hands it on.

    Attributes:
        image: ``uint8 (H, W, 3)`` BGR pixels, as OpenCV decodes them.
        camera: name of the camera it came from.
        seq: per-camera sequence number, counting every frame decoded (so gaps show drops).
        captured_mono: ``time.monotonic()`` when the frame was read; for frame age and latency.
        captured_wall: ``time.time()`` when the frame was read; for event timestamps.
    """

    image: npt.NDArray[np.uint8]
    camera: str
    seq: int
    captured_mono: float
    captured_wall: float

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            got = getattr(image, "dtype", type(image).__name__)
            msg = f"Frame.image: expected uint8 ndarray, got {got}"
            raise ValueError(msg)
        if image.ndim != 3 or image.shape[2] != 3:
            msg = f"Frame.image: expected shape (H, W, 3), got {image.shape}"
            raise ValueError(msg)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
