"""Retained messages that tests and benchmarks left on the machine's broker (127.0.0.1:1883).

A user's Home Assistant listens there: a retained discovery config from a test node is a phantom device
in it. Tests and benchmarks that use that broker name their nodes ``ci-<what>-<pid>`` or ``bench-<pid>``;
anything retained under such a node once the node is no longer online is a leftover.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TEST_NODE = re.compile(r"^(ci-[a-z0-9]+|bench)-\d+$")
_HA_NODE = re.compile(r"^edge_(.+)$")


def broker_up(host: str = "127.0.0.1", port: int = 1883) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def retained(host: str = "127.0.0.1", port: int = 1883, timeout: float = 3.0) -> dict[str, bytes]:
    """Every retained message on the broker (``#``; ``$SYS`` is not matched by ``#``)."""
    got: dict[str, bytes] = {}
    lock = threading.Lock()
    subscribed = threading.Event()
    last = [time.monotonic()]

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            with lock:
                got[msg.topic] = msg.payload
                last[0] = time.monotonic()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-leftover-check-{os.getpid()}")
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        client.subscribe("#", qos=0)
        deadline = time.monotonic() + timeout
        subscribed.wait(timeout)
        with lock:
            last[0] = time.monotonic()
        while time.monotonic() < deadline:
            with lock:
                quiet = time.monotonic() - last[0]
            if quiet > 0.3:
                break
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        client.loop_stop()
    return got


def node_of(topic: str) -> str | None:
    """The edge node a topic belongs to: ``<prefix>/<node>/...`` or ``<ha>/<component>/edge_<node>/...``."""
    parts = topic.split("/")
    if len(parts) >= 5 and parts[-1] == "config" and (m := _HA_NODE.match(parts[-3])):
        return m.group(1)
    for part in parts[1:]:
        if TEST_NODE.match(part):
            return part
    return None


def leftovers(messages: dict[str, bytes]) -> list[str]:
    """Retained topics of test or benchmark nodes that are not online right now (a benchmark running in
    parallel keeps its retained state while it runs, and clears it when it ends)."""
    online = {node_of(t) for t, p in messages.items() if t.endswith("/availability") and p == b"online"}
    out = []
    for topic in sorted(messages):
        node = node_of(topic)
        if node is not None and TEST_NODE.match(node) and node not in online:
            out.append(topic)
    return out
