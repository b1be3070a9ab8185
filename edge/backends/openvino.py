"""The OpenVINO backend: the same ONNX file, compiled by OpenVINO for an Intel/AMD CPU, iGPU or NPU.

On CPUs without an NVIDIA GPU OpenVINO runs YOLO faster than ONNX Runtime's CPU provider (see
docs/benchmarks.md for the measured ratio). Only the "run this batch" step differs from ONNX Runtime: the
letterbox tensor goes in (float32 NCHW RGB 0..1), the raw ``[n, 4 + classes, anchors]`` output comes out,
and decode/NMS stay shared in :mod:`edge.yolo`.

Three choices are made here, each for a measured reason:

- **Precision is explicit.** On CPUs with AMX or AVX512-BF16 OpenVINO silently runs bf16 unless told
  otherwise; ``f32`` (the default) sets ``INFERENCE_PRECISION_HINT=f32`` so detections agree with ONNX
  Runtime. The precision really used is read back from the compiled model.
- **The compiled model is cached** in ``cache_dir`` (OpenVINO ``CACHE_DIR``): the first start compiles
  (seconds), later starts load the blob.
- **Batch splitting across streams** (on the CPU by default): a second compilation with OpenVINO's
  throughput hint, for a *static* batch of one, runs batches of two or more frames: each frame is its own
  infer request, all in flight at once, and OpenVINO's streams take them in turn. A single frame still
  runs on the latency compilation, on all cores, because on one stream it would get only that stream's
  share of them. On the 2-core VM one request per frame on the static shape beat one request per
  stream on a dynamic-batch compilation by 11 % frames/s for yolov8n at batch 2 and 4 and by 6 % for
  yolo11n_320 at batch 4, and one request for the whole batch on all cores by 3-14 %
  (docs/benchmarks.md). What it trades: each frame runs on one stream's share of the cores, so a batch
  whose size is not a multiple of the streams ends with cores idle (a batch of 3 on 2 streams takes
  about two single-stream frame times), and the second compilation costs memory and start-up time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ModelError

if TYPE_CHECKING:
    import numpy.typing as npt

    from edge.backends.base import ModelInfo

logger = logging.getLogger(__name__)

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
"""OpenVINO devices ``model.device`` accepts (``AUTO`` lets OpenVINO pick)."""

PRECISIONS = {"f32": "f32", "bf16": "bf16", "f16": "f16"}
"""edge precision names -> OpenVINO ``INFERENCE_PRECISION_HINT`` values."""

INSTALL_HINT = (
    "the openvino package is not installed; install it with "
    "`.venv/bin/pip install 'edge-analytics[openvino]'` (or `pip install openvino`), "
    "or set `model.backend: onnxruntime`"
)


def import_openvino() -> Any:
    """The ``openvino`` module, or :class:`ModelError` with one line saying how to install it."""
    try:
        import openvino  # noqa: PLC0415 - optional dependency, loaded only when chosen
    except ImportError as exc:
        raise ModelError(f"model.backend openvino: {INSTALL_HINT}") from exc
    return openvino


def openvino_available() -> bool:
    """Whether ``import openvino`` works here (what ``backend: auto`` asks)."""
    try:
        import_openvino()
    except ModelError:
        return False
    return True


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``f32``: bf16 and f16 did not pass the agreement check against ONNX Runtime f32 on the
    shared videos (docs/benchmarks.md), so they stay opt-in."""
    p = precision.lower()
    if p == "auto":
        return "f32"
    if p not in PRECISIONS:
        raise ValueError(f"precision: expected auto, {', '.join(PRECISIONS)}; got {precision!r}")
    return p


class OpenVINOBackend:
    """One compiled OpenVINO model; :meth:`run` turns a letterbox batch into the raw YOLO output.

    Args:
        model_path: the ONNX file (OpenVINO reads it directly; no IR files are written).
        info: what :func:`edge.detector.inspect_model` read from it (input name and size, dynamic batch).
        device: ``CPU``, ``GPU`` (Intel iGPU), ``NPU`` or ``AUTO``. A device OpenVINO does not see here
            raises :class:`ModelError` listing those it does.
        precision: ``f32`` (agrees with ONNX Runtime), ``bf16`` or ``f16`` (faster where the hardware has
            them, boxes move by a few pixels), or ``auto`` (= f32, see :func:`resolve_precision`).
        max_batch: the largest batch :meth:`run` gets; the model is compiled for batches 1..max_batch.
        cache_dir: compiled-model cache (OpenVINO ``CACHE_DIR``); ``None`` disables it, so every start
            compiles again (seconds on a small CPU).
        threads: CPU inference threads (``INFERENCE_NUM_THREADS``); ``None`` = all cores. Fewer leave
            cores for decoding and tracking.
        streams: parallel inference streams the frames of a batch of two or more are spread across (one
            infer request per frame, all in flight). ``None`` (default): on the CPU, as many as
            OpenVINO's throughput hint finds best for this machine; elsewhere 1. 1 runs each batch as
            one request on all cores (one compilation, least memory, lowest latency per batch); more
            raise the throughput of larger batches at the cost of a second compiled copy of the model
            (for a batch of one) and ``max_batch`` infer requests.
        core: an ``openvino.Core`` to compile with (tests and benchmarks share one); ``None`` makes one.

    :meth:`run` is for one caller at a time (the detector thread).
    """

    name = "openvino"

    def __init__(
        self,
        model_path: Path | str,
        info: ModelInfo,
        *,
        device: str = "CPU",
        precision: str = "f32",
        max_batch: int = 8,
        cache_dir: Path | None = None,
        threads: int | None = None,
        streams: int | None = None,
        core: Any = None,
    ) -> None:
        ov = import_openvino()
        self.model_path = Path(model_path)
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if streams is not None and streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        device = device.upper()
        if device not in DEVICES:
            raise ValueError(f"device: expected one of {', '.join(DEVICES)}; got {device!r}")
        wanted = resolve_precision(precision)
        self.input_dtype: np.dtype[np.generic] = np.dtype(np.float32)
        self.max_batch = max_batch if info.dynamic_batch else 1
        self._core = core if core is not None else ov.Core()
        seen = list(self._core.available_devices)
        if device != "AUTO" and not any(d.split(".")[0] == device for d in seen):
            msg = (
                f"model.device {device!r}: OpenVINO sees no such device here (it sees "
                f"{', '.join(seen) or 'none'}); use `device: CPU` or `device: AUTO`"
            )
            raise ModelError(msg)

        try:
            model = self._core.read_model(str(self.model_path))
        except Exception as exc:
            raise ModelError(f"model {self.model_path}: OpenVINO cannot read it ({exc})") from exc
        w, h = info.input_size
        batch_dim = ov.Dimension(1, self.max_batch) if self.max_batch > 1 else 1
        model.reshape({info.input_name: ov.PartialShape([batch_dim, 3, h, w])})

        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": PRECISIONS[wanted],
        }
        if threads is not None and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        if cache_dir is not None:
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ModelError(f"OpenVINO cache {cache_dir}: cannot be created ({exc.strerror})") from exc
            config["CACHE_DIR"] = str(cache_dir)
        self._compiled = self._compile(model, device, config, wanted)
        self._split: Any = None
        if streams is None:
            streams = 0 if device == "CPU" else 1  # 0: the throughput hint's own choice
        if streams != 1 and self.max_batch > 1:
            split_config = {**config, "PERFORMANCE_HINT": "THROUGHPUT"}
            if streams > 1:
                split_config["NUM_STREAMS"] = str(streams)
            one = model.clone()  # each frame is its own request: a static batch of one compiles faster code
            one.reshape({info.input_name: ov.PartialShape([1, 3, h, w])})
            self._split = self._compile(one, device, split_config, wanted)
            if streams == 0:
                streams = int(self._split.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            if streams <= 1:  # one stream: nothing to split across
                self._split = None
        streams = max(streams, 1)

        self.device: str = self._read_device(device)
        """The device that really runs (``AUTO`` resolved), e.g. ``CPU``."""
        self.precision: str = self._read_precision(wanted)
        """The precision the compiled model really uses (read back, not what was asked)."""
        self.streams = streams
        self._request = self._compiled.create_infer_request()
        self._split_requests = (
            [self._split.create_infer_request() for _ in range(self.max_batch)]
            if self._split is not None
            else []
        )

    def _compile(self, model: Any, device: str, config: dict[str, Any], precision: str) -> Any:
        try:
            return self._core.compile_model(model, device, config)
        except Exception as exc:
            msg = f"model {self.model_path}: OpenVINO cannot compile it for {device} at {precision} ({exc})"
            raise ModelError(msg) from exc

    @property
    def compiled(self) -> Any:
        """The ``openvino.CompiledModel`` (for benchmarks that time bare infer requests on it)."""
        return self._compiled

    @property
    def split_compiled(self) -> Any:
        """The throughput compilation (static batch of one) that runs each frame of a batch of two or more
        as its own request, or ``None``."""
        return self._split

    def _read_device(self, asked: str) -> str:
        try:
            devices = list(self._compiled.get_property("EXECUTION_DEVICES"))
        except Exception:  # an older plugin without the property: what was asked is what runs
            return asked
        return ",".join(str(d) for d in devices) or asked

    def _read_precision(self, wanted: str) -> str:
        try:
            value = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        except Exception:  # devices without the property (NPU) run what they run; report the request
            return wanted
        # An openvino.Type (f32, bf16, f16); its type name is the short form edge uses.
        return str(value.get_type_name() if hasattr(value, "get_type_name") else value).lower()

    def run(self, batch: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Raw output ``float32 [n, 4 + classes, anchors]`` for the letterbox tensor ``batch [n, 3, h, w]``.

        The result is a fresh array (not OpenVINO's request buffer), so it stays valid while the next
        batch runs.
        """
        n = batch.shape[0]
        if n > self.max_batch:
            raise ValueError(f"batch of {n} frames exceeds max_batch={self.max_batch}")
        if n <= 1 or not self._split_requests:
            request = self._request
            request.infer({0: batch}, share_inputs=True, share_outputs=True)
            out: npt.NDArray[np.float32] = np.array(request.get_output_tensor(0).data, copy=True)
            return out
        requests = self._split_requests[:n]  # one per frame (n <= max_batch), spread over the streams
        for i, request in enumerate(requests):
            request.start_async({0: batch[i : i + 1]}, share_inputs=True)
        for request in requests:
            request.wait()
        return np.concatenate([r.get_output_tensor(0).data for r in requests], axis=0)

    def close(self) -> None:
        """Release the infer requests and the compiled model (its memory goes with the last reference)."""
        self._request = None
        self._split_requests = []
        self._compiled = None
        self._split = None
