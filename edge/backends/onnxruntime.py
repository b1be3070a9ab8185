"""ONNX Runtime backend: provider choice (TensorRT -> CUDA -> CPU), the session, and running batches.

Providers: ``"auto"`` tries TensorRT (FP16, engine cache) -> CUDA -> CPU, keeping only those whose driver
and libraries are really present; an explicit list (``["cuda", "cpu"]``) must get its first entry, or
construction fails with a :class:`~edge.errors.ModelError` pointing at ``providers: auto``. ONNX Runtime
falls back to CPU silently when a GPU provider cannot start; the provider that really runs is read back
from ``session.get_providers()`` and is this backend's :attr:`OnnxRuntimeBackend.device`.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edge.backends.base import ModelInfo

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


def default_trt_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge" / "tensorrt"


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
    ) -> None:
        self._info = info
        self._max_batch = max_batch
        available = ort.get_available_providers()
        cuda_devices = cuda_device_count() if any(p != PROVIDERS["cpu"] for p in available) else 0
        trt_libs = cuda_devices > 0 and tensorrt_present()
        names = resolve_providers(providers, available, cuda_devices=cuda_devices, tensorrt_libs=trt_libs)
        asked = [providers] if isinstance(providers, str) else list(providers)
        wanted_explicit = [p.lower() for p in asked] != ["auto"]

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
        self.input_dtype: np.dtype[np.generic] = np.dtype(np.float32)
        self._run_options = ort.RunOptions()

    def _provider_entry(self, short: str, trt_cache_dir: Path | None) -> str | tuple[str, dict[str, Any]]:
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
            w, h = self._info.input_size
            name = self._info.input_name
            opts["trt_profile_min_shapes"] = f"{name}:1x3x{h}x{w}"
            opts["trt_profile_opt_shapes"] = f"{name}:{self._max_batch}x3x{h}x{w}"
            opts["trt_profile_max_shapes"] = f"{name}:{self._max_batch}x3x{h}x{w}"
        return (PROVIDERS[short], opts)

    def run(self, batch: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """``float32 [n, 4 + classes, anchors]`` for ``batch``; one caller at a time."""
        out: npt.NDArray[np.float32] = self.session.run(
            [self._info.output_name], {self._info.input_name: batch}, self._run_options
        )[0]
        return out

    def close(self) -> None:
        self.session = None
