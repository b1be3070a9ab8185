"""The broker setup docs/deploy.md documents loses nothing: edge -> site Mosquitto -> bridge -> central.

The bridge's link is cut for 20 s (a TCP relay in between stops relaying and refuses connections, as a WAN
cut does) while edge keeps publishing, and the consumer on the central broker, with a persistent session
(fixed client id, clean session off, QoS 1), is itself away for a while. Every event must arrive at the
central consumer, exactly once by ``event_id``. All brokers are private, on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from typing import TYPE_CHECKING

import pytest
from helpers.mosquitto import Subscriber, free_port
from mqtt_support import event, first_arrivals, make_broker, seq_in_order_per_camera, wait_until

from edge.outbox import Outbox
from edge.publisher import Publisher

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 600
RATE_HZ = 20.0  # 30 s of events
CUT_AT_S = 4.0
CUT_S = 20.0
CAMERAS = ("gate", "dock")


class Relay:
    """A TCP relay whose link can be cut: open connections are reset and new ones refused meanwhile."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = ("127.0.0.1", target_port)
        self._up = threading.Event()
        self._up.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, name="bridge-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(2.0)
        self._listener.close()


def bridge_conf(remote_port: int) -> list[str]:
    """The bridge section of docs/deploy.md (option B), pointed at the relay instead of a WAN address."""
    return [
        "connection central",
        f"address 127.0.0.1:{remote_port}",
        "bridge_protocol_version mqttv311",
        "remote_clientid bridge-site-a",
        "cleansession false",
        "bridge_attempt_unsubscribe false",
        "restart_timeout 1 2",
        "keepalive_interval 5",
        "topic edge/# out 1",
    ]


def test_bridge_cut_for_20_s_loses_and_duplicates_nothing_for_a_persistent_consumer(tmp_path: Path) -> None:
    central = make_broker(tmp_path / "central")
    central.start()
    relay = Relay(central.port)
    site = make_broker(tmp_path / "site", extra=bridge_conf(relay.port))
    site.start()
    consumer = Subscriber(
        central.host,
        central.port,
        ["edge/site-a/+/events/#"],
        client_id="central-consumer",
        clean_session=False,
    )
    outbox = Outbox(tmp_path / "state" / "outbox.db")
    try:
        consumer.start()
        # The bridge is up once a message published on the site reaches the central consumer.
        probe = Subscriber(site.host, site.port, ["edge/#"], client_id="probe")
        probe.start()
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline and not consumer.messages:
            probe.publish("edge/site-a/probe/events/probe", json.dumps({"event_id": "probe"}))
            time.sleep(0.3)
        probe.stop()
        assert consumer.messages, "bridge never came up:\n" + site.log_tail()

        async def scenario() -> None:
            pub = Publisher(
                "site-a", host=site.host, port=site.port, outbox=outbox, reconnect_base=0.2, reconnect_cap=1.0
            )
            await pub.start()
            assert await wait_until(lambda: pub.connected, 10.0)

            async def faults() -> None:
                await asyncio.sleep(CUT_AT_S)
                relay.cut()
                await asyncio.sleep(CUT_S - 1.0)
                # The consumer goes away just before the link returns, so the bridge's backlog reaches the
                # central broker while nobody is connected: only its persistent session keeps it.
                await asyncio.to_thread(consumer.stop)
                await asyncio.sleep(1.0)
                relay.restore()
                await asyncio.sleep(5.0)
                await asyncio.to_thread(consumer.start)

            fault_task = asyncio.create_task(faults())
            start = time.monotonic()
            for i in range(N_EVENTS):
                delay = start + i / RATE_HZ - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                camera = CAMERAS[i % len(CAMERAS)]
                pub.publish_event(camera, "line_crossing", event(camera, i // len(CAMERAS)))
            await fault_task
            assert await wait_until(lambda: outbox.depth == 0, 30.0)
            await pub.stop()

        asyncio.run(scenario())
        # Edge handed everything to the site broker; the bridge must now carry the backlog to central.
        ok = consumer.wait_for(
            lambda ms: len(first_arrivals([m for m in ms if "/probe/" not in m.topic])) >= N_EVENTS, 60.0
        )
        events = [m for m in consumer.messages if "/probe/" not in m.topic]
        arrived = first_arrivals(events)
        ids = [str(e["event_id"]) for e in arrived]
        expected = {json.loads(event(CAMERAS[i % 2], i // 2))["event_id"] for i in range(N_EVENTS)}
        missing = sorted(expected - set(ids))
        assert ok, f"{len(missing)} events missing at the central consumer, e.g. {missing[:5]}"
        assert set(ids) == expected
        assert len(ids) == len(set(ids)) == N_EVENTS  # exactly once by event_id
        assert seq_in_order_per_camera(arrived)
        raw_duplicates = len(events) - len(arrived)
        # QoS 1 over a bridge is at-least-once: a redelivery is allowed, but consumers dedupe by event_id.
        print(f"bridge: {N_EVENTS} events, {raw_duplicates} raw redeliveries (deduplicated by event_id)")
    finally:
        consumer.stop()
        outbox.close()
        site.stop()
        relay.close()
        central.stop()
