"""ONNX Runtime backend: provider choice (TensorRT -> CUDA -> CPU), the session, and running batches.

Providers: ``"auto"`` tries TensorRT (FP16, engine cache) -> CUDA -> CPU, keeping only those whose driver
and libraries are really present; an explicit list (``["cuda", "cpu"]``) must get its first entry, or
construction fails with a :class:`~edge.errors.ModelError` pointing at ``providers: auto``. ONNX Runtime
falls back to CPU silently when a GPU provider cannot start; the provider that really runs is read back
from ``session.get_providers()`` and is this backend's :attr:`OnnxRuntimeBackend.device`.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.backends.base import padded_sizes
from edge.backends.uint8_wrapper import WRAPPED_INPUT, wrapped_model
from edge.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from edge.backends.base import ModelInfo

logger = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
"""Short provider names accepted in configuration -> ONNX Runtime provider names."""

SHORT = {v: k for k, v in PROVIDERS.items()}

_AUTO_ORDER = ("tensorrt", "cuda", "cpu")


def cuda_device_count() -> int:
    """CUDA devices the driver reports (0 when there is no driver). Asks libcuda directly, because
    onnxruntime-gpu lists the CUDA provider as available whether or not a GPU is present."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


def tensorrt_present() -> bool:
    """Whether the TensorRT 10 libraries the TensorRT provider links against can be loaded."""
    for name in ("libnvinfer.so.10", "libnvinfer.so"):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edge`` (or ``~/.cache/edge``): wrapped models and, under ``tensorrt/``, engines."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge"


def default_trt_cache_dir() -> Path:
    return default_cache_dir() / "tensorrt"


def anchors_for(input_w: int, input_h: int, strides: Sequence[int] = (8, 16, 32)) -> int:
    """Anchor columns of a YOLOv8/YOLO11 detect output for a ``input_w x input_h`` input."""
    return sum((input_w // s) * (input_h // s) for s in strides)


def resolve_providers(
    providers: str | Sequence[str],
    available: Sequence[str],
    *,
    cuda_devices: int,
    tensorrt_libs: bool,
) -> list[str]:
    """Short provider names, in order, that a session should be created with.

    ``"auto"`` keeps those of TensorRT -> CUDA -> CPU that can work here. An explicit list is checked:
    unknown names raise ``ValueError``; a GPU provider on a machine without one raises ``ModelError``.
    """
    if not isinstance(providers, str) and [p.lower() for p in providers] == ["auto"]:
        providers = "auto"  # the config's ``providers: [auto]``
    if isinstance(providers, str):
        if providers.lower() != "auto":
            providers = [providers]
        else:
            chosen = []
            for short in _AUTO_ORDER:
                if PROVIDERS[short] not in available:
                    continue
                if short == "tensorrt" and not (cuda_devices and tensorrt_libs):
                    continue
                if short == "cuda" and not cuda_devices:
                    continue
                chosen.append(short)
            return chosen
    names = [p.lower() for p in providers]
    if not names:
        raise ValueError("providers: empty list; use 'auto' or a list such as ['cuda', 'cpu']")
    unknown = [p for p in names if p not in PROVIDERS]
    if unknown:
        msg = f"providers: unknown {unknown}; expected 'auto' or a list of {', '.join(PROVIDERS)}"
        raise ValueError(msg)
    for short in names:
        if PROVIDERS[short] not in available:
            msg = (
                f"providers: {short!r} is not built into this onnxruntime (it offers "
                f"{', '.join(SHORT.get(a, a) for a in available)}); use `providers: auto` to fall back"
            )
            raise ModelError(msg)
        if short in ("cuda", "tensorrt") and not cuda_devices:
            msg = (
                f"providers: {short!r} requested but no CUDA device or driver was found on this machine; "
                "use `providers: auto` to run on the best provider present (CPU here)"
            )
            raise ModelError(msg)
        if short == "tensorrt" and not tensorrt_libs:
            msg = (
                "providers: 'tensorrt' requested but the TensorRT libraries (libnvinfer) are not installed; "
                "use `providers: auto` or ['cuda', 'cpu']"
            )
            raise ModelError(msg)
    return names


def _onnx_installed() -> bool:
    try:
        import onnx  # noqa: F401, PLC0415 - only asks whether the gpu extra is there
    except ImportError:
        return False
    return True


def session_options(intra_op_threads: int | None = None) -> Any:
    """The ``ort.SessionOptions`` every edge session uses (full graph optimisation, sequential)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if intra_op_threads is not None:
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        options.intra_op_num_threads = intra_op_threads
    # Fallbacks are detected and logged by the detector, once; ORT's own warnings would repeat them.
    options.log_severity_level = 3
    return options


def open_cpu_session(model_path: Path, intra_op_threads: int | None = None) -> Any:
    """A CPU session on ``model_path``: the detector inspects the graph on it before a GPU provider spends
    time (a TensorRT engine build) on a bad model; on CPU-only machines it becomes the backend's session."""
    try:
        return ort.InferenceSession(
            str(model_path), sess_options=session_options(intra_op_threads), providers=[PROVIDERS["cpu"]]
        )
    except Exception as exc:
        raise ModelError(f"model {model_path}: not a loadable ONNX model ({exc})") from exc


class OnnxRuntimeBackend:
    """One ONNX Runtime session running batches of one model.

    Args:
        model_path: the ONNX file.
        info: what the detector read from the graph (input/output names, input size, dynamic batch).
        providers: ``"auto"`` or an explicit list whose first entry must really run (else ModelError).
        intra_op_threads: ORT CPU threads per run; ``None`` = ORT's default (one per physical core).
        trt_cache_dir: TensorRT engine and timing cache; ``None`` = ``$XDG_CACHE_HOME/edge/tensorrt``.
        max_batch: the largest batch :meth:`run` gets (sizes the TensorRT optimisation profile).
        cpu_session: a CPU session already open on ``model_path`` (the detector's probe), reused when the
            CPU provider is the one chosen.
        batch_sizes: the fixed batch sizes the detector pads to (``None`` =
            :func:`~edge.backends.base.padded_sizes` of ``max_batch``). TensorRT gets one optimisation
            profile per size (min = opt = max, so each size runs its own tuned engine); CUDA graphs,
            when enabled, are captured per size.
        uint8_input: run the model behind :mod:`edge.backends.uint8_wrapper` (``uint8 [n, h, w, 3]`` BGR
            in): 4x fewer bytes to copy to a GPU and no float pass on the host. ``None`` (default) = on
            for CUDA/TensorRT when the ``onnx`` package is installed (H200, yolov8n, batch 32: 1480 vs
            948 frames/s), off on CPU, where it saves little.
        cache_dir: where the wrapped model is kept (``None`` = ``$XDG_CACHE_HOME/edge``).
        io_binding: on CUDA/TensorRT, bind the output to a preallocated device buffer per batch size and
            copy it back after the run. Off by default: on an H200 it was no faster than a plain run at
            batch 1 and 8 and 1.5-2x slower at batch 32 (the bound output comes back in a second copy);
            docs/benchmarks.md has the figures.
        cuda_graph: capture one CUDA graph per batch size (CUDA provider only; needs every node on CUDA
            and fixed buffers, so it implies IO binding with device input buffers). Saves kernel launch
            overhead: +50-80 % at batch 1 and +10 % at 8 on an H200, but it pays the bound output's
            second copy, which loses at batch 32; so it stays opt-in.
        cudnn_conv_algo_search: ``HEURISTIC`` (default) picks convolution algorithms without timing them;
            ORT's default ``EXHAUSTIVE`` re-benchmarks every new input shape (0.3-1.3 s each,
            onnxruntime#19838; 0.7 s on an H200 against 0.2 s) for a few percent at best; ``DEFAULT``
            takes cuDNN's first choice.
        cuda_options: further CUDA provider options, e.g. ``{"use_tf32": "0"}`` (TF32 convolutions are
            ORT's default on Ampere and later: faster, and scores move in the third decimal).

    Attributes beyond :class:`~edge.backends.base.InferenceBackend`: ``session`` (for benchmarks timing
    bare ``run()`` on the same session) and ``fallback_from`` (the provider asked for when ONNX Runtime
    silently started another, else ``None``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: Path,
        info: ModelInfo,
        *,
        providers: str | Sequence[str] = "auto",
        intra_op_threads: int | None = None,
        trt_cache_dir: Path | None = None,
        max_batch: int = 8,
        cpu_session: Any = None,
        batch_sizes: Sequence[int] | None = None,
        uint8_input: bool | None = None,
        cache_dir: Path | None = None,
        io_binding: bool = False,
        cuda_graph: bool = False,
        cudnn_conv_algo_search: str = "HEURISTIC",
        cuda_options: Mapping[str, str] | None = None,
    ) -> None:
        self._info = info
        self._max_batch = max_batch
        self._sizes = sorted(set(batch_sizes or padded_sizes(max_batch)))
        self._cudnn_search = cudnn_conv_algo_search
        self._cuda_options = dict(cuda_options or {})
        self._cuda_graph = cuda_graph
        self._input_name = info.input_name
        available = ort.get_available_providers()
        cuda_devices = cuda_device_count() if any(p != PROVIDERS["cpu"] for p in available) else 0
        trt_libs = cuda_devices > 0 and tensorrt_present()
        names = resolve_providers(providers, available, cuda_devices=cuda_devices, tensorrt_libs=trt_libs)
        asked = [providers] if isinstance(providers, str) else list(providers)
        wanted_explicit = [p.lower() for p in asked] != ["auto"]
        auto_uint8 = uint8_input is None
        if uint8_input is None:
            uint8_input = names[0] in ("cuda", "tensorrt") and _onnx_installed()
        if uint8_input:
            try:
                model_path = wrapped_model(model_path, cache_dir or default_cache_dir())
            except (OSError, ModelError) as exc:
                if not auto_uint8:
                    raise ModelError(f"model {model_path}: uint8 input wrapper: {exc}") from exc
                # Chosen automatically: the float path still works, only slower; say so once.
                logger.warning("uint8 input off for %s: the wrapper could not be built (%s)", model_path, exc)
                uint8_input = False
            else:
                self._input_name = WRAPPED_INPUT
                cpu_session = None  # the probe holds the float model

        if names == ["cpu"]:
            session = cpu_session
            if session is None:
                session = open_cpu_session(model_path, intra_op_threads)
        else:
            provider_list = [self._provider_entry(short, trt_cache_dir) for short in names]
            try:
                session = ort.InferenceSession(
                    str(model_path), sess_options=session_options(intra_op_threads), providers=provider_list
                )
            except Exception as exc:
                msg = f"model {model_path}: cannot create a session on {names} ({exc})"
                raise ModelError(msg) from exc
        self.session: Any = session
        running = session.get_providers()
        self.device: str = SHORT.get(running[0], running[0])
        """The provider that really runs the model (read back from ONNX Runtime, not what was asked)."""
        self.fallback_from: str | None = names[0] if self.device != names[0] else None
        if self.fallback_from is not None and wanted_explicit:
            msg = (
                f"providers: {names[0]!r} requested but ONNX Runtime could not start it and would run on "
                f"{self.device!r}; use `providers: auto` to accept the fallback"
            )
            raise ModelError(msg)
        self.precision = "f16" if self.device == "tensorrt" else "f32"
        self.input_dtype: np.dtype[np.generic] = np.dtype(np.uint8 if uint8_input else np.float32)
        self._run_options = ort.RunOptions()
        gpu = self.device in ("cuda", "tensorrt")
        self.io_binding = io_binding and gpu
        self.cuda_graph = cuda_graph and self.device == "cuda"
        if self.cuda_graph:
            self.io_binding = True
        # Per batch size: (binding, device input or None, device output, run options). At most one entry
        # per size the detector runs, so bounded by len(batch_sizes) (max_batch when not padding).
        self._bound: dict[int, tuple[Any, Any, Any, Any]] = {}
        self._io_device = "cuda"  # where bound buffers live (tests bind on "cpu" to run this code path)
        # How a bound output comes back to the host: "numpy" (OrtValue.numpy() of the device buffer) or
        # "copy" (IOBinding.copy_outputs_to_cpu()); compared in scripts/bench_gpu.py.
        self.output_copy = "numpy"

    def _provider_entry(self, short: str, trt_cache_dir: Path | None) -> str | tuple[str, dict[str, Any]]:
        if short == "cuda":
            cuda: dict[str, Any] = {
                "cudnn_conv_algo_search": self._cudnn_search,
                # Lets cuDNN pick algorithms that need large scratch space (faster on big batches); the
                # memory comes from ORT's arena and is reused.
                "cudnn_conv_use_max_workspace": "1",
            }
            if self._cuda_graph:
                cuda["enable_cuda_graph"] = "1"
            cuda.update(self._cuda_options)
            return (PROVIDERS[short], cuda)
        if short != "tensorrt":
            return PROVIDERS[short]
        cache = trt_cache_dir if trt_cache_dir is not None else default_trt_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        opts: dict[str, Any] = {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
        if self._info.dynamic_batch:
            # One profile per padded size (min = opt = max): the detector only ever runs these sizes.
            w, h = self._info.input_size
            name = self._input_name
            dims = "{}x{}x{}x3" if name == WRAPPED_INPUT else "{}x3x{}x{}"
            shapes = ",".join(f"{name}:" + dims.format(n, h, w) for n in self._sizes)
            opts["trt_profile_min_shapes"] = shapes
            opts["trt_profile_opt_shapes"] = shapes
            opts["trt_profile_max_shapes"] = shapes
        return (PROVIDERS[short], opts)

    def run(self, batch: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """``float32 [n, 4 + classes, anchors]`` for ``batch``; one caller at a time."""
        if self.io_binding:
            return self._run_bound(batch)
        out: npt.NDArray[np.float32] = self.session.run(
            [self._info.output_name], {self._input_name: batch}, self._run_options
        )[0]
        return out

    def _binding_for(self, batch: npt.NDArray[np.generic]) -> tuple[Any, Any, Any, Any]:
        n = int(batch.shape[0])
        entry = self._bound.get(n)
        if entry is not None:
            return entry
        session = self.session
        out_shape = session.get_outputs()[0].shape
        rows = 4 + len(self._info.class_names)
        anchors = out_shape[2] if isinstance(out_shape[2], int) else anchors_for(*self._info.input_size)
        out = ort.OrtValue.ortvalue_from_shape_and_type((n, rows, anchors), np.float32, self._io_device, 0)
        binding = session.io_binding()
        binding.bind_ortvalue_output(self._info.output_name, out)
        device_in = None
        options = ort.RunOptions()
        if self.cuda_graph:
            # A captured graph replays fixed addresses: the input must live in one device buffer per size.
            device_in = ort.OrtValue.ortvalue_from_shape_and_type(
                batch.shape, batch.dtype.type, self._io_device, 0
            )
            binding.bind_ortvalue_input(self._input_name, device_in)
            options.add_run_config_entry("gpu_graph_id", str(n))  # one graph per batch size
        entry = (binding, device_in, out, options)
        self._bound[n] = entry
        return entry

    def _run_bound(self, batch: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        binding, device_in, out, options = self._binding_for(batch)
        if device_in is None:
            # ORT copies the host input to the device on its own compute stream, so the copy is ordered
            # before the first kernel without any extra synchronisation.
            binding.bind_cpu_input(self._input_name, np.ascontiguousarray(batch))
        else:
            # update_inplace is a blocking cudaMemcpy outside ORT's stream; synchronize_inputs makes the
            # device finish it before the run reads the buffer.
            device_in.update_inplace(np.ascontiguousarray(batch))
            binding.synchronize_inputs()
        self.session.run_with_iobinding(binding, options)
        # run_with_iobinding returns once ORT's streams are done; numpy() then copies device -> host into
        # a new array, so the decode thread may hold it while the next batch runs.
        if self.output_copy == "copy":
            copied: npt.NDArray[np.float32] = binding.copy_outputs_to_cpu()[0]
            return copied
        host: npt.NDArray[np.float32] = out.numpy()
        return host

    def close(self) -> None:
        self._bound.clear()
        self.session = None
