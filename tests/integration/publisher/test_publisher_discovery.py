"""Acceptance (issue 16), against a real private mosquitto: what Home Assistant reads off the broker.

- Every discovery ``value_template``, rendered with Jinja2 against the *retained* state payload a late
  subscriber gets, shows the true count (lines and zones, with and without class filters).
- Pressing a line's reset button (publishing its ``command_topic`` / ``payload_press``) resets that line
  and nothing else.
- Entities removed from the config (reload, or a restart with a smaller config) lose their discovery
  configs: a later subscriber sees none of them; ``ha_discovery: false`` clears them all.
- A clean stop republishes zone state empty; snapshots are retained JPEGs; ``forget_node`` leaves nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest
from helpers.ha_discovery import component_of, load_schema, render, validate_discovery
from helpers.mosquitto import Subscriber
from mqtt_support import make_broker, wait_until

from edge.config import COCO_CLASSES
from edge.discovery import (
    CameraSpec,
    LineSpec,
    ZoneSpec,
    forget_node,
    line_state_payload,
    zone_state_payload,
)
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.snapshots import Options, render_snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from helpers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

NAMES = list(COCO_CLASSES)
CAMERAS = [
    CameraSpec(
        "gate",
        lines=(LineSpec("door", ("person",), ("inside", "outside")), LineSpec("road")),
        zones=(ZoneSpec("desk", ("person",)), ZoneSpec("yard")),
        snapshots=True,
    ),
    CameraSpec("street", lines=(LineSpec("kerb", ("car", "truck", "bus")),)),
]
# The true counts, by class id (person 0, car 2, bus 5, truck 7, dog 16).
LINES = {
    ("gate", "door"): {"in": {0: 11}, "out": {0: 4}},
    ("gate", "road"): {"in": {0: 2, 2: 3}, "out": {7: 1}},
    ("street", "kerb"): {"in": {2: 5, 5: 1}, "out": {7: 2}},
}
ZONES = {("gate", "desk"): {0: 1}, ("gate", "yard"): {0: 1, 16: 2}}


def retained(broker: Mosquitto, filters: list[str], quiet: float = 0.5) -> dict[str, bytes]:
    """What a subscriber that connects now gets retained: ``{topic: payload}``."""
    with Subscriber(broker.host, broker.port, filters, client_id=f"late-{time.monotonic_ns()}") as sub:
        seen = -1
        while seen != len(sub.messages):
            seen = len(sub.messages)
            time.sleep(quiet)
        return {m.topic: m.payload for m in sub.messages if m.retain}


def run(
    broker: Mosquitto, tmp_path: Path, body: Callable[[Publisher], Awaitable[None]], **kw: object
) -> None:
    """Start a publisher (node n1), run ``body``, stop cleanly."""

    async def main() -> None:
        outbox = Outbox(tmp_path / f"outbox-{time.monotonic_ns()}.db")
        pub = Publisher("n1", host=broker.host, port=broker.port, outbox=outbox, **kw)  # type: ignore[arg-type]
        await pub.start()
        try:
            assert await wait_until(lambda: pub.connected, 10.0)
            await body(pub)
        finally:
            await pub.stop(flush_timeout=2.0)
            outbox.close()

    asyncio.run(main())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = make_broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def test_displayed_values_are_the_true_counts(broker: Mosquitto, tmp_path: Path) -> None:
    async def body(pub: Publisher) -> None:
        pub.declare_discovery(CAMERAS)
        for (cam, line), counts in LINES.items():
            pub.set_line_state(cam, line, line_state_payload(counts, NAMES))
        for (cam, zone), occ in ZONES.items():
            pub.set_zone_state(cam, zone, zone_state_payload(occ, NAMES))
        await asyncio.sleep(0.5)
        got = await asyncio.to_thread(retained, broker, ["edge/#", "homeassistant/#"])
        schema = load_schema()
        configs = {t: json.loads(p) for t, p in got.items() if t.startswith("homeassistant/")}
        assert {component_of(t) for t in configs} == {"sensor", "binary_sensor", "button", "event", "image"}
        checked = 0
        for topic, cfg in configs.items():
            assert validate_discovery(topic, cfg, schema) == [], topic
            if "value_template" not in cfg or component_of(topic) == "event":
                continue
            state = got[cfg["state_topic"]]  # the retained payload Home Assistant renders against
            parts = cfg["state_topic"].split("/")  # edge/n1/<camera>/<lines|zones>/<name>/state
            shown = render(cfg["value_template"], state)
            what = cfg["unique_id"].rsplit("_", 1)[1]
            if parts[3] == "lines":
                direction = cfg["unique_id"].rsplit("_", 2)[1]
                true = LINES[(parts[2], parts[4])][direction]
            else:
                true = ZONES[(parts[2], parts[4])]
            if component_of(topic) == "binary_sensor":
                assert shown == ("ON" if sum(true.values()) else "OFF"), cfg["name"]
            else:
                expected = sum(true.values()) if what == "total" else true.get(NAMES.index(what), 0)
                assert shown == str(expected), (cfg["name"], shown, expected)
            checked += 1
        assert checked >= 12

    run(broker, tmp_path, body)


def test_reset_button_resets_that_line_and_nothing_else(broker: Mosquitto, tmp_path: Path) -> None:
    counts = {key: dict(v) for key, v in LINES.items()}
    resets: list[tuple[str, str]] = []
    publisher: list[Publisher] = []

    def on_reset(camera: str, line: str) -> None:  # what the pipeline does on a reset command
        resets.append((camera, line))
        counts[(camera, line)] = {"in": {}, "out": {}}
        publisher[0].set_line_state(camera, line, line_state_payload(counts[(camera, line)], NAMES))

    async def body(p: Publisher) -> None:
        publisher.append(p)
        p.declare_discovery(CAMERAS)
        for (cam, line), c in counts.items():
            p.set_line_state(cam, line, line_state_payload(c, NAMES))
        await asyncio.sleep(0.3)
        got = await asyncio.to_thread(retained, broker, ["homeassistant/button/#"])
        button = next(json.loads(v) for t, v in got.items() if t.endswith("gate_line_road_reset/config"))
        # Press it as Home Assistant does: payload_press on command_topic, with the button's retain flag.
        with Subscriber(broker.host, broker.port, ["edge/n1/availability"], client_id="ha") as ha:
            ha.publish(button["command_topic"], button["payload_press"], retain=button["retain"])
        assert await wait_until(lambda: resets == [("gate", "road")], 5.0)
        await asyncio.sleep(0.5)
        state = await asyncio.to_thread(retained, broker, ["edge/n1/+/lines/+/state"])
        assert json.loads(state["edge/n1/gate/lines/road/state"]) == {"in": {"total": 0}, "out": {"total": 0}}
        for cam, line in (("gate", "door"), ("street", "kerb")):
            assert json.loads(state[f"edge/n1/{cam}/lines/{line}/state"]) == line_state_payload(
                LINES[(cam, line)], NAMES
            )

    run(broker, tmp_path, body, on_line_reset=on_reset)
    assert resets == [("gate", "road")]


def _discovery_topics(broker: Mosquitto) -> set[str]:
    return {t for t, p in retained(broker, ["homeassistant/#"]).items() if p}


def test_removed_entities_are_cleared_on_reload_and_on_restart(broker: Mosquitto, tmp_path: Path) -> None:
    smaller = [
        CameraSpec("gate", lines=(LineSpec("door", ("person",), ("inside", "outside")),), snapshots=True)
    ]
    before: set[str] = set()
    after_reload: set[str] = set()

    async def reload(pub: Publisher) -> None:
        nonlocal before, after_reload
        pub.declare_discovery(CAMERAS)
        await asyncio.sleep(0.5)
        before = await asyncio.to_thread(_discovery_topics, broker)
        pub.declare_discovery(smaller)  # what a SIGHUP reload with a line, a zone and a camera removed does
        await asyncio.sleep(0.5)
        after_reload = await asyncio.to_thread(_discovery_topics, broker)

    run(broker, tmp_path, reload)
    assert any("street" in t for t in before)
    assert any("gate_zone_desk" in t for t in before)
    assert after_reload < before
    assert not any("street" in t or "_road_" in t or "_zone_" in t for t in after_reload)
    assert any("gate_line_door" in t for t in after_reload)

    # Restart with the full config, then restart with the smaller one: the second run never declared the
    # removed entities itself; it finds them in what the broker sends back and clears them.
    async def declare_all(pub: Publisher) -> None:
        pub.declare_discovery(CAMERAS)
        await asyncio.sleep(0.5)

    run(broker, tmp_path, declare_all)
    assert _discovery_topics(broker) == before

    async def restart_smaller(pub: Publisher) -> None:
        pub.declare_discovery(smaller)
        await asyncio.sleep(1.0)

    run(broker, tmp_path, restart_smaller)
    assert _discovery_topics(broker) == after_reload

    # Discovery switched off: every config of the node goes.
    async def off(pub: Publisher) -> None:
        pub.declare_discovery(smaller)
        await asyncio.sleep(1.0)

    run(broker, tmp_path, off, ha_discovery=False)
    assert _discovery_topics(broker) == set()


def test_clean_stop_empties_zones_and_snapshots_are_retained_jpegs(broker: Mosquitto, tmp_path: Path) -> None:
    image = np.full((360, 640, 3), 30, np.uint8)
    image[100:200, 300:360] = 250
    jpeg = render_snapshot(image, [(300.0, 100.0, 360.0, 200.0)], ["person"], Options())

    async def body(pub: Publisher) -> None:
        pub.set_zone_state("gate", "desk", zone_state_payload({0: 1}, NAMES))
        pub.set_snapshot("gate", jpeg)
        await asyncio.sleep(0.3)

    run(broker, tmp_path, body)
    got = retained(broker, ["edge/#"])
    assert json.loads(got["edge/n1/gate/zones/desk/state"]) == {"occupancy": {"total": 0}}
    assert got["edge/n1/availability"] == b"offline"
    assert got["edge/n1/gate/snapshot"] == jpeg
    decoded = cv2.imdecode(np.frombuffer(got["edge/n1/gate/snapshot"], np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (360, 640, 3)


def test_forget_node_leaves_nothing_of_the_node(broker: Mosquitto, tmp_path: Path) -> None:
    async def body(pub: Publisher) -> None:
        pub.declare_discovery(CAMERAS)
        pub.set_camera_status("gate", "online")
        pub.set_line_state("gate", "door", line_state_payload(LINES[("gate", "door")], NAMES))
        await asyncio.sleep(0.5)

    run(broker, tmp_path, body)
    with Subscriber(broker.host, broker.port, ["x/y"], client_id="other") as other:
        other.publish("edge/n2/availability", b"online", retain=True)  # another node's: must stay
    assert any(t.startswith("edge/n1/") for t in retained(broker, ["#"]))
    cleared = forget_node(broker.host, broker.port, node="n1")
    assert len(cleared) > 10
    left = retained(broker, ["#"])
    assert left == {"edge/n2/availability": b"online"}
