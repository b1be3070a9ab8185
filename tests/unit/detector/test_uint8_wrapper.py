"""The uint8-input wrapper graph (edge.backends.uint8_wrapper) on a tiny model: it must hand the original
graph the tensor the host letterbox would have made (to the last bit but one)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edge.backends.uint8_wrapper import WRAPPED_INPUT, wrap_uint8, wrapped_model
from edge.errors import ModelError
from edge.preprocess import Letterbox


def identity_model(path, shape=("batch", 3, 64, 64)):
    """A model whose output is its input: what reaches the original graph becomes visible."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "identity",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": "{0: 'person'}"})
    onnx.save(model, str(path))
    return path


def run(path, name, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: x})[0]


def test_wrapped_model_sees_the_float_letterbox_tensor(tmp_path):
    model = identity_model(tmp_path / "m.onnx")
    wrapped = tmp_path / "m.u8.onnx"
    wrap_uint8(model, wrapped)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 80, 3), np.uint8), rng.integers(0, 256, (64, 64, 3), np.uint8)]
    as_float, _ = Letterbox(64, 64, max_batch=2).fill(frames)
    as_uint8, _ = Letterbox(64, 64, max_batch=2, dtype=np.uint8).fill(frames)
    # Pixels are the same float32 product; the host's grey pad is float32(114 / 255), one ulp from
    # float32(114) * float32(1 / 255).
    np.testing.assert_allclose(run(wrapped, WRAPPED_INPUT, as_uint8), as_float, rtol=0, atol=6e-8)
    session = ort.InferenceSession(str(wrapped), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == (WRAPPED_INPUT, "tensor(uint8)", ["batch", 64, 64, 3])
    assert session.get_modelmeta().custom_metadata_map["names"] == "{0: 'person'}"  # metadata kept


def test_wrapper_is_cached_per_model_content(tmp_path):
    model = identity_model(tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    first = wrapped_model(model, cache)
    mtime = first.stat().st_mtime_ns
    assert wrapped_model(model, cache) == first
    assert first.stat().st_mtime_ns == mtime  # reused, not rebuilt
    identity_model(model, shape=("batch", 3, 32, 32))  # the model file is replaced
    second = wrapped_model(model, cache)
    assert second != first
    assert sorted(cache.iterdir()) == [second]  # the stale wrapper is removed


def test_a_model_without_an_image_input_is_refused(tmp_path):
    model = identity_model(tmp_path / "m.onnx", shape=("batch", 4))
    with pytest.raises(ModelError, match=r"expected an input \[n, 3, h, w\]"):
        wrap_uint8(model, tmp_path / "out.onnx")
