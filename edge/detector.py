"""The detector stage: YOLOv8 / YOLO11 ONNX models on ONNX Runtime, micro-batched across cameras.

:class:`Detector` owns one ORT session, the letterbox tensor (:mod:`edge.preprocess`) and the decoder
(:mod:`edge.yolo`); :meth:`Detector.infer` turns BGR frames into one :class:`~edge.types.Detections` each.
:class:`BatchingDetector` is the named thread that gathers frames from all cameras, runs them as one batch
and hands every camera its own results, in order.

Providers: ``"auto"`` tries TensorRT (FP16, engine cache) -> CUDA -> CPU, keeping only those whose driver
and libraries are really present; an explicit list (``["cuda", "cpu"]``) must get its first entry, or
construction fails with a :class:`~edge.errors.ModelError` pointing at ``providers: auto``. ONNX Runtime
falls back to CPU silently when a GPU provider cannot start; the provider that really runs is read back
from ``session.get_providers()``, logged once and exported as ``edge_detector_provider``.
"""

from __future__ import annotations

import ast
import ctypes
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.clock import SystemClock
from edge.errors import ModelError
from edge.preprocess import Letterbox
from edge.yolo import YoloDecoder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edge.clock import Clock
    from edge.metrics import Metrics
    from edge.types import Detections, Frame

logger = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
"""Short provider names accepted in configuration -> ONNX Runtime provider names."""

_SHORT = {v: k for k, v in PROVIDERS.items()}

_AUTO_ORDER = ("tensorrt", "cuda", "cpu")


def _cuda_device_count() -> int:
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


def _tensorrt_present() -> bool:
    for name in ("libnvinfer.so.10", "libnvinfer.so"):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _default_trt_cache_dir() -> Path:
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
                f"{', '.join(_SHORT.get(a, a) for a in available)}); use `providers: auto` to fall back"
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


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What :func:`inspect_model` read from the graph.

    Attributes:
        input_name: name of the image input.
        input_size: model input as ``(width, height)``.
        dynamic_batch: ``True`` for a symbolic batch dimension, ``False`` for fixed batch 1.
        output_name: name of the ``[batch, 4 + nc, anchors]`` output.
        class_names: one name per class, index = class id.
    """

    input_name: str
    input_size: tuple[int, int]
    dynamic_batch: bool
    output_name: str
    class_names: list[str]


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

        available = ort.get_available_providers()
        cuda_devices = _cuda_device_count() if any(p != "CPUExecutionProvider" for p in available) else 0
        trt_libs = cuda_devices > 0 and _tensorrt_present()
        names = resolve_providers(providers, available, cuda_devices=cuda_devices, tensorrt_libs=trt_libs)
        asked = [providers] if isinstance(providers, str) else list(providers)
        wanted_explicit = [p.lower() for p in asked] != ["auto"]

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if intra_op_threads is not None:
            if intra_op_threads < 1:
                raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
            options.intra_op_num_threads = intra_op_threads
        # Fallbacks are detected and logged by us, once; ORT's own warnings would repeat them.
        options.log_severity_level = 3

        # Inspect the graph on a CPU session first: a bad model fails fast and clearly, before a GPU
        # provider spends time (a TensorRT engine build) on it. On CPU-only machines it is the session.
        try:
            probe = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(f"model {self.model_path}: not a loadable ONNX model ({exc})") from exc
        info = inspect_model(probe, self.model_path, labels_file)
        self.class_names: list[str] = info.class_names
        self.input_size: tuple[int, int] = info.input_size
        """Model input as ``(width, height)``."""
        self.dynamic_batch: bool = info.dynamic_batch
        self._input_name = info.input_name
        self._output_name = info.output_name
        self.max_batch = max_batch if self.dynamic_batch else 1

        if names == ["cpu"]:
            session = probe
        else:
            del probe
            provider_list: list[str | tuple[str, dict[str, Any]]] = [
                self._provider_entry(short, trt_cache_dir) for short in names
            ]
            try:
                session = ort.InferenceSession(
                    str(self.model_path), sess_options=options, providers=provider_list
                )
            except Exception as exc:
                msg = f"model {self.model_path}: cannot create a session on {names} ({exc})"
                raise ModelError(msg) from exc
        self._session = session

        running = session.get_providers()
        self.provider: str = _SHORT.get(running[0], running[0])
        """The provider that really runs the model (read back from ONNX Runtime, not what was asked)."""
        fell_back = self.provider != names[0]
        if fell_back and wanted_explicit:
            msg = (
                f"providers: {names[0]!r} requested but ONNX Runtime could not start it and would run on "
                f"{self.provider!r}; use `providers: auto` to accept the fallback"
            )
            raise ModelError(msg)
        # One line per detector, whatever happened: which provider really runs, and why if not the best.
        logger.log(
            logging.WARNING if fell_back else logging.INFO,
            "detector model=%s provider=%s%s input=%dx%d batch=%s classes=%d",
            self.model_path.name,
            self.provider,
            f" (fallback: {names[0]} could not start)" if fell_back else "",
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
        self._run_options = ort.RunOptions()

    def _provider_entry(self, short: str, trt_cache_dir: Path | None) -> str | tuple[str, dict[str, Any]]:
        if short != "tensorrt":
            return PROVIDERS[short]
        cache = trt_cache_dir if trt_cache_dir is not None else _default_trt_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        opts: dict[str, Any] = {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
        if self.dynamic_batch:
            w, h = self.input_size
            name = self._input_name
            opts["trt_profile_min_shapes"] = f"{name}:1x3x{h}x{w}"
            opts["trt_profile_opt_shapes"] = f"{name}:{self.max_batch}x3x{h}x{w}"
            opts["trt_profile_max_shapes"] = f"{name}:{self.max_batch}x3x{h}x{w}"
        return (PROVIDERS[short], opts)

    @property
    def session(self) -> Any:
        """The ONNX Runtime session (for benchmarks that time bare ``run()`` on the same session)."""
        return self._session

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
        out: npt.NDArray[np.float32] = self._session.run(
            [self._output_name], {self._input_name: tensor}, self._run_options
        )[0]
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
