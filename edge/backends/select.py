"""Choosing what runs the model: :func:`create_backend` turns ``model.backend`` into an inference backend.

``auto`` (the default) picks the fastest runtime that really works here:

1. ONNX Runtime with TensorRT / CUDA when a usable NVIDIA GPU is present (a CUDA device, and an
   onnxruntime built with the CUDA provider that really starts on it);
2. else OpenVINO when the ``openvino`` package is installed (1.5x-2.5x ONNX Runtime's CPU speed on the
   CPUs measured in docs/benchmarks.md);
3. else ONNX Runtime on the CPU.

An explicit provider list (``providers: [cpu]``) means ONNX Runtime, so ``auto`` honours it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from edge.backends.onnxruntime import PROVIDERS, OnnxRuntimeBackend, cuda_device_count
from edge.backends.openvino import OpenVINOBackend, openvino_available, resolve_precision
from edge.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from edge.backends.base import InferenceBackend, ModelInfo

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "openvino")


def default_openvino_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edge/openvino``: where compiled models go when no state directory is given."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge" / "openvino"


def nvidia_gpu_usable() -> bool:
    """A CUDA device is present and this onnxruntime has a provider that can use it."""
    available = ort.get_available_providers()
    gpu_providers = (PROVIDERS["cuda"], PROVIDERS["tensorrt"])
    return any(p in available for p in gpu_providers) and cuda_device_count() > 0


def _auto_providers(providers: str | Sequence[str]) -> bool:
    if isinstance(providers, str):
        return providers.lower() == "auto"
    return [p.lower() for p in providers] == ["auto"]


def create_backend(
    model_path: Path,
    info: ModelInfo,
    *,
    backend: str = "auto",
    device: str = "CPU",
    precision: str = "auto",
    providers: str | Sequence[str] = "auto",
    max_batch: int = 8,
    intra_op_threads: int | None = None,
    trt_cache_dir: Path | None = None,
    openvino_cache_dir: Path | None = None,
    openvino_streams: int | None = None,
    cpu_session: Any = None,
    openvino_core: Any = None,
    onnxruntime_options: Mapping[str, Any] | None = None,
) -> InferenceBackend:
    """The backend ``backend`` names (see the module docstring for ``auto``).

    Args:
        model_path: the ONNX file.
        info: what the detector read from the graph.
        backend: ``auto``, ``onnxruntime`` or ``openvino``.
        device: OpenVINO device (``CPU``, ``GPU``, ``NPU``, ``AUTO``); ONNX Runtime's device follows
            ``providers``.
        precision: ``auto`` (f32 on OpenVINO; f32, or f16 under TensorRT, on ONNX Runtime), ``f32``,
            ``bf16`` or ``f16``. bf16/f16 are OpenVINO settings: asking for them on ONNX Runtime raises
            :class:`ModelError`.
        providers: ONNX Runtime providers (``auto`` or an explicit list, which implies ONNX Runtime).
        max_batch: the largest batch ``run`` gets.
        intra_op_threads: CPU threads per run (ORT intra-op threads, OpenVINO inference threads).
        trt_cache_dir: TensorRT engine cache.
        openvino_cache_dir: OpenVINO compiled-model cache; ``None`` = :func:`default_openvino_cache_dir`.
        openvino_streams: OpenVINO streams a batch is split across; ``None`` = OpenVINO's choice on the
            CPU (see :class:`~edge.backends.openvino.OpenVINOBackend`).
        cpu_session: the detector's probe session, reused when ONNX Runtime runs on the CPU.
        openvino_core: an ``openvino.Core`` to share (benchmarks); ``None`` makes one.
        onnxruntime_options: further keyword arguments of
            :class:`~edge.backends.onnxruntime.OnnxRuntimeBackend` (uint8 input, CUDA graphs, ...), used
            only when ONNX Runtime is chosen.
    """
    choice = backend.lower()
    if choice not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}; got {backend!r}")
    prec = precision.lower()
    resolve_precision(prec)  # ValueError for an unknown name, whichever backend is chosen

    def onnxruntime() -> OnnxRuntimeBackend:
        if prec not in ("auto", "f32"):
            msg = (
                f"model.precision {prec!r} is an OpenVINO setting; ONNX Runtime runs f32 (f16 under "
                "TensorRT): use `precision: auto` or `backend: openvino`"
            )
            raise ModelError(msg)
        return OnnxRuntimeBackend(
            model_path,
            info,
            providers=providers,
            intra_op_threads=intra_op_threads,
            trt_cache_dir=trt_cache_dir,
            max_batch=max_batch,
            cpu_session=cpu_session,
            **dict(onnxruntime_options or {}),
        )

    def openvino() -> OpenVINOBackend:
        return OpenVINOBackend(
            model_path,
            info,
            device=device,
            precision=prec,
            max_batch=max_batch,
            cache_dir=openvino_cache_dir if openvino_cache_dir is not None else default_openvino_cache_dir(),
            threads=intra_op_threads,
            streams=openvino_streams,
            core=openvino_core,
        )

    if choice == "onnxruntime":
        return onnxruntime()
    if choice == "openvino":
        return openvino()

    # auto
    if not _auto_providers(providers):
        return onnxruntime()  # an explicit provider list is a request for ONNX Runtime
    if nvidia_gpu_usable():
        ort_backend = onnxruntime()
        if ort_backend.device != "cpu" or not openvino_available():
            return ort_backend
        # ONNX Runtime found the GPU but could not start on it (missing CUDA libraries) and fell back to
        # its CPU provider: OpenVINO is the faster CPU runtime.
        logger.warning(
            "backend auto: ONNX Runtime could not start on the NVIDIA GPU (%s); using OpenVINO on the CPU",
            getattr(ort_backend, "fallback_from", None) or "cuda",
        )
        ort_backend.close()
        return openvino()
    if openvino_available():
        return openvino()
    if prec not in ("auto", "f32"):
        msg = f"model.precision {prec!r} needs OpenVINO, which is not installed here; use `precision: auto`"
        raise ModelError(msg)
    return onnxruntime()
