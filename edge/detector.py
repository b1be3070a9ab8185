"""The detector stage: YOLOv8 / YOLO11 ONNX models on ONNX Runtime, micro-batched across cameras.

:class:`Detector` owns one ORT session, the letterbox tensor (:mod:`edge.preprocess`) and the decoder
(:mod:`edge.yolo`); :meth:`Detector.infer` turns BGR frames into one :class:`~edge.types.Detections` each.
:class:`BatchingDetector` is the named thread that gathers frames from all cameras, runs them as one batch
and hands every camera its own results, in order.

The model runs on an :class:`~edge.backends.base.InferenceBackend` (:mod:`edge.backends.onnxruntime`:
provider choice TensorRT -> CUDA -> CPU and the session live there); the provider that really runs is
logged once and exported as ``edge_detector_provider``.
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

from edge.backends.base import ModelInfo
from edge.backends.onnxruntime import (
    PROVIDERS,
    OnnxRuntimeBackend,
    cuda_device_count,
    open_cpu_session,
    resolve_providers,
)
from edge.clock import SystemClock
from edge.errors import ModelError
from edge.preprocess import Letterbox
from edge.yolo import YoloDecoder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edge.backends.base import InferenceBackend
    from edge.clock import Clock
    from edge.metrics import Metrics
    from edge.types import Detections, Frame

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

        # --- backend construction: the one place that chooses what runs the model -------------------
        backend: InferenceBackend = OnnxRuntimeBackend(
            self.model_path,
            info,
            providers=providers,
            intra_op_threads=intra_op_threads,
            trt_cache_dir=trt_cache_dir,
            max_batch=self.max_batch,
            cpu_session=probe,
        )
        del probe
        # ---------------------------------------------------------------------------------------------
        self._backend = backend
        self.provider: str = backend.device
        """What really runs the model (read back from the runtime, not what was asked)."""
        fallback_from: str | None = getattr(backend, "fallback_from", None)
        # One line per detector, whatever happened: which provider really runs, and why if not the best.
        logger.log(
            logging.WARNING if fallback_from else logging.INFO,
            "detector model=%s backend=%s provider=%s%s precision=%s input=%dx%d batch=%s classes=%d",
            self.model_path.name,
            backend.name,
            self.provider,
            f" (fallback: {fallback_from} could not start)" if fallback_from else "",
            backend.precision,
            self.input_size[0],
            self.input_size[1],
            f"dynamic(max {self.max_batch})" if self.dynamic_batch else "fixed 1",
            len(self.class_names),
        )
        if metrics is not None:
            metrics.detector_provider.info({"provider": self.provider, "model": self.model_path.name})

        self._letterbox = Letterbox(self.input_size[0], self.input_size[1], max_batch=self.max_batch)
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

    def warmup(self, batch_size: int = 1) -> None:
        """Run one grey batch so the first real frames do not pay for lazy initialisation (and, with
        TensorRT, the engine build); checks the real output shape against the class count."""
        n = min(max(batch_size, 1), self.max_batch)
        w, h = self.input_size
        grey = np.full((h, w, 3), 114, np.uint8)
        with self._lock:
            tensor, _ = self._letterbox.fill([grey] * n)
            out = self._run(tensor)
        expected = (n, 4 + len(self.class_names))
        if out.ndim != 3 or out.shape[:2] != expected:
            msg = (
                f"model {self.model_path}: output {out.shape} does not match [batch={n}, 4 + "
                f"{len(self.class_names)} classes, anchors]"
            )
            raise ModelError(msg)

    def _run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        start = time.perf_counter()
        out = self._backend.run(tensor)
        if self._metrics is not None:
            self._metrics.inference_seconds.observe(time.perf_counter() - start)
            self._metrics.batch_size.observe(tensor.shape[0])
        return out

    def infer(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect objects in ``uint8 (H, W, 3)`` BGR images; one :class:`Detections` per image, in order.

        Dynamic-batch models run up to ``max_batch`` images per ``run()``; fixed-batch models run one
        image at a time. Boxes are in each image's own pixels.
        """
        if not images:
            return []
        step = self.max_batch
        letterbox = self._letterbox
        with self._lock:
            if len(images) <= step:  # the usual case: one run, no slicing
                tensor, _ = letterbox.fill(images)
                return self._decoder.decode_batch(self._run(tensor), letterbox.params(len(images)))
            results: list[Detections] = []
            for start in range(0, len(images), step):
                tensor, _ = letterbox.fill(images[start : start + step])
                results += self._decoder.decode_batch(self._run(tensor), letterbox.params(tensor.shape[0]))
            return results


class BatchingDetector:
    """The detector thread: gathers frames from all cameras, runs them as one batch, delivers results.

    Args:
        detector: the model to run (its ``max_batch`` should be at least ``batch_size``).
        take: ``take(max_n, timeout_s)`` returns up to ``max_n`` pending frames, waiting at most
            ``timeout_s`` for them (the app gathers the newest frame of each camera slot; what it drops
            there it counts). An empty list means nothing is pending; the thread simply asks again.
        deliver: called once per frame, in the order ``take`` returned them, with that frame's detections.
            It runs on this thread, so it must be quick (a lossless hand-off to the tracker).
        batch_size: most frames per model run. Larger batches raise throughput on GPUs (and a little on
            CPU) at the cost of latency: a frame waits for its whole batch.
        max_batch_wait_ms: how long ``take`` may wait to fill a batch once asked. Longer fills batches when
            cameras are out of phase; shorter cuts latency when only one camera has a frame.
        metrics: frame age at pick-up is recorded per camera.
        clock: monotonic clock for frame age (default: the system clock).
        name: the thread's name, shown in logs and ``py-spy``.

    Progress (``batches_done``, ``frames_done``) is what a watchdog should watch: it grows only while
    frames really go through the model. A crash in the thread is logged once, kept in ``failure`` and ends
    the thread (the watchdog then sees no progress); the app decides to exit.
    """

    def __init__(
        self,
        detector: Detector,
        take: Callable[[int, float], list[Frame]],
        deliver: Callable[[Frame, Detections], None],
        *,
        batch_size: int = 4,
        max_batch_wait_ms: float = 5.0,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        name: str = "detector",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_wait_ms < 0:
            raise ValueError(f"max_batch_wait_ms must be >= 0, got {max_batch_wait_ms}")
        self._detector = detector
        self._take = take
        self._deliver = deliver
        self.batch_size = batch_size
        self._wait_s = max_batch_wait_ms / 1000.0
        self._metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        self.name = name
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once warm-up is done and frames are being taken."""
        self.batches_done = 0
        self.frames_done = 0
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to finish its current batch and exit; ``True`` if it did within ``timeout``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            self._detector.warmup(self.batch_size)
            self.ready.set()
            self._loop()
        except BaseException as exc:
            self.failure = exc
            logger.exception("detector thread %s crashed", self.name)
            raise

    def _loop(self) -> None:
        detector = self._detector
        metrics = self._metrics
        while not self._stop.is_set():
            frames = self._take(self.batch_size, self._wait_s)
            if not frames:
                continue
            if metrics is not None:
                now = self._clock.monotonic()
                for f in frames:
                    metrics.frame_age.labels(camera=f.camera).observe(now - f.captured_mono)
            results = detector.infer([f.image for f in frames])
            for frame, dets in zip(frames, results, strict=True):
                self._deliver(frame, dets)
            self.batches_done += 1
            self.frames_done += len(frames)
