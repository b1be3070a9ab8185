"""Home Assistant MQTT discovery: the ``homeassistant/<component>/<node>/<object>/config`` payloads.

Pure functions of the configured cameras and the topic layout; the publisher sends what they return as
retained messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edge.publisher import Topics

# Payloads of the node's availability topic (the publisher's birth message and last will).
AVAILABLE = "online"
NOT_AVAILABLE = "offline"

# Home Assistant node_id / object_id: [a-zA-Z0-9_-]+ (HA MQTT discovery documentation).
_HA_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def ha_id(*parts: str) -> str:
    """Join name parts into a Home Assistant object id: only ``[a-zA-Z0-9_-]``, lower-case."""
    return "_".join(_HA_ID_UNSAFE.sub("_", p).strip("_").lower() or "x" for p in parts)


@dataclass(frozen=True, slots=True)
class LineSpec:
    """A counting line for discovery.

    ``classes`` are the class names counted (one sensor per direction and class); empty means the line
    counts every class and gets one total sensor per direction. The line state payload must be
    ``{"<direction>": {"<class>": count, ...}, ...}`` (see ``docs/mqtt.md``).
    """

    name: str
    classes: tuple[str, ...] = ()
    directions: tuple[str, ...] = ("in", "out")
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A zone for discovery; state payload ``{"occupancy": {"<class>": n, ...}}``."""

    name: str
    classes: tuple[str, ...] = ()
    label: str | None = None


@dataclass(frozen=True, slots=True)
class CameraSpec:
    name: str
    lines: tuple[LineSpec, ...] = ()
    zones: tuple[ZoneSpec, ...] = ()


def _template(key: str, cls: str | None) -> str:
    if cls is None:
        return "{{ value_json[%s].values() | sum }}" % json.dumps(key)  # noqa: UP031 - Jinja braces
    return "{{ value_json[%s][%s] | default(0) }}" % (json.dumps(key), json.dumps(cls))  # noqa: UP031


def discovery_configs(
    topics: Topics, cameras: Sequence[CameraSpec], ha_prefix: str = "homeassistant"
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery ``(config topic, payload)`` pairs, one sensor per count.

    Line counts are ``total_increasing`` (a reset to zero starts a new cycle in HA's statistics), zone
    occupancy is a ``measurement``. All sensors share the node's availability topic and one HA device.
    """
    node_id = ha_id("edge", topics.node)
    device = {
        "identifiers": [node_id],
        "name": f"edge {topics.node}",
        "manufacturer": "edge",
        "model": "edge camera analytics",
        "sw_version": __version__,
    }
    common: dict[str, Any] = {
        "availability_topic": topics.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": device,
        "origin": {"name": "edge", "sw_version": __version__},
        "qos": 1,
    }
    out: list[tuple[str, dict[str, Any]]] = []

    def add(
        object_parts: tuple[str, ...], name: str, state_topic: str, template: str, state_class: str
    ) -> None:
        object_id = ha_id(*object_parts)
        payload = {
            "name": name,
            "unique_id": f"{node_id}_{object_id}",
            "state_topic": state_topic,
            "value_template": template,
            "state_class": state_class,
            **common,
        }
        out.append((f"{ha_prefix}/sensor/{node_id}/{object_id}/config", payload))

    for cam in cameras:
        for line in cam.lines:
            label = line.label or line.name
            state = topics.line_state(cam.name, line.name)
            for direction in line.directions:
                if line.classes:
                    for cls in line.classes:
                        add(
                            (cam.name, "line", line.name, direction, cls),
                            f"{cam.name} {label} {direction} {cls}",
                            state,
                            _template(direction, cls),
                            "total_increasing",
                        )
                else:
                    add(
                        (cam.name, "line", line.name, direction),
                        f"{cam.name} {label} {direction}",
                        state,
                        _template(direction, None),
                        "total_increasing",
                    )
        for zone in cam.zones:
            label = zone.label or zone.name
            state = topics.zone_state(cam.name, zone.name)
            if zone.classes:
                for cls in zone.classes:
                    add(
                        (cam.name, "zone", zone.name, cls),
                        f"{cam.name} {label} {cls}",
                        state,
                        _template("occupancy", cls),
                        "measurement",
                    )
            else:
                add(
                    (cam.name, "zone", zone.name),
                    f"{cam.name} {label} occupancy",
                    state,
                    _template("occupancy", None),
                    "measurement",
                )
    return out
