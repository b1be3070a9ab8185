"""Acceptance: retained line/zone state for late subscribers, the reset command, HA discovery (retained,
valid against the documented schema), camera status and availability; over MQTT 3.1.1 and 5."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from helpers.ha_discovery import load_schema, validate_discovery
from helpers.mosquitto import Received, Subscriber
from mqtt_support import event, make_broker, wait_until

from edge.discovery import CameraSpec, LineSpec, ZoneSpec, discovery_configs
from edge.outbox import Outbox
from edge.publisher import Publisher, Topics

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

CAMERAS = [
    CameraSpec("gate", lines=(LineSpec("door", ("person", "car")),), zones=(ZoneSpec("desk", ("person",)),)),
]


class Counts:
    """A stand-in for the analytics module: per-line counters that a reset zeroes and republishes."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], dict[str, Counter[str]]] = {}
        self.publisher: Publisher | None = None
        self.resets: list[tuple[str, str]] = []

    def cross(self, camera: str, line: str, direction: str, cls: str) -> None:
        state = self.lines.setdefault((camera, line), {"in": Counter(), "out": Counter()})
        state[direction][cls] += 1
        self.publish(camera, line)

    def publish(self, camera: str, line: str) -> None:
        assert self.publisher is not None
        state = self.lines.get((camera, line), {"in": Counter(), "out": Counter()})
        self.publisher.set_line_state(camera, line, {d: dict(c) for d, c in state.items()})

    def reset(self, camera: str, line: str) -> None:
        self.resets.append((camera, line))
        self.lines[(camera, line)] = {"in": Counter(), "out": Counter()}
        self.publish(camera, line)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_retained_state_reset_and_discovery(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(tmp_path / "broker")
    broker.start()
    outbox = Outbox(tmp_path / "outbox.db")
    counts = Counts()
    schema = load_schema()

    async def scenario() -> None:
        pub = Publisher(
            "n1",
            host=broker.host,
            port=broker.port,
            protocol=protocol,  # type: ignore[arg-type]
            outbox=outbox,
            on_line_reset=counts.reset,
        )
        counts.publisher = pub
        # A retained reset command left on the broker must not zero anything (it would do so at every start).
        with Subscriber(broker.host, broker.port, ["edge/n1/availability"], client_id="commander") as cmd:
            cmd.publish("edge/n1/gate/lines/door/reset", b"{}", retain=True)
        pub.declare_discovery(CAMERAS)
        await pub.start()
        try:
            await exercise(pub)
        finally:
            await pub.stop(flush_timeout=2.0)

    async def exercise(pub: Publisher) -> None:
        assert await wait_until(lambda: pub.connected, 10.0)
        # The observer sees the state reach the broker: the outbox only tracks events, and the state is sent
        # on the network thread, so without it a busy machine can let "late" subscribe before the last state
        # arrives, and get that one live (retain=False) instead of retained.
        with Subscriber(broker.host, broker.port, ["edge/n1/gate/#"], client_id="observer") as observer:
            pub.set_camera_status("gate", "online")
            for i, (direction, cls) in enumerate(
                [("in", "person"), ("in", "person"), ("out", "car"), ("in", "car")]
            ):
                counts.cross("gate", "door", direction, cls)
                pub.publish_event("gate", "line_crossing", event("gate", i))
            pub.set_zone_state("gate", "desk", {"occupancy": {"person": 2}})
            assert await wait_until(lambda: outbox.depth == 0, 10.0)

            final_line = {"in": {"person": 2, "car": 1}, "out": {"car": 1}}

            def final_state_arrived(m: list[Received]) -> bool:
                last = {x.topic: json.loads(x.payload) for x in m if x.topic.endswith("/state")}
                return (
                    any(x.topic == "edge/n1/gate/status" and x.payload == b"online" for x in m)
                    and last.get("edge/n1/gate/lines/door/state") == final_line
                    and last.get("edge/n1/gate/zones/desk/state") == {"occupancy": {"person": 2}}
                )

            assert observer.wait_for(final_state_arrived, 10.0)

        # A subscriber that connects after everything happened still sees the current state (retained).
        with Subscriber(broker.host, broker.port, ["edge/#", "homeassistant/#"], client_id="late") as late:
            n_discovery = len(discovery_configs(Topics("edge", "n1"), CAMERAS))

            def all_retained(m: list[Received]) -> bool:
                ha = sum(x.topic.startswith("homeassistant/") for x in m)
                return ha >= n_discovery and any(x.topic.endswith("zones/desk/state") for x in m)

            assert late.wait_for(all_retained, 5.0)
            line = late.last("edge/n1/gate/lines/door/state")
            assert line is not None
            assert line.retain
            assert json.loads(line.payload) == {"in": {"person": 2, "car": 1}, "out": {"car": 1}}
            zone = late.last("edge/n1/gate/zones/desk/state")
            assert zone is not None
            assert zone.retain
            assert json.loads(zone.payload) == {"occupancy": {"person": 2}}
            status = late.last("edge/n1/gate/status")
            assert status is not None
            assert (status.payload, status.retain) == (b"online", True)
            avail = late.last("edge/n1/availability")
            assert avail is not None
            assert (avail.payload, avail.retain) == (b"online", True)
            assert not any("/events/" in m.topic for m in late.messages)  # events are not retained

            discovery = [m for m in late.messages if m.topic.startswith("homeassistant/")]
            assert len(discovery) == n_discovery
            for m in discovery:
                assert m.retain, m.topic
                assert validate_discovery(m.topic, json.loads(m.payload), schema) == []

            # The retained command planted before start was ignored when the subscription delivered it.
            assert await wait_until(lambda: "retained reset" in caplog.text, 5.0)
            assert counts.resets == []

            # The reset command zeroes that line and the new state is published (and retained).
            late.publish("edge/n1/gate/lines/door/reset", b"{}")
            assert await wait_until(lambda: counts.resets == [("gate", "door")], 5.0)
            assert late.wait_for(
                lambda m: (
                    [x.payload for x in m if x.topic.endswith("door/state")][-1:] == [b'{"in":{},"out":{}}']
                ),
                5.0,
            )

    try:
        with caplog.at_level(logging.WARNING, logger="edge.publisher"):
            asyncio.run(scenario())
        # Clean stop publishes "offline" (retained), so the node's sensors turn unavailable in HA.
        with Subscriber(broker.host, broker.port, ["edge/n1/availability"], client_id="after") as after:
            assert after.wait_for(bool, 5.0)
            assert after.messages[-1].payload == b"offline"
            assert after.messages[-1].retain
    finally:
        broker.stop()
        outbox.close()
