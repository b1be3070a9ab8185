"""From config to stage objects: lines and zones in frame pixels, the detector, the tracker.

Shared by the daemon (``edge.app``) and the offline tools, so they all build stages the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.class_names import resolve_labels_path
from edge.config import class_ids, to_pixels
from edge.events import LineSpec, ZoneSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edge.config import CameraConfig, ModelConfig, Settings, TrackerConfig
    from edge.detector import Detector
    from edge.metrics import Metrics
    from edge.tracking import ByteTracker


def find_camera(settings: Settings, name: str | None) -> CameraConfig:
    """The camera called ``name`` (or the only camera when ``name`` is ``None``); ``KeyError`` if absent."""
    if name is None:
        if len(settings.cameras) == 1:
            return settings.cameras[0]
        names = ", ".join(c.name for c in settings.cameras)
        msg = f"the config has several cameras ({names}); choose one with --camera"
        raise KeyError(msg)
    for cam in settings.cameras:
        if cam.name == name:
            return cam
    names = ", ".join(c.name for c in settings.cameras)
    msg = f"no camera {name!r} in the config (cameras: {names})"
    raise KeyError(msg)


def camera_specs(
    camera: CameraConfig, width: int, height: int, class_names: Sequence[str]
) -> tuple[list[LineSpec], list[ZoneSpec]]:
    """The camera's lines and zones for frames of ``width`` x ``height`` pixels."""
    lines = []
    for line in camera.lines:
        a, b = to_pixels(line.points, camera.coordinates, width, height)
        lines.append(
            LineSpec(
                name=line.name,
                a=a,
                b=b,
                anchor=line.anchor,
                classes=class_ids(line.classes, class_names),
                labels={"in": line.labels.in_, "out": line.labels.out},
                min_frames=line.min_frames,
                min_distance=line.min_distance,
                extend=line.extend,
                count_repeats=line.count_repeats,
                backfill_seconds=line.backfill_seconds,
                forward_seconds=line.forward_seconds,
            )
        )
    zones = [
        ZoneSpec(
            name=zone.name,
            polygon=tuple(to_pixels(zone.polygon, camera.coordinates, width, height)),
            anchor=zone.anchor,
            classes=class_ids(zone.classes, class_names),
            inertia=zone.inertia,
            loiter_seconds=zone.loiter_seconds,
            max_gap_seconds=zone.max_gap_seconds,
        )
        for zone in camera.zones
    ]
    return lines, zones


def build_detector(
    model: ModelConfig,
    model_path: Path,
    *,
    metrics: Metrics | None = None,
    trt_cache_dir: Path | None = None,
    openvino_cache_dir: Path | None = None,
    config_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> Detector:
    """The detector a config describes (the model's own class filter applied inside it); the daemon keeps
    its TensorRT and OpenVINO caches in the state directory, tools in ``$XDG_CACHE_HOME/edge``."""
    from edge.detector import Detector  # noqa: PLC0415 - loads onnxruntime

    return Detector(
        model_path,
        providers="auto" if model.providers == ("auto",) else list(model.providers),
        confidence=model.confidence,
        iou=model.iou,
        classes=list(model.classes) if model.classes is not None else None,
        max_det=model.max_detections,
        intra_op_threads=model.intra_op_threads,
        trt_cache_dir=Path(model.trt_cache_dir) if model.trt_cache_dir else trt_cache_dir,
        # Found as config validation finds it, so the names checked there are the names used here.
        labels_file=resolve_labels_path(model.labels_file, config_dir) if model.labels_file else None,
        metrics=metrics,
        max_batch=max(1, model.batch_size),
        backend=model.backend,
        device=model.device,
        precision=model.precision,
        openvino_cache_dir=openvino_cache_dir,
        cache_dir=cache_dir,  # derived models (the GPU's uint8-input wrapper)
    )


def build_tracker(
    tracker: TrackerConfig,
    frame_rate: float,
    camera: str,
    *,
    metrics: Metrics | None = None,
    **overrides: Any,
) -> ByteTracker:
    """A ByteTracker with a config's thresholds, for one camera at ``frame_rate`` processed frames/s.

    ``overrides`` are ``ByteTracker`` keyword arguments that replace the config's (benchmarks measure
    one lever this way); an unknown one raises ``TypeError``.
    """
    from edge.tracking import ByteTracker  # noqa: PLC0415 - loads numba

    kwargs: dict[str, Any] = {
        "track_thresh": tracker.track_thresh,
        "low_thresh": tracker.low_thresh,
        "match_thresh": tracker.match_thresh,
        "track_buffer": tracker.track_buffer,
        "fuse_score": tracker.fuse_score,
        "max_tracks": tracker.max_tracks,
        "new_track_thresh": tracker.new_track_thresh,
        "link_distance": tracker.link_distance,
        "center_gate": tracker.center_gate,
        "confirm_thresh": tracker.confirm_thresh,
        "camera_motion": tracker.camera_motion,
        "metrics": metrics,
        "camera": camera,
    }
    return ByteTracker(frame_rate, **{**kwargs, **overrides})
