"""The OpenVINO backend and the backend factory, on the real OpenVINO runtime and the real yolo11n_320 model.

No runtime is mocked: OpenVINO compiles and runs the shared model on this machine's CPU. ONNX Runtime's
CPU session on the same tensor is the reference. Absence of the ``openvino`` package is simulated the way
Python itself reports it (a ``None`` entry in ``sys.modules`` makes the import raise ``ImportError``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.paths import in_ci

from edge.backends.onnxruntime import OnnxRuntimeBackend, cuda_device_count, open_cpu_session
from edge.backends.select import create_backend
from edge.detector import inspect_model
from edge.errors import ModelError

try:
    import openvino
except ImportError:  # CI installs it (scripts/setup.sh); elsewhere these tests say why they skip
    if in_ci():
        raise
    pytest.skip("openvino is not installed (pip install 'edge-analytics[openvino]')", allow_module_level=True)

from edge.backends.openvino import OpenVINOBackend, openvino_available, resolve_precision


@pytest.fixture(scope="module")
def model(yolo11n_320_path: Path) -> tuple[Path, object, object]:
    session = open_cpu_session(yolo11n_320_path)
    return yolo11n_320_path, inspect_model(session, yolo11n_320_path), session


@pytest.fixture(scope="module")
def core() -> object:
    return openvino.Core()


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    rng = np.random.default_rng(17)
    return rng.random((4, 3, 320, 320), dtype=np.float32)


def reference(session, info, tensor: np.ndarray) -> np.ndarray:
    return session.run([info.output_name], {info.input_name: tensor})[0]


def test_default_precision_is_f32_and_agrees_with_onnxruntime(model, core, batch, tmp_path) -> None:
    # On CPUs with AMX/AVX512-BF16 OpenVINO would run bf16 unless told: the default must be f32.
    path, info, session = model
    backend = OpenVINOBackend(path, info, max_batch=4, cache_dir=tmp_path, core=core)
    assert (backend.name, backend.device, backend.precision) == ("openvino", "CPU", "f32")
    assert backend.input_dtype == np.float32
    out = backend.run(batch)
    ref = reference(session, info, batch)
    assert out.shape == ref.shape == (4, 84, 2100)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-2  # pixels at 320 px; scores differ by far less
    assert np.abs(out[:, 4:] - ref[:, 4:]).max() < 1e-4


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_batch_size_up_to_max_batch_runs(model, core, batch, n) -> None:
    path, info, session = model
    backend = OpenVINOBackend(path, info, max_batch=4, core=core)
    out = backend.run(batch[:n])
    assert out.shape[0] == n
    assert np.abs(out - reference(session, info, batch[:n])).max() < 1e-2


def test_result_is_not_the_request_buffer(model, core, batch) -> None:
    # The overlapped detector decodes batch N while batch N+1 runs: a result must survive the next run.
    path, info, _ = model
    backend = OpenVINOBackend(path, info, max_batch=4, core=core)
    first = backend.run(batch[:1])
    kept = first.copy()
    backend.run(batch[1:2])
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_split_across_streams_gives_the_same_output(model, core, batch, n) -> None:
    path, info, _ = model
    whole = OpenVINOBackend(path, info, max_batch=4, core=core)
    split = OpenVINOBackend(path, info, max_batch=4, streams=2, core=core)
    assert split.split_compiled is not None
    np.testing.assert_allclose(split.run(batch[:n]), whole.run(batch[:n]), atol=1e-3)


def test_by_default_batches_are_split_across_the_cpu_streams_openvino_picks(model, core, batch) -> None:
    path, info, session = model
    backend = OpenVINOBackend(path, info, max_batch=4, core=core)
    if backend.split_compiled is not None:  # OpenVINO found more than one stream worth running
        assert backend.streams == backend.split_compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") > 1
    else:
        assert backend.streams == 1
    assert np.abs(backend.run(batch) - reference(session, info, batch)).max() < 1e-2
    single = OpenVINOBackend(path, info, max_batch=1, core=core)  # nothing to split: one compilation
    assert (single.streams, single.split_compiled) == (1, None)
    one = OpenVINOBackend(path, info, max_batch=4, streams=1, core=core)
    assert (one.streams, one.split_compiled) == (1, None)


def test_bf16_is_opt_in_and_read_back(model, core, batch) -> None:
    path, info, _ = model
    supported = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    backend = OpenVINOBackend(path, info, precision="bf16", max_batch=4, core=core)
    assert backend.precision == ("bf16" if "BF16" in supported else "f32")
    assert backend.run(batch).shape == (4, 84, 2100)


def test_compiled_model_is_cached(model, core, tmp_path) -> None:
    path, info, _ = model
    assert not any(tmp_path.iterdir())
    OpenVINOBackend(path, info, max_batch=2, cache_dir=tmp_path / "ov", core=core)
    blobs = sorted(p.name for p in (tmp_path / "ov").iterdir())
    assert any(name.endswith(".blob") for name in blobs), blobs
    again = OpenVINOBackend(path, info, max_batch=2, cache_dir=tmp_path / "ov", core=openvino.Core())
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == blobs  # loaded, not compiled anew
    assert again.run(np.zeros((2, 3, 320, 320), np.float32)).shape == (2, 84, 2100)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"device": "TPU"}, ValueError, "device: expected one of CPU, GPU, NPU, AUTO"),
        ({"precision": "int4"}, ValueError, "precision: expected auto, f32, bf16, f16"),
        ({"max_batch": 0}, ValueError, "max_batch must be >= 1"),
        ({"streams": 0}, ValueError, "streams must be >= 1"),
        ({"threads": 0}, ValueError, "threads must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(model, core, kwargs, error, text) -> None:
    path, info, _ = model
    with pytest.raises(error, match=text):
        OpenVINOBackend(path, info, core=core, **kwargs)


def test_a_device_openvino_does_not_see_is_one_clear_error(model, core) -> None:
    path, info, _ = model
    missing = next((d for d in ("NPU", "GPU") if d not in core.available_devices), None)
    if missing is None:
        pytest.skip("this machine has both an Intel GPU and an NPU")
    with pytest.raises(ModelError, match=rf"model.device '{missing}': OpenVINO sees no such device here"):
        OpenVINOBackend(path, info, device=missing, core=core)


def test_a_corrupt_model_is_a_model_error(model, core, tmp_path) -> None:
    _, info, _ = model
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="OpenVINO cannot read it"):
        OpenVINOBackend(bad, info, core=core)


@pytest.mark.parametrize(
    ("asked", "used"), [("auto", "f32"), ("f32", "f32"), ("BF16", "bf16"), ("f16", "f16")]
)
def test_precision_names(asked, used) -> None:
    assert resolve_precision(asked) == used


# --- the factory ----------------------------------------------------------------------------------------


def test_explicit_backends(model, tmp_path) -> None:
    path, info, session = model
    ov_backend = create_backend(path, info, backend="openvino", max_batch=2, openvino_cache_dir=tmp_path)
    assert isinstance(ov_backend, OpenVINOBackend)
    ort_backend = create_backend(path, info, backend="onnxruntime", providers=["cpu"], cpu_session=session)
    assert isinstance(ort_backend, OnnxRuntimeBackend)
    assert (ort_backend.name, ort_backend.device, ort_backend.precision) == ("onnxruntime", "cpu", "f32")


def test_auto_without_an_nvidia_gpu_is_openvino(model, tmp_path) -> None:
    if cuda_device_count() > 0:
        pytest.skip("this machine has a CUDA device: auto picks ONNX Runtime on it")
    path, info, _ = model
    backend = create_backend(path, info, max_batch=2, openvino_cache_dir=tmp_path)
    assert (backend.name, backend.device, backend.precision) == ("openvino", "CPU", "f32")


def test_auto_with_an_explicit_provider_list_is_onnxruntime(model) -> None:
    path, info, session = model
    backend = create_backend(path, info, providers=["cpu"], cpu_session=session)
    assert backend.name == "onnxruntime"


def test_bf16_on_onnxruntime_is_refused(model) -> None:
    path, info, session = model
    with pytest.raises(ModelError, match="is an OpenVINO setting"):
        create_backend(path, info, backend="onnxruntime", precision="bf16", cpu_session=session)


def test_unknown_backend_is_refused(model) -> None:
    path, info, _ = model
    with pytest.raises(ValueError, match="backend: expected one of auto, onnxruntime, openvino"):
        create_backend(path, info, backend="tflite")


def test_without_openvino_installed(model, monkeypatch) -> None:
    path, info, session = model
    monkeypatch.setitem(sys.modules, "openvino", None)  # what Python does for an absent package
    assert not openvino_available()
    with pytest.raises(ModelError) as err:
        create_backend(path, info, backend="openvino")
    message = str(err.value)
    assert "\n" not in message
    assert "pip install 'edge-analytics[openvino]'" in message
    if cuda_device_count() == 0:  # auto then falls back to ONNX Runtime on the CPU
        assert create_backend(path, info, cpu_session=session).name == "onnxruntime"
