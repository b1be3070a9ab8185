"""The interface between the detector and whatever runs the model (ONNX Runtime, OpenVINO).

The detector letterboxes frames into a batch tensor, hands it to :meth:`InferenceBackend.run` and decodes
the raw output; the backend owns the session, the device and its buffers. One thread calls ``run`` at a
time (the detector thread), so a backend may reuse its device buffers between calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What :func:`edge.detector.inspect_model` read from the graph.

    Attributes:
        input_name: name of the image input.
        input_size: model input as ``(width, height)``.
        dynamic_batch: ``True`` for a symbolic batch dimension, ``False`` for fixed batch 1.
        output_name: name of the ``[batch, 4 + nc, anchors]`` output.
        class_names: one name per class, index = class id.
    """

    input_name: str
    input_size: tuple[int, int]
    dynamic_batch: bool
    output_name: str
    class_names: list[str]


PAD_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
"""Batch sizes a partial batch is padded up to on accelerators (plus ``max_batch`` itself)."""


def padded_sizes(max_batch: int) -> tuple[int, ...]:
    """The fixed batch sizes for ``max_batch``: powers of two below it, and ``max_batch``.

    An accelerator then sees at most ``log2(max_batch) + 2`` input shapes, each warmed up (cuDNN
    algorithm choice, TensorRT profile, CUDA graph) before READY, never a new one at run time. Powers of
    two bound the padding waste below 50 % of a run; on a GPU a run costs little more for a few padded
    slots, while a new shape costs 0.3 s to minutes.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return (*(s for s in PAD_SIZES if s < max_batch), max_batch)


class InferenceBackend(Protocol):
    """Runs batches of one model on one device.

    Attributes:
        name: ``"onnxruntime"`` or ``"openvino"``.
        device: what really runs, read back from the runtime: ``"cpu"``, ``"cuda"`` or ``"tensorrt"``
            (ONNX Runtime); ``"CPU"``, ``"GPU"`` or ``"NPU"`` (OpenVINO).
        precision: ``"f32"``, ``"f16"`` or ``"bf16"``.
        input_dtype: what :meth:`run` takes: ``float32`` NCHW RGB 0..1 (the letterbox tensor) or
            ``uint8`` NHWC BGR (a model wrapped by :mod:`edge.backends.uint8_wrapper`).
    """

    name: str
    device: str
    precision: str
    input_dtype: np.dtype[np.generic]

    def run(self, batch: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """``float32 [n, 4 + classes, anchors]`` for a batch of ``n``; one caller at a time."""
        ...

    def close(self) -> None:
        """Release the session and device buffers; ``run`` must not be called afterwards."""
        ...
