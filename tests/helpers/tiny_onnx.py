"""Tiny ONNX models written byte by byte (the ``onnx`` package is not a dependency), for tests that need a
model with a particular defect.

Only the protobuf fields the models below use are encoded (``onnx.proto``: ModelProto, GraphProto,
NodeProto, AttributeProto, ValueInfoProto, TypeProto, TensorShapeProto).
"""

from __future__ import annotations

from pathlib import Path


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint((field << 3) | 2) + _varint(len(data)) + data


def _tensor_info(name: str, dims: list[int | str]) -> bytes:
    """ValueInfoProto of a float tensor; ``str`` dims are symbolic."""
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    tensor_type = _int(1, 1) + _bytes(2, shape)  # elem_type FLOAT
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def lying_detect_model(path: Path, class_names: list[str], size: int = 32) -> Path:
    """A "detect" model whose declared output ``[batch, rows, anchors]`` is symbolic and whose real output is
    ``[batch, size, size]`` (the mean over the colour channels): it loads and passes every check made on
    the declared shapes, and fails only when warm-up sees the real output."""
    axes = _bytes(1, "axes") + _int(20, 7) + _int(8, 1)  # INTS [1]
    keepdims = _bytes(1, "keepdims") + _int(20, 2) + _int(3, 0)  # INT 0
    node = _bytes(1, "images") + _bytes(2, "output0") + _bytes(3, "mean") + _bytes(4, "ReduceMean")
    node += _bytes(5, axes) + _bytes(5, keepdims)
    graph = _bytes(1, node) + _bytes(2, "lying")
    graph += _bytes(11, _tensor_info("images", ["batch", 3, "height", "width"]))
    graph += _bytes(12, _tensor_info("output0", ["batch", "rows", "anchors"]))
    names = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(class_names)) + "}"
    meta = {"task": "detect", "imgsz": f"[{size}, {size}]", "names": names}
    model = _int(1, 8) + _bytes(2, "edge-tests") + _bytes(7, graph)
    model += _bytes(8, _bytes(1, "") + _int(2, 13))  # opset_import: default domain, opset 13
    model += b"".join(_bytes(14, _bytes(1, k) + _bytes(2, v)) for k, v in meta.items())
    path.write_bytes(model)
    return path
