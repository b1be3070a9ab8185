"""Settings camera -> :class:`~edge.events.LineSpec` / :class:`~edge.events.ZoneSpec` in frame pixels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.config import class_ids, to_pixels
from edge.events import LineSpec, ZoneSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edge.config import CameraConfig, Settings


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
        )
        for zone in camera.zones
    ]
    return lines, zones
