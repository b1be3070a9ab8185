"""The detector stage: YOLOv8 / YOLO11 ONNX models, micro-batched across cameras.

:class:`Detector` owns a backend, the letterbox tensor (:mod:`edge.preprocess`) and the decoder
(:mod:`edge.yolo`); :meth:`Detector.infer` turns BGR frames into one :class:`~edge.types.Detections` each,
and :meth:`Detector.run_letterboxed` / :meth:`Detector.decode` are the same two steps apart, for the
overlapped detector thread (:class:`BatchingDetector`, in :mod:`edge.detector_thread`, re-exported here).

The model runs on an :class:`~edge.backends.base.InferenceBackend` chosen by
:func:`edge.backends.select.create_backend` (ONNX Runtime: provider choice TensorRT -> CUDA -> CPU in
:mod:`edge.backends.onnxruntime`; OpenVINO); what really runs is logged once and exported as
``edge_detector_provider``. On accelerators batches are padded to a few fixed sizes, each warmed up
before the detector is ready, so the device never meets a new input shape at run time.
"""

from __future__ import annotations

import ast
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.backends.base import ModelInfo, padded_sizes
from edge.backends.onnxruntime import (
    PROVIDERS,
    cuda_device_count,
    open_cpu_session,
    resolve_providers,
)
from edge.backends.select import create_backend
from edge.detector_thread import BatchingDetector
from edge.errors import ModelError
from edge.preprocess import Letterbox
from edge.yolo import YoloDecoder

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from edge.backends.base import InferenceBackend
    from edge.metrics import Metrics
    from edge.types import Detections

logger = logging.getLogger(__name__)

# Re-exported: callers and tests have always found these here.
__all__ = [
    "PROVIDERS",
    "BatchingDetector",
    "Detector",
    "ModelInfo",
    "class_ids_for",
    "inspect_model",
    "resolve_providers",
]
_cuda_device_count = cuda_device_count


def class_ids_for(class_names: Sequence[str], names: Sequence[str]) -> list[int]:
    """Class ids of ``names`` in a model's ``class_names``; ``ValueError`` lists unknown names."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [n for n in names if n not in index]
    if unknown:
        shown = ", ".join(class_names[:20]) + (", ..." if len(class_names) > 20 else "")
        msg = f"unknown class name(s) {unknown}; the model knows: {shown}"
        raise ValueError(msg)
    return [index[n] for n in names]


def _read_labels(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"labels file {path}: cannot be read ({exc.strerror or exc})") from exc
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise ModelError(f"labels file {path}: no class names (expected one per line)")
    return labels


def _names_from_metadata(meta: dict[str, str]) -> list[str] | None:
    raw = meta.get("names")
    if raw is None:
        return None
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(parsed, dict):
        try:
            return [str(parsed[i]) for i in range(len(parsed))]
        except KeyError:
            return None
    if isinstance(parsed, list | tuple):
        return [str(n) for n in parsed]
    return None


def inspect_model(session: Any, path: Path, labels_file: Path | None = None) -> ModelInfo:
    """Check that ``session`` (an ORT session, or anything with the same ``get_inputs``,
    ``get_outputs`` and ``get_modelmeta``) holds a YOLOv8/YOLO11 detect model and describe it.

    Raises :class:`ModelError` naming what was expected and what was found.
    """
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    if len(inputs) != 1:
        raise ModelError(f"model {path}: expected 1 input (images), found {len(inputs)}")
    inp = inputs[0]
    shape = list(inp.shape)
    if inp.type != "tensor(float)" or len(shape) != 4 or shape[1] != 3:
        want = "a float32 input [batch, 3, height, width]"
        msg = f"model {path}: expected {want}, found {inp.type} {shape}"
        raise ModelError(msg)
    meta: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
    task = meta.get("task")
    if task is not None and task != "detect":
        raise ModelError(f"model {path}: expected a detect model, found task {task!r}")
    height, width = shape[2], shape[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        try:
            imgsz = ast.literal_eval(meta.get("imgsz", ""))
            height, width = int(imgsz[0]), int(imgsz[1])
        except (ValueError, SyntaxError, TypeError, IndexError) as exc:
            msg = f"model {path}: input size is symbolic ({shape}) and no imgsz metadata gives it"
            raise ModelError(msg) from exc
    batch = shape[0]
    if isinstance(batch, int) and batch > 1:
        msg = f"model {path}: fixed batch {batch} is not supported; export with batch=1 or dynamic=True"
        raise ModelError(msg)

    expected = "[batch, 4 + classes, anchors] (YOLOv8/YOLO11 detect exported without NMS)"
    if not outputs:
        raise ModelError(f"model {path}: no outputs; expected {expected}")
    out = outputs[0]
    oshape = list(out.shape)
    if out.type != "tensor(float)" or len(oshape) != 3:
        raise ModelError(f"model {path}: expected output {expected}, found {out.type} {oshape}")
    rows, anchors = oshape[1], oshape[2]
    if isinstance(rows, int) and isinstance(anchors, int) and (rows < 5 or rows >= anchors):
        raise ModelError(f"model {path}: expected output {expected}, found {oshape}")

    names = _read_labels(labels_file) if labels_file is not None else _names_from_metadata(meta)
    if names is None:
        if not isinstance(rows, int):
            msg = f"model {path}: no class names in its metadata and output {oshape}; pass labels_file"
            raise ModelError(msg)
        names = [str(i) for i in range(rows - 4)]
    if isinstance(rows, int) and rows != 4 + len(names):
        source = f"labels file {labels_file}" if labels_file is not None else "its names metadata"
        msg = (
            f"model {path}: expected output {expected} with 4 + {len(names)} rows from {source}, "
            f"found {oshape}"
        )
        raise ModelError(msg)
    return ModelInfo(
        input_name=inp.name,
        input_size=(int(width), int(height)),
        dynamic_batch=not isinstance(batch, int) or batch < 1,
        output_name=out.name,
        class_names=names,
    )


class Detector:
    """One ONNX Runtime session running a YOLOv8 / YOLO11 detect model.

    Args:
        model_path: ONNX file exported without NMS, output ``[batch, 4 + nc, anchors]``.
        providers: ``"auto"`` (TensorRT -> CUDA -> CPU, whatever is present) or an explicit list such as
            ``["cuda", "cpu"]`` whose first entry must really run (else :class:`ModelError`).
        confidence: score threshold; lower finds more, and more false positives.
        iou: NMS IoU threshold; higher keeps more overlapping boxes (crowds) and more duplicates.
        classes: classes to keep, as ids or names (``["person", "car"]``); ``None`` = all. Unknown names
            or ids raise ``ValueError`` listing what the model knows.
        max_det: most boxes per frame.
        intra_op_threads: ORT CPU threads per run; ``None`` = ORT's default (one per physical core).
            Fewer leaves cores for decoding and tracking, more shortens each CPU inference.
        trt_cache_dir: TensorRT engine and timing cache (engine builds take minutes; the cache makes
            restarts fast). ``None`` = ``$XDG_CACHE_HOME/edge/tensorrt``.
        labels_file: one class name per line, overriding the model's ``names`` metadata.
        metrics: where inference time, batch size and provider are recorded.
        max_batch: the largest batch :meth:`infer` runs at once (larger inputs are split); it sizes the
            preallocated input tensor and the TensorRT optimisation profile. Set it to the batching
            thread's ``batch_size``.
        backend: ``"auto"`` (ONNX Runtime on a usable NVIDIA GPU, else OpenVINO when installed, else ONNX
            Runtime on the CPU), ``"onnxruntime"`` or ``"openvino"``; see :mod:`edge.backends.select`.
        device: OpenVINO device (``CPU``, ``GPU``, ``NPU``, ``AUTO``); ONNX Runtime follows ``providers``.
        precision: ``"auto"`` (f32), ``"f32"``, or OpenVINO's faster ``"bf16"`` / ``"f16"``, which move
            boxes by a few pixels (docs/benchmarks.md has the measured agreement).
        openvino_cache_dir: OpenVINO compiled-model cache, so the second start skips compilation;
            ``None`` = ``$XDG_CACHE_HOME/edge/openvino``.
        pad_batches: run only the fixed sizes :func:`~edge.backends.base.padded_sizes` gives, padding a
            partial batch with spare slots whose results are dropped. ``None`` (default) pads on
            accelerators, where a new input shape stalls for 0.3 s (cuDNN) to minutes (TensorRT) and a few
            spare slots cost little, and not on CPUs, where every spare slot costs its full share.
        uint8_input: ONNX Runtime only: feed ``uint8`` NHWC BGR frames to the model wrapped by
            :mod:`edge.backends.uint8_wrapper` (4x less to copy to a GPU, no host float pass); needs the
            ``onnx`` package. ``None`` (default) = on for CUDA/TensorRT when ``onnx`` is installed, off
            on CPU. The wrapper is cached in ``cache_dir``.
        cuda_graph: ONNX Runtime CUDA only: replay one captured CUDA graph per batch size (see
            :class:`~edge.backends.onnxruntime.OnnxRuntimeBackend`); off until measured on the GPU at hand.
        cache_dir: where derived models (the uint8 wrapper) are cached; ``None`` =
            ``$XDG_CACHE_HOME/edge``. The daemon should pass a folder of its state directory.
        onnxruntime_options: further :class:`~edge.backends.onnxruntime.OnnxRuntimeBackend` keyword
            arguments (``io_binding``, ``cudnn_conv_algo_search``, ``cuda_options``), for benchmarks.

    :meth:`infer` is synchronous and serialised by a lock: call it from one worker thread.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        providers: str | Sequence[str] = "auto",
        confidence: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[int | str] | None = None,
        max_det: int = 300,
        intra_op_threads: int | None = None,
        trt_cache_dir: Path | None = None,
        labels_file: Path | None = None,
        metrics: Metrics | None = None,
        max_batch: int = 8,
        backend: str = "auto",
        device: str = "CPU",
        precision: str = "auto",
        openvino_cache_dir: Path | None = None,
        pad_batches: bool | None = None,
        uint8_input: bool | None = None,
        cuda_graph: bool = False,
        cache_dir: Path | None = None,
        onnxruntime_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self._metrics = metrics
        self._lock = threading.Lock()
        if not self.model_path.is_file():
            raise ModelError(f"model {self.model_path}: file not found")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")

        # Inspect the graph on a CPU session first: a bad model fails fast and clearly, before a GPU
        # provider spends time (a TensorRT engine build) on it. On CPU-only machines it is the session.
        probe = open_cpu_session(self.model_path, intra_op_threads)
        info = inspect_model(probe, self.model_path, labels_file)
        self.class_names: list[str] = info.class_names
        self.input_size: tuple[int, int] = info.input_size
        """Model input as ``(width, height)``."""
        self.dynamic_batch: bool = info.dynamic_batch
        self._input_name = info.input_name
        self._output_name = info.output_name
        self.max_batch = max_batch if self.dynamic_batch else 1

        # GPU-only ONNX Runtime settings, fixed when the session is created; passed only when asked for.
        ort_options: dict[str, Any] = dict(onnxruntime_options or {})
        if uint8_input is not None or cuda_graph:
            ort_options.update(uint8_input=uint8_input, cuda_graph=cuda_graph, cache_dir=cache_dir)
        ort_extra: dict[str, Any] = {"onnxruntime_options": ort_options} if ort_options else {}
        # --- backend construction: the one place that chooses what runs the model -------------------
        runner: InferenceBackend = create_backend(
            self.model_path,
            info,
            backend=backend,
            device=device,
            precision=precision,
            providers=providers,
            intra_op_threads=intra_op_threads,
            trt_cache_dir=trt_cache_dir,
            openvino_cache_dir=openvino_cache_dir,
            max_batch=self.max_batch,
            cpu_session=probe,
            **ort_extra,
        )
        del probe
        # ---------------------------------------------------------------------------------------------
        self._backend = runner
        self.provider: str = runner.device
        """What really runs the model (read back from the runtime, not what was asked)."""
        fallback_from: str | None = getattr(runner, "fallback_from", None)
        # One line per detector, whatever happened: which provider really runs, and why if not the best.
        logger.log(
            logging.WARNING if fallback_from else logging.INFO,
            "detector model=%s backend=%s provider=%s%s precision=%s input=%dx%d batch=%s classes=%d",
            self.model_path.name,
            runner.name,
            self.provider,
            f" (fallback: {fallback_from} could not start)" if fallback_from else "",
            runner.precision,
            self.input_size[0],
            self.input_size[1],
            f"dynamic(max {self.max_batch})" if self.dynamic_batch else "fixed 1",
            len(self.class_names),
        )
        if metrics is not None:
            metrics.detector_provider.info(
                {
                    "backend": runner.name,
                    "provider": self.provider,
                    "precision": runner.precision,
                    "model": self.model_path.name,
                }
            )

        pad = runner.device.lower() != "cpu" if pad_batches is None else pad_batches
        self._pad = pad
        self.batch_sizes: tuple[int, ...] = (
            padded_sizes(self.max_batch) if pad else tuple(range(1, self.max_batch + 1))
        )
        """The batch sizes the backend is run at; a partial batch is padded up to the next one."""
        self._letterbox = self.new_letterbox()
        class_ids = None
        if classes is not None:
            names_asked = [c for c in classes if isinstance(c, str)]
            by_name = dict(zip(names_asked, self.class_ids_for(names_asked), strict=True))
            class_ids = [by_name[c] if isinstance(c, str) else c for c in classes]
        self._decoder = YoloDecoder(
            len(self.class_names), confidence=confidence, iou=iou, classes=class_ids, max_det=max_det
        )

    @property
    def session(self) -> Any:
        """The ONNX Runtime session (for benchmarks that time bare ``run()`` on the same session), or
        ``None`` when the backend is not ONNX Runtime."""
        return getattr(self._backend, "session", None)

    @property
    def backend(self) -> InferenceBackend:
        """What runs the model."""
        return self._backend

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def output_name(self) -> str:
        return self._output_name

    def class_ids_for(self, names: Sequence[str]) -> list[int]:
        """Class ids of ``names`` (e.g. ``["person", "car"]``); ``ValueError`` lists unknown names."""
        return class_ids_for(self.class_names, names)

    def set_thresholds(self, *, confidence: float, iou: float) -> None:
        """Change the score and NMS thresholds of later :meth:`infer` calls (config reload)."""
        if not (0.0 <= confidence <= 1.0 and 0.0 <= iou <= 1.0):
            raise ValueError(f"thresholds must be within 0..1, got confidence={confidence} iou={iou}")
        with self._lock:
            self._decoder.confidence = float(confidence)
            self._decoder.iou = float(iou)

    def padded(self, n: int) -> int:
        """The batch size a batch of ``n`` frames (``1 <= n <= max_batch``) is run at."""
        for size in self.batch_sizes:
            if size >= n:
                return size
        raise ValueError(f"batch of {n} frames exceeds max_batch={self.max_batch}")

    def new_letterbox(self) -> Letterbox:
        """A letterbox of this model's input size and the backend's input type (float32 NCHW or uint8
        NHWC), sized for ``max_batch``: one per buffer of a double-buffered detector thread."""
        w, h = self.input_size
        return Letterbox(w, h, max_batch=self.max_batch, dtype=self._backend.input_dtype)

    def warmup(
        self,
        batch_size: int = 1,
        *,
        stop: threading.Event | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> bool:
        """Run grey batches so the first real frames do not pay for lazy initialisation: each padded
        batch size up to ``batch_size`` (cuDNN algorithm choice, TensorRT engine build, CUDA graph
        capture), or only ``batch_size`` where batches are not padded (CPU), and decode them (which
        compiles the decode kernels); letterbox a larger frame once (the resize path). Checks the real
        output shape against the class count.

        ``stop`` is checked between sizes (a TensorRT engine build itself cannot be interrupted);
        ``progress`` gets one line per size before it starts, e.g. for systemd ``STATUS=``. Returns
        ``False`` if stopped early.
        """
        n = min(max(batch_size, 1), self.max_batch)
        top = self.padded(n)
        sizes = [s for s in self.batch_sizes if s <= top] if self._pad else [top]
        w, h = self.input_size
        grey = np.full((h, w, 3), 114, np.uint8)
        letterbox = self.new_letterbox()
        for i, size in enumerate(sizes):
            if stop is not None and stop.is_set():
                return False
            if progress is not None:
                name = self.model_path.name
                progress(f"warming up {name} on {self.provider}: batch {size} ({i + 1}/{len(sizes)})")
            letterbox.fill([grey] * size)
            with self._lock:
                out = self._run(letterbox.batch(size), size)
            expected = (size, 4 + len(self.class_names))
            if out.ndim != 3 or out.shape[:2] != expected:
                msg = (
                    f"model {self.model_path}: output {out.shape} does not match [batch={size}, 4 + "
                    f"{len(self.class_names)} classes, anchors]"
                )
                raise ModelError(msg)
            # Decoding the grey batch (no boxes) compiles the decode kernels here, not on a real frame.
            with self._lock:
                self._decoder.decode_batch(out, letterbox.params(size))
        # The grey input-sized frames took the single-tap path (as 1920x1080 into 640 does); a frame
        # twice the input takes cv2.resize and the conversion kernel (as 1280x720 into 640 does), which
        # would otherwise compile on the first such real frame.
        letterbox.fill([np.full((2 * h, 2 * w, 3), 114, np.uint8)])
        return True

    def _run(self, tensor: npt.NDArray[Any], n: int) -> npt.NDArray[np.float32]:
        """Raw output for the first ``n`` of ``tensor``'s slots (the rest is padding)."""
        start = time.perf_counter()
        out = self._backend.run(tensor)
        if self._metrics is not None:
            self._metrics.inference_seconds.observe(time.perf_counter() - start)
            self._metrics.batch_size.observe(n)
        return out[:n]

    def run_letterboxed(self, letterbox: Letterbox, n: int) -> npt.NDArray[np.float32]:
        """Raw ``[n, 4 + classes, anchors]`` output for the ``n`` frames the last ``letterbox.fill``
        wrote, run at the padded size. Called by one thread at a time; does not take the decode lock, so
        a double-buffered caller decodes the previous batch meanwhile."""
        return self._run(letterbox.batch(self.padded(n)), n)

    def decode(self, out: npt.NDArray[np.float32], params: npt.NDArray[np.float64]) -> list[Detections]:
        """One :class:`Detections` per row of ``out``; ``params`` as :meth:`Letterbox.params` gives."""
        with self._lock:
            return self._decoder.decode_batch(out, params)

    def infer(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect objects in ``uint8 (H, W, 3)`` BGR images; one :class:`Detections` per image, in order.

        Dynamic-batch models run up to ``max_batch`` images per ``run()`` (padded to a fixed size where
        batches are padded); fixed-batch models run one image at a time. Boxes are in each image's own
        pixels.
        """
        if not images:
            return []
        step = self.max_batch
        letterbox = self._letterbox
        results: list[Detections] = []
        with self._lock:
            for start in range(0, len(images), step):
                chunk = images[start : start + step]
                letterbox.fill(chunk)
                out = self._run(letterbox.batch(self.padded(len(chunk))), len(chunk))
                results += self._decoder.decode_batch(out, letterbox.params(len(chunk)))
        return results
