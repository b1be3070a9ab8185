"""Put the input conversion in front of the model, as standard ONNX ops, so edge can feed uint8 frames.

The exported YOLO models take ``float32 [n, 3, h, w]`` RGB scaled to 0..1. Converting on the host costs a
float pass per frame and, on a GPU, 4x the bytes to copy (yolov8n at batch 32: 157 MB instead of 39 MB).
:func:`wrap_uint8` builds a model whose input is the letterboxed frames as they are, ``uint8 [n, h, w, 3]``
BGR, followed by::

    Gather(axis=3, [2, 1, 0])   BGR -> RGB, on bytes (cheapest place for it)
    Transpose(perm=[0, 3, 1, 2])  NHWC -> NCHW
    Cast(to=float)
    Mul(1/255 as float32)       the same float32 product the host letterbox computes for pixels (its
                                grey padding differs in the last bit), so detections agree

and then the original graph unchanged (its input becomes an internal tensor). :func:`wrapped_model` caches
the result by the original's content hash, so a changed model gets a new wrapper and restarts pay nothing.

Needs the ``onnx`` package (the ``gpu`` extra); it is imported only when a wrapper is built.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from edge.errors import ModelError

WRAPPED_INPUT = "images_u8"
"""Name of the wrapped model's input: ``uint8 [n, h, w, 3]`` BGR."""

_PREFIX = "edge_u8_"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wrap_uint8(model_path: Path, out_path: Path) -> None:
    """Write ``model_path`` with a uint8 NHWC BGR input (see the module docstring) to ``out_path``.

    Raises :class:`ModelError` when ``onnx`` is missing or the model's input is not ``[n, 3, h, w]``.
    """
    try:
        import onnx  # noqa: PLC0415 - optional dependency, only needed to build the wrapper
        from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415
    except ImportError as exc:
        msg = "uint8 input needs the 'onnx' package: pip install 'edge-analytics[gpu]' (or pip install onnx)"
        raise ModelError(msg) from exc
    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(f"model {model_path}: expected 1 input to wrap, found {len(inputs)}")
    original = inputs[0]
    dims = original.type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise ModelError(f"model {model_path}: expected an input [n, 3, h, w] to wrap")

    def dim(d: onnx.TensorShapeProto.Dimension) -> int | str:
        return d.dim_value if d.HasField("dim_value") else (d.dim_param or "batch")

    batch, height, width = dim(dims[0]), dim(dims[2]), dim(dims[3])
    new_input = helper.make_tensor_value_info(WRAPPED_INPUT, TensorProto.UINT8, [batch, height, width, 3])
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([2, 1, 0], np.int64), _PREFIX + "bgr_to_rgb"),
            numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), _PREFIX + "scale"),
        ]
    )
    p = _PREFIX
    nodes = [
        helper.make_node("Gather", [WRAPPED_INPUT, p + "bgr_to_rgb"], [p + "rgb"], axis=3, name=p + "rgb"),
        helper.make_node("Transpose", [p + "rgb"], [p + "chw"], perm=[0, 3, 1, 2], name=p + "chw"),
        helper.make_node("Cast", [p + "chw"], [p + "float"], to=TensorProto.FLOAT, name=p + "cast"),
        helper.make_node("Mul", [p + "float", p + "scale"], [original.name], name=p + "scale"),
    ]
    position = list(graph.input).index(original)
    graph.input.remove(original)
    graph.input.insert(position, new_input)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a crash mid-write never leaves a truncated model in the cache.
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name, suffix=".tmp")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        Path(tmp).replace(out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def wrapped_model(model_path: Path, cache_dir: Path) -> Path:
    """The uint8-input wrapper of ``model_path`` in ``cache_dir``, built on first use.

    Cached as ``<stem>.u8-<sha256 of the model, 16 hex>.onnx``: a replaced model gets a new wrapper; old
    ones of the same stem are removed so the cache holds one per model.
    """
    digest = _digest(model_path)[:16]
    target = cache_dir / f"{model_path.stem}.u8-{digest}.onnx"
    if target.is_file():
        return target
    for old in cache_dir.glob(f"{model_path.stem}.u8-*.onnx"):
        old.unlink(missing_ok=True)
    wrap_uint8(model_path, target)
    return target
