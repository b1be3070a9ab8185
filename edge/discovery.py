"""Home Assistant MQTT discovery, and the retained state payloads its templates read.

This module owns both sides of one contract: the JSON that edge publishes retained on the line and zone
state topics (:func:`line_state_payload`, :func:`zone_state_payload`), and the discovery payloads whose
``value_template`` reads it (:func:`discovery_configs`). Keeping them together is what keeps the displayed
values right: a line state is ``{"in": {"person": 11, "total": 11}, "out": {...}}`` and a template reads
either one class or ``total``, never a sum over the keys (which would count ``total`` twice).

What a node declares (see ``docs/home-assistant.md``)::

    device "edge <node>":
        binary_sensor  connectivity (reads the availability topic)
    device "<camera>" (via_device: the node):
        sensor         status (connecting / online / stalled / offline / stopped)
        sensor         <line> <direction label> [(<class>)]   total_increasing, per direction and class
        button         reset <line> counters
        sensor         <zone> occupancy [(<class>)]           measurement
        binary_sensor  <zone> occupied
        event          line crossing / zone enter / zone exit / zone loitering
        image          last event snapshot (when snapshots are on)

Config topics are ``<ha_prefix>/<component>/edge_<node>/<object_id>/config``. :class:`DiscoveryLedger`
remembers what was declared, so a line, zone or camera that disappears from the config (SIGHUP reload or
restart) gets an empty retained config, which makes Home Assistant delete the entity; at restart the
ledger learns what an earlier run declared from the retained configs the broker sends back.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from edge import __version__
from edge.metrics import CAMERA_STATES  # what capture publishes on <camera>/status

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from edge.config import CameraConfig
    from edge.publisher import Topics

# Payloads of the node's availability topic (the publisher's birth message and last will).
AVAILABLE = "online"
NOT_AVAILABLE = "offline"

# The line / zone event topics the event entities listen to, and the event types each can carry.
ZONE_EVENT_TYPES = ("zone_enter", "zone_exit", "zone_loitering")

# Home Assistant node_id / object_id: [a-zA-Z0-9_-]+ (HA MQTT discovery documentation).
_HA_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")

# Icons per class for occupancy sensors; anything else gets a generic one.
_VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle", "train", "boat", "airplane"})


def ha_id(*parts: str) -> str:
    """Join name parts into a Home Assistant object id: only ``[a-zA-Z0-9_-]``, lower-case."""
    return "_".join(_HA_ID_UNSAFE.sub("_", p).strip("_").lower() or "x" for p in parts)


def _words(name: str) -> str:
    """A config name as a reader sees it: ``front_door`` -> ``front door``."""
    return re.sub(r"[_]+", " ", name).strip() or name


# -- what is declared --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineSpec:
    """A counting line for discovery.

    ``classes`` are the class names counted: one sensor per direction and class, plus a per-direction
    total when there are several; empty means every class, with one total sensor per direction.
    ``labels`` are the display labels of the ``in`` and ``out`` directions.
    """

    name: str
    classes: tuple[str, ...] = ()
    labels: tuple[str, str] = ("in", "out")


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A zone for discovery: occupancy sensors (per class and/or total) and an occupied binary sensor.

    ``loitering``: the zone raises loitering events (it has ``loiter_seconds``).
    """

    name: str
    classes: tuple[str, ...] = ()
    loitering: bool = False


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """One camera as Home Assistant sees it: a device under the node's device.

    ``snapshots``: declare the last-event image entity. ``url``: the camera's debug page, given to Home
    Assistant as the device's ``configuration_url`` (``None`` when the debug view is not reachable).
    """

    name: str
    lines: tuple[LineSpec, ...] = ()
    zones: tuple[ZoneSpec, ...] = ()
    snapshots: bool = False
    url: str | None = None


def debug_view_url(host: str, port: int) -> str | None:
    """Base URL of the debug view as another machine reaches it, or ``None`` if it cannot.

    A loopback bind is only reachable from the box itself, so it gets no link; a wildcard bind is named by
    the host name (no DNS lookup: this runs at startup).
    """
    if host in {"localhost", "::1"} or host.startswith("127."):
        return None
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - comparing, not binding
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def ha_cameras(
    cameras: Sequence[CameraConfig], class_names: Sequence[str], debug_url: str | None = None
) -> list[CameraSpec]:
    """The enabled cameras of the config as discovery sees them (class ids resolved to names)."""

    def names(classes: tuple[int | str, ...] | None) -> tuple[str, ...]:
        return tuple(c if isinstance(c, str) else _class_name(class_names, c) for c in classes or ())

    return [
        CameraSpec(
            name=cam.name,
            lines=tuple(
                LineSpec(ln.name, names(ln.classes), (ln.labels.in_, ln.labels.out)) for ln in cam.lines
            ),
            zones=tuple(ZoneSpec(z.name, names(z.classes), z.loiter_seconds is not None) for z in cam.zones),
            snapshots=cam.snapshots.enabled,
            url=f"{debug_url}/cameras/{quote(cam.name, safe='')}" if debug_url else None,
        )
        for cam in cameras
        if cam.enabled
    ]


# -- the retained state payloads ---------------------------------------------------------------------------


def _class_name(names: Sequence[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def line_state_payload(
    counts: Mapping[str, Mapping[int, int]], class_names: Sequence[str]
) -> dict[str, dict[str, int]]:
    """``{"in": {"<class>": n, ..., "total": sum}, "out": {...}}`` from counts keyed by class id."""
    out: dict[str, dict[str, int]] = {}
    for direction in ("in", "out"):
        per_class = {_class_name(class_names, c): n for c, n in counts.get(direction, {}).items()}
        out[direction] = {**per_class, "total": sum(per_class.values())}
    return out


def zone_state_payload(occupancy: Mapping[int, int], class_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{"occupancy": {"<class>": n, ..., "total": sum}}``; classes with nobody inside are left out."""
    per_class = {_class_name(class_names, c): n for c, n in occupancy.items() if n}
    return {"occupancy": {**per_class, "total": sum(per_class.values())}}


EMPTY_ZONE_STATE: dict[str, dict[str, int]] = {"occupancy": {"total": 0}}
"""What a zone's state says when edge stops cleanly (nobody is being watched, so nobody is counted)."""


# -- templates ---------------------------------------------------------------------------------------------


def _count_template(key: str, field: str) -> str:
    # .get() at both levels: a state written by an older edge (or a class nobody has been seen of yet)
    # reads as 0 instead of a template error in Home Assistant's log.
    return "{{ value_json.get(%s, {}).get(%s, 0) }}" % (json.dumps(key), json.dumps(field))  # noqa: UP031


_OCCUPIED_TEMPLATE = '{{ "ON" if value_json.get("occupancy", {}).get("total", 0) > 0 else "OFF" }}'


def _event_template(key_field: str) -> str:
    """Turn an edge event into Home Assistant's event payload: ``event_type`` plus attributes."""
    return (
        "{{ {"
        f'"event_type": value_json.{key_field} ~ "_" ~ value_json.get("direction", value_json.type), '
        '"class": value_json.class_name, '
        '"direction": value_json.get("direction"), '
        '"direction_label": value_json.get("label"), '
        '"line": value_json.get("line"), '
        '"zone": value_json.get("zone"), '
        '"track_id": value_json.track_id, '
        '"confidence": value_json.confidence, '
        '"event_id": value_json.event_id, '
        '"ts": value_json.ts'
        "} | tojson }}"
    )


# -- discovery payloads ------------------------------------------------------------------------------------


def _occupancy_icon(cls: str | None) -> str:
    if cls == "person":
        return "mdi:account-multiple"
    if cls in _VEHICLES:
        return "mdi:car-multiple"
    return "mdi:account-group" if cls is None else "mdi:shape"


def discovery_configs(
    topics: Topics, cameras: Sequence[CameraSpec], ha_prefix: str = "homeassistant"
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery ``(config topic, payload)`` pairs for the node and its cameras.

    Line counts are ``total_increasing`` (a reset to zero starts a new cycle in Home Assistant's
    statistics), zone occupancy is a ``measurement``. Every entity follows the node's availability, so
    all of them go unavailable when edge stops or loses the broker. Names are the entity's part only: Home
    Assistant sets ``has_entity_name`` on every MQTT entity (since 2023.8) and shows them after the camera
    device's name ("plaza walkway eastbound (person)").
    """
    node_id = ha_id("edge", topics.node)
    node_device = {
        "identifiers": [node_id],
        "name": f"edge {topics.node}",
        "manufacturer": "edge",
        "model": "edge camera analytics",
        "sw_version": __version__,
    }
    origin = {"name": "edge", "sw_version": __version__}
    out: list[tuple[str, dict[str, Any]]] = []
    names_seen: set[tuple[str, str]] = set()

    def add(component: str, device: dict[str, Any], parts: tuple[str, ...], body: dict[str, Any]) -> None:
        object_id = ha_id(*parts)
        # Labels are free text, so two entities of one camera could still read alike (a zone "gate in"
        # next to a line "gate" labelled "in"); a number keeps every name unique on its device.
        base = name = str(body["name"])
        n = 2
        while (device["name"], name.lower()) in names_seen:
            name, n = f"{base} {n}", n + 1
        names_seen.add((device["name"], name.lower()))
        payload = {
            **body,
            "name": name,
            "unique_id": f"{node_id}_{object_id}",
            "device": device,
            "origin": origin,
        }
        out.append((f"{ha_prefix}/{component}/{node_id}/{object_id}/config", payload))

    available = {
        "availability_topic": topics.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
    }
    # The node's connectivity reads the availability topic itself, so it shows "disconnected", not
    # "unavailable", when edge is gone; it is also what makes the node device exist for via_device.
    add(
        "binary_sensor",
        node_device,
        ("node", "connectivity"),
        {
            "name": "connectivity",
            "state_topic": topics.availability,
            "payload_on": AVAILABLE,
            "payload_off": NOT_AVAILABLE,
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "qos": 1,
        },
    )
    for cam in cameras:
        device: dict[str, Any] = {
            "identifiers": [f"{node_id}_{ha_id(cam.name)}"],
            "name": cam.name,
            "manufacturer": "edge",
            "model": "camera",
            "via_device": node_id,
        }
        if cam.url is not None:
            device["configuration_url"] = cam.url
        add(
            "sensor",
            device,
            (cam.name, "status"),
            {
                "name": "status",
                "state_topic": topics.status(cam.name),
                "device_class": "enum",
                "options": list(CAMERA_STATES),
                "icon": "mdi:cctv",
                "entity_category": "diagnostic",
                "qos": 1,
                **available,
            },
        )
        for line in cam.lines:
            _add_line(add, topics, cam.name, device, line, available)
        for zone in cam.zones:
            _add_zone(add, topics, cam.name, device, zone, available)
        _add_events(add, topics, cam, device, available)
        if cam.snapshots:
            add(
                "image",
                device,
                (cam.name, "snapshot"),
                {
                    "name": "last event snapshot",
                    "image_topic": topics.snapshot(cam.name),
                    "content_type": "image/jpeg",
                    "icon": "mdi:image",
                    # The image platform documents no payload_(not_)available; its defaults are ours.
                    "availability_topic": topics.availability,
                },
            )
    return out


def _add_line(
    add: Any, topics: Topics, camera: str, device: dict[str, Any], line: LineSpec, available: dict[str, str]
) -> None:
    state = topics.line_state(camera, line.name)
    title = _words(line.name)
    per_class: list[str | None] = list(line.classes)
    if len(line.classes) != 1:
        per_class.append(None)  # the direction's total (the only sensor when the line counts every class)
    for direction, label in zip(("in", "out"), line.labels, strict=True):
        for cls in per_class:
            suffix = f" ({cls})" if cls is not None else ""
            add(
                "sensor",
                device,
                (camera, "line", line.name, direction, cls or "total"),
                {
                    "name": f"{title} {label}{suffix}",
                    "state_topic": state,
                    "value_template": _count_template(direction, cls or "total"),
                    "state_class": "total_increasing",
                    "unit_of_measurement": "crossings",
                    "icon": "mdi:counter",
                    "qos": 1,
                    **available,
                },
            )
    add(
        "button",
        device,
        (camera, "line", line.name, "reset"),
        {
            "name": f"reset {title} counters",
            "command_topic": topics.line_reset(camera, line.name),
            "payload_press": "reset",
            "retain": False,  # a retained command would reset the line again at every restart
            "icon": "mdi:restart",
            "entity_category": "config",
            "qos": 1,
            **available,
        },
    )


def _add_zone(
    add: Any, topics: Topics, camera: str, device: dict[str, Any], zone: ZoneSpec, available: dict[str, str]
) -> None:
    state = topics.zone_state(camera, zone.name)
    title = _words(zone.name)
    per_class: list[str | None] = list(zone.classes)
    if len(zone.classes) != 1:
        per_class.append(None)
    for cls in per_class:
        suffix = f" ({cls})" if cls is not None else ""
        add(
            "sensor",
            device,
            (camera, "zone", zone.name, cls or "total"),
            {
                "name": f"{title} occupancy{suffix}",
                "state_topic": state,
                "value_template": _count_template("occupancy", cls or "total"),
                "state_class": "measurement",
                "unit_of_measurement": "people" if cls == "person" else "objects",
                "icon": _occupancy_icon(cls if cls is not None or len(zone.classes) != 1 else None),
                "qos": 1,
                **available,
            },
        )
    add(
        "binary_sensor",
        device,
        (camera, "zone", zone.name, "occupied"),
        {
            "name": f"{title} occupied",
            "state_topic": state,
            "value_template": _OCCUPIED_TEMPLATE,
            "device_class": "occupancy",
            "qos": 1,
            **available,
        },
    )


def _add_events(
    add: Any, topics: Topics, cam: CameraSpec, device: dict[str, Any], available: dict[str, str]
) -> None:
    """One event entity per event topic of the camera; the event type says which line/zone and direction.

    Event topics are per camera (``<camera>/events/<type>``), so an entity per line would see every line's
    crossings and have to reject most of them (a warning in Home Assistant's log each time).
    """
    if cam.lines:
        add(
            "event",
            device,
            (cam.name, "events", "line_crossing"),
            {
                "name": "line crossing",
                "state_topic": topics.event(cam.name, "line_crossing"),
                "event_types": [f"{ln.name}_{d}" for ln in cam.lines for d in ("in", "out")],
                "value_template": _event_template("line"),
                "icon": "mdi:transit-connection-horizontal",
                "qos": 1,
                **available,
            },
        )
    for event_type in ZONE_EVENT_TYPES:
        zones = [z for z in cam.zones if event_type != "zone_loitering" or z.loitering]
        if not zones:
            continue
        add(
            "event",
            device,
            (cam.name, "events", event_type),
            {
                "name": event_type.replace("_", " "),
                "state_topic": topics.event(cam.name, event_type),
                "event_types": [f"{z.name}_{event_type}" for z in zones],
                "value_template": _event_template("zone"),
                "icon": "mdi:vector-polygon",
                "qos": 1,
                **available,
            },
        )


# -- what was declared before ------------------------------------------------------------------------------


class DiscoveryLedger:
    """Which discovery configs this node has on the broker, so removed entities can be cleared.

    Two sources: what this process declared (a reload compares against it), and the retained configs the
    broker sends back when the publisher subscribes to :attr:`filter` (what an earlier run declared; a
    restart with a line removed finds it there). Thread-safe: :meth:`declare` runs on the event loop,
    :meth:`seen` on the MQTT thread.
    """

    def __init__(self, topics: Topics, ha_prefix: str = "homeassistant") -> None:
        self.node_id = ha_id("edge", topics.node)
        self.filter = f"{ha_prefix}/+/{self.node_id}/+/config"
        self._prefix = f"{ha_prefix}/"
        self._lock = threading.Lock()
        self._wanted: set[str] | None = None  # None until the first declare()
        self._on_broker: set[str] = set()

    def owns(self, topic: str) -> bool:
        """True for a discovery config topic of this node."""
        parts = topic.split("/")
        return (
            topic.startswith(self._prefix)
            and len(parts) >= 4
            and parts[-1] == "config"
            and parts[-3] == self.node_id
        )

    def declare(self, configs: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """What to publish retained for this set of configs: each config, and ``b""`` for every topic
        declared before (by this run or one the broker remembers) that is no longer wanted."""
        configs = list(configs)
        wanted = {t for t, _ in configs}
        with self._lock:
            stale = (self._wanted or set()) | self._on_broker
            self._wanted = wanted
            self._on_broker &= wanted
        return configs + [(t, b"") for t in sorted(stale - wanted)]

    def seen(self, topic: str, payload: bytes) -> bool:
        """A retained config of this node arrived from the broker; ``True`` if it must be cleared now
        (it is not wanted, and the wanted set is already known)."""
        if not payload or not self.owns(topic):
            return False
        with self._lock:
            if self._wanted is None:
                self._on_broker.add(topic)  # decided at the first declare()
                return False
            return topic not in self._wanted


# -- cleaning up after a node --------------------------------------------------------------------------


def forget_node(
    host: str,
    port: int,
    *,
    node: str,
    topic_prefix: str = "edge",
    ha_prefix: str = "homeassistant",
    timeout: float = 5.0,
) -> list[str]:
    """Delete every retained message a node left on a broker; returns the topics cleared.

    That is its state, status, availability and snapshot topics (``<topic_prefix>/<node>/#``) and its
    discovery configs (an empty retained config makes Home Assistant remove the entity). For nodes that
    are gone for good, and for tests and benchmarks that ran against a shared broker. Blocks for up to
    ``timeout`` seconds; an unreachable broker raises :class:`OSError`.
    """
    import paho.mqtt.client as mqtt  # noqa: PLC0415 - only this tool needs it here
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    filters = [f"{topic_prefix}/{node}/#", f"{ha_prefix}/+/{ha_id('edge', node)}/+/config"]
    found: dict[str, None] = {}
    lock = threading.Lock()
    subscribed = threading.Event()
    last_message = [0.0]

    def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            with lock:
                found[msg.topic] = None
                last_message[0] = time.monotonic()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-forget-{node}-{os.getpid()}")
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        client.subscribe([(f, 1) for f in filters])
        deadline = time.monotonic() + timeout
        subscribed.wait(timeout)
        # The broker sends retained messages right after the SUBACK; a short quiet spell means all came.
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            with lock:
                quiet_since = max(quiet_since, last_message[0])
            if time.monotonic() - quiet_since > 0.3:
                break
            time.sleep(0.05)
        client.unsubscribe(filters)
        infos = [client.publish(t, b"", qos=1, retain=True) for t in found]
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    finally:
        client.disconnect()
        client.loop_stop()
    return list(found)
