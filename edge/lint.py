"""``edge check-config`` lints: things that are valid but probably not what the user meant."""

from __future__ import annotations

import io
from pathlib import Path

from edge.class_names import model_class_names
from edge.config import (
    COCO_CLASSES,
    CameraConfig,
    Settings,
    resolve_model_path,
    to_pixels,
)
from edge.logs import redact_url

EDGE_MARGIN = 0.02
"""A line or zone this close to the frame border (fraction of width/height) rarely sees a full crossing:
objects are cut off by the border and their anchor jumps."""


def _frame_size(cam: CameraConfig) -> tuple[int, int] | None:
    """Width and height of a local file source, read from its header; ``None`` for streams."""
    src = Path(cam.source)
    if "://" in cam.source or cam.source.startswith("/dev/") or not src.is_file():
        return None
    import cv2  # noqa: PLC0415 - only when a file source is linted

    cap = cv2.VideoCapture(str(src))
    try:
        if not cap.isOpened():
            return None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    return (w, h) if w > 0 and h > 0 else None


def lint_settings(settings: Settings, config_path: Path) -> list[str]:
    """Warnings for a config that loaded fine."""
    warnings: list[str] = []
    model_path = resolve_model_path(settings.model.path, config_path.parent)
    names = list(COCO_CLASSES)
    if not model_path.is_file():
        warnings.append(f"model.path: model file {model_path} not found (see models/README.md)")
    else:
        names = model_class_names(settings.model, config_path.parent)[0] or names
    model_classes = settings.model.classes
    kept = None if model_classes is None else {c if isinstance(c, str) else names[c] for c in model_classes}
    for ci, cam in enumerate(settings.cameras):
        where = f"cameras.{ci}"
        if "://" not in cam.source and not cam.source.startswith("/dev/") and not Path(cam.source).exists():
            warnings.append(f"{where}.source: file {cam.source} does not exist")
        size = (1, 1) if cam.coordinates == "normalized" else _frame_size(cam)
        items: list[tuple[str, int, tuple[tuple[float, float], ...], tuple[int | str, ...] | None]]
        items = [("lines", i, ln.points, ln.classes) for i, ln in enumerate(cam.lines)]
        items += [("zones", i, z.polygon, z.classes) for i, z in enumerate(cam.zones)]
        for kind, i, pts, classes in items:
            loc = f"{where}.{kind}.{i}"
            if kept is not None and classes is not None:
                ignored = {c if isinstance(c, str) else names[c] for c in classes} - kept
                if ignored:
                    warnings.append(
                        f"{loc}.classes: {sorted(ignored)} are filtered out by model.classes and never seen"
                    )
            if size is None:
                continue
            w, h = size
            px = to_pixels(pts, cam.coordinates, w, h)
            if any(x < 0 or y < 0 or x > w or y > h for x, y in px):
                warnings.append(f"{loc}: a point lies outside the {w}x{h} frame")
            elif kind == "lines" and all(
                min(x, w - x) < EDGE_MARGIN * w or min(y, h - y) < EDGE_MARGIN * h for x, y in px
            ):
                warnings.append(
                    f"{loc}: line lies within {EDGE_MARGIN:.0%} of the frame edge; objects there are cut "
                    "off by the border and may never cross it"
                )
    return warnings


def dump_effective(settings: Settings) -> str:
    """The effective configuration as YAML, secrets masked."""
    from ruamel.yaml import YAML  # noqa: PLC0415

    data = settings.model_dump(mode="json", by_alias=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    # SecretStr fields are already masked by pydantic; URLs with user:password@ are masked here.
    return redact_url(out.getvalue())
