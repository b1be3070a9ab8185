"""Letterbox decoded BGR frames into a preallocated batch tensor: NCHW float32 RGB 0..1, or NHWC uint8 BGR.

Each frame is scaled to fit the model input while keeping its aspect ratio (bilinear, as Ultralytics
trains with), centred, and padded with grey 114; channels are swapped BGR -> RGB and scaled to 0..1.
With ``dtype=np.uint8`` the tensor keeps the frames' own layout (NHWC BGR, 0..255): a model wrapped by
:mod:`edge.backends.uint8_wrapper` does the swap and scaling on the device, and a GPU gets 4x less to copy.
:class:`Placement` records the scale and padding so boxes can be mapped back to frame pixels.

Per-frame cost is kept close to nothing because the model is the cost a user cannot avoid:

- the batch tensor and the resize buffers are allocated once and reused (the tensor only grows, up to
  ``max_batch``, the largest batch ever asked for);
- the grey padding of a batch slot is written only when the geometry of the frame in that slot changes
  (cameras keep their resolution), so each frame converts only its own pixels;
- ``cv2.resize`` writes into a preallocated buffer, and one Numba pass (``nogil``) converts it into the
  slot, swapping channels and scaling on the way; where bilinear resizing only picks pixels (exact odd
  downscale factors such as 1920x1080 or 960x540 into 640 or 320), one Numba pass does both, reading
  only the pixels it needs (frames arrive cold from the decoder, so memory traffic is the cost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
from numba import njit

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Executor

PAD_VALUE = 114
"""Grey of the letterbox padding, as in Ultralytics training (any other value costs accuracy)."""

_MAX_SHAPES = 16
# Resize buffers and geometries are cached per frame size; this bounds the cache if a source keeps
# changing resolution (the cache is simply rebuilt).


class Placement(NamedTuple):
    """Where one frame went in the model input: ``input = frame * scale + (pad_x, pad_y)``.

    ``width`` and ``height`` are the original frame's size, which decoded boxes are clipped to.
    """

    scale: float
    pad_x: int
    pad_y: int
    width: int
    height: int

    def to_input(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(N, 4)`` frame-pixel boxes into model-input pixels."""
        out = xyxy * np.float32(self.scale)
        out[:, (0, 2)] += self.pad_x
        out[:, (1, 3)] += self.pad_y
        return out.astype(np.float32, copy=False)

    def to_frame(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(N, 4)`` model-input boxes back to frame pixels, clipped to the frame."""
        out = xyxy.astype(np.float32, copy=True)
        out[:, (0, 2)] -= self.pad_x
        out[:, (1, 3)] -= self.pad_y
        out /= np.float32(self.scale)
        out[:, (0, 2)] = np.clip(out[:, (0, 2)], 0, self.width)
        out[:, (1, 3)] = np.clip(out[:, (1, 3)], 0, self.height)
        return out


class _Geometry(NamedTuple):
    placement: Placement
    new_w: int
    new_h: int
    # Source column / row of each output pixel when bilinear resizing degenerates to picking one
    # pixel (exact odd integer downscale, e.g. 960x540 -> 320x180 or 1920x1080 -> 640x360), else None.
    cols: npt.NDArray[np.int64] | None
    rows: npt.NDArray[np.int64] | None


def _single_tap(src_n: int, dst_n: int) -> npt.NDArray[np.int64] | None:
    """Source index of each of ``dst_n`` outputs if OpenCV's ``INTER_LINEAR`` gives every output exactly
    one source pixel (weight 1 on it, 0 on its neighbour), else ``None``."""
    # OpenCV maps output x to source (x + 0.5) * src/dst - 0.5 and weighs floor() and floor() + 1.
    pos = (np.arange(dst_n, dtype=np.float64) + 0.5) * (src_n / dst_n) - 0.5
    idx = np.floor(pos)
    if np.any(pos != idx) or idx[0] < 0 or idx[-1] > src_n - 1:
        return None
    return idx.astype(np.int64)


def letterbox_geometry(width: int, height: int, input_w: int, input_h: int) -> tuple[Placement, int, int]:
    """The :class:`Placement` of a ``width x height`` frame in an ``input_w x input_h`` input, and the
    resized size ``(new_w, new_h)``. Rounding follows Ultralytics' ``LetterBox`` so boxes agree with it."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    scale = min(input_w / width, input_h / height)
    new_w = min(round(width * scale), input_w)
    new_h = min(round(height * scale), input_h)
    pad_x = round((input_w - new_w) / 2 - 0.1)
    pad_y = round((input_h - new_h) / 2 - 0.1)
    return Placement(scale, pad_x, pad_y, width, height), new_w, new_h


@njit(nogil=True, cache=True)
def _gather_to_chw(
    src: npt.NDArray[np.uint8],
    dst: npt.NDArray[np.float32],
    top: int,
    left: int,
    cols: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
) -> None:  # pragma: no cover - compiled
    # Resize and convert in one pass that reads only the source pixels the output uses: for a 3x
    # downscale that is a third of the rows, where cv2.resize reads two thirds and writes a buffer.
    s = np.float32(1.0 / 255.0)
    w = cols.shape[0]
    for y in range(rows.shape[0]):
        r = dst[0, top + y]
        g = dst[1, top + y]
        b = dst[2, top + y]
        row = src[rows[y]]
        for x in range(w):
            px = row[cols[x]]
            b[left + x] = np.float32(px[0]) * s
            g[left + x] = np.float32(px[1]) * s
            r[left + x] = np.float32(px[2]) * s


@njit(nogil=True, cache=True)
def _bgr_to_chw(
    src: npt.NDArray[np.uint8], dst: npt.NDArray[np.float32], top: int, left: int
) -> None:  # pragma: no cover - compiled
    h, w = src.shape[0], src.shape[1]
    s = np.float32(1.0 / 255.0)
    for y in range(h):
        r = dst[0, top + y]
        g = dst[1, top + y]
        b = dst[2, top + y]
        row = src[y]
        for x in range(w):
            b[left + x] = np.float32(row[x, 0]) * s
            g[left + x] = np.float32(row[x, 1]) * s
            r[left + x] = np.float32(row[x, 2]) * s


@njit(nogil=True, cache=True)
def _gather_to_hwc(
    src: npt.NDArray[np.uint8],
    dst: npt.NDArray[np.uint8],
    top: int,
    left: int,
    cols: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
) -> None:  # pragma: no cover - compiled
    # The uint8 twin of _gather_to_chw: same source pixels, kept as BGR bytes.
    w = cols.shape[0]
    for y in range(rows.shape[0]):
        out = dst[top + y]
        row = src[rows[y]]
        for x in range(w):
            px = row[cols[x]]
            o = out[left + x]
            o[0] = px[0]
            o[1] = px[1]
            o[2] = px[2]


class Letterbox:
    """Fills a reusable ``float32 (n, 3, input_h, input_w)`` (or ``uint8 (n, input_h, input_w, 3)``) batch
    tensor from BGR frames.

    Args:
        input_w, input_h: the model input size; must be multiples of ``stride`` (the network's largest
            stride, 32 for YOLOv8/YOLO11), or the feature maps would not tile the input.
        max_batch: the largest batch :meth:`fill` accepts; the tensor grows to the largest batch seen, so
            memory is ``max_batch * 3 * input_h * input_w * 4`` bytes at most (a quarter with uint8).
        dtype: ``np.float32`` (NCHW RGB 0..1, what exported YOLO models take) or ``np.uint8`` (NHWC BGR
            0..255, for a model wrapped by :mod:`edge.backends.uint8_wrapper`).

    Slots past the last :meth:`fill` keep older frames (or zeros): :meth:`batch` hands them out as padding
    when a backend runs fixed batch sizes; their results are discarded.

    Not thread-safe: the tensor returned by :meth:`fill` is overwritten by the next call.
    """

    def __init__(
        self,
        input_w: int,
        input_h: int,
        *,
        max_batch: int = 8,
        stride: int = 32,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        if input_w % stride or input_h % stride or input_w < stride or input_h < stride:
            msg = f"model input {input_w}x{input_h} is not a positive multiple of the stride {stride}"
            raise ValueError(msg)
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.input_w = input_w
        self.input_h = input_h
        self.max_batch = max_batch
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
            raise ValueError(f"dtype must be float32 or uint8, got {self.dtype}")
        self._uint8 = self.dtype == np.dtype(np.uint8)
        shape = (0, input_h, input_w, 3) if self._uint8 else (0, 3, input_h, input_w)
        self._tensor: npt.NDArray[np.float32] | npt.NDArray[np.uint8] = np.zeros(shape, self.dtype)
        # Geometry of the frame last written in each slot; the padding is valid while it stays the same.
        self._slot_shape: list[tuple[int, int] | None] = []
        # Per slot: scale, pad_x, pad_y, width, height (what the decoder needs), kept with the slot.
        self._params = np.zeros((0, 5), np.float64)
        self._geometry: dict[tuple[int, int], _Geometry] = {}
        # Resize buffers per part of a parallel fill (part 0 is the serial fill's), per resized size.
        self._resized_parts: list[dict[tuple[int, int], npt.NDArray[np.uint8]]] = [{}]

    def params(self, n: int) -> npt.NDArray[np.float64]:
        """``float64 (n, 5)``: scale, pad_x, pad_y, width, height of the frames in slots ``0..n-1`` by the
        last :meth:`fill` (the decoder's ``params``); a view, valid until the next call."""
        return self._params[:n]

    @property
    def capacity(self) -> int:
        """Slots currently allocated (grows up to ``max_batch``)."""
        return int(self._tensor.shape[0])

    def _grow(self, n: int) -> None:
        if n > self.max_batch:
            raise ValueError(f"batch of {n} frames exceeds max_batch={self.max_batch}")
        # Zeros, not empty: unfilled slots may be run as padding, and garbage could hold NaNs.
        tensor = np.zeros((n, *self._tensor.shape[1:]), self.dtype)
        tensor[: self.capacity] = self._tensor
        params = np.zeros((n, 5), np.float64)
        params[: self.capacity] = self._params
        self._tensor = tensor
        self._params = params
        self._slot_shape.extend([None] * (n - len(self._slot_shape)))

    def _geometry_for(self, height: int, width: int) -> _Geometry:
        geometry = self._geometry.get((height, width))
        if geometry is None:
            if len(self._geometry) >= _MAX_SHAPES:
                self._geometry.clear()
                for bufs in self._resized_parts:
                    bufs.clear()
            placement, new_w, new_h = letterbox_geometry(width, height, self.input_w, self.input_h)
            cols, rows = _single_tap(width, new_w), _single_tap(height, new_h)
            if cols is None or rows is None:
                cols = rows = None
            geometry = _Geometry(placement, new_w, new_h, cols, rows)
            self._geometry[height, width] = geometry
        return geometry

    def batch(self, n: int) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
        """Slots ``0..n-1`` of the batch tensor (a view), growing it if needed: what a backend runs when
        the last :meth:`fill` is padded up to a fixed batch size ``n``."""
        if n > self.capacity:
            self._grow(n)
        return self._tensor[:n]

    def fill(
        self, images: Sequence[npt.NDArray[np.uint8]], executor: Executor | None = None, parts: int = 1
    ) -> tuple[npt.NDArray[Any], list[Placement]]:
        """Letterbox ``images`` (``uint8 (H, W, 3)`` BGR) into slots ``0..n-1``.

        With an ``executor`` and ``parts > 1`` the slots are split into ``parts`` ranges converted at
        once (the Numba kernels and ``cv2.resize`` release the GIL): a GPU runs a batch faster than one
        core can letterbox it. Each part has its own resize buffers.

        Returns the ``(n, 3, input_h, input_w)`` (uint8: ``(n, input_h, input_w, 3)``) view of the batch
        tensor (valid until the next call) and one :class:`Placement` per image.
        """
        n = len(images)
        if n > self.capacity:
            self._grow(n)
        geometries: list[_Geometry] = []
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                msg = f"expected uint8 (H, W, 3) BGR image, got {image.dtype} {image.shape}"
                raise ValueError(msg)
            geometries.append(self._geometry_for(int(image.shape[0]), int(image.shape[1])))
        parts = max(1, min(parts, n)) if executor is not None else 1
        while len(self._resized_parts) < parts:
            self._resized_parts.append({})
        if parts == 1:
            self._fill_slots(images, geometries, 0, n, 0)
        else:
            bounds = [round(k * n / parts) for k in range(parts + 1)]
            assert executor is not None
            futures = [
                executor.submit(self._fill_slots, images, geometries, bounds[k], bounds[k + 1], k)
                for k in range(parts)
            ]
            for future in futures:
                future.result()
        return self._tensor[:n], [g.placement for g in geometries]

    def _fill_slots(
        self,
        images: Sequence[npt.NDArray[np.uint8]],
        geometries: list[_Geometry],
        start: int,
        stop: int,
        part: int,
    ) -> None:
        pad = np.uint8(PAD_VALUE) if self._uint8 else np.float32(PAD_VALUE / 255.0)
        resized_bufs = self._resized_parts[part]
        for i in range(start, stop):
            image, geometry = images[i], geometries[i]
            h, w = int(image.shape[0]), int(image.shape[1])
            p = geometry.placement
            slot = self._tensor[i]
            if self._slot_shape[i] != (h, w):
                slot.fill(pad)
                self._slot_shape[i] = (h, w)
                self._params[i] = (p.scale, p.pad_x, p.pad_y, p.width, p.height)
            if geometry.cols is not None and geometry.rows is not None:
                # Same pixels as cv2.resize(INTER_LINEAR) here (weights are exactly 0 and 1), read once.
                gather = _gather_to_hwc if self._uint8 else _gather_to_chw
                gather(image, slot, p.pad_y, p.pad_x, geometry.cols, geometry.rows)
                continue
            if geometry.new_w == w and geometry.new_h == h:
                resized = image
            else:
                key = (geometry.new_h, geometry.new_w)
                buf = resized_bufs.get(key)
                if buf is None:
                    buf = np.empty((geometry.new_h, geometry.new_w, 3), np.uint8)
                    resized_bufs[key] = buf
                # dst= makes OpenCV write into the buffer instead of allocating a new image.
                cv2.resize(image, (geometry.new_w, geometry.new_h), dst=buf, interpolation=cv2.INTER_LINEAR)
                resized = buf
            if self._uint8:
                slot[p.pad_y : p.pad_y + geometry.new_h, p.pad_x : p.pad_x + geometry.new_w] = resized
            else:
                _bgr_to_chw(resized, slot, p.pad_y, p.pad_x)
