"""Disk full during a broker outage: no crash, one log line, /healthz degraded, everything delivered later.

The outbox lives on a real 256 kB tmpfs. While the broker is down, events fill the disk; the outbox turns
degraded (one error line; events held in memory) and the MQTT thread keeps running (issue 15: SQLITE_FULL in
the checkpoint used to kill it with exit 70, and the acknowledgement's DELETE failing made every restart
crash-loop). The broker returns while the disk is still full: acknowledgements work, so events flow. Then
space returns and the held events move to disk; every event_id arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import urllib.request
from typing import TYPE_CHECKING

import pytest
from helpers.disk import small_tmpfs
from helpers.mosquitto import Subscriber
from mqtt_support import event, first_arrivals, make_broker, wait_until
from prometheus_client import CollectorRegistry

from edge.metrics import Metrics
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.web import Health, WebServer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAYLOAD_PAD = "x" * 1500


def big_event(i: int) -> bytes:
    doc = json.loads(event("cam", i))
    doc["pad"] = PAYLOAD_PAD
    return json.dumps(doc).encode()


def healthz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return dict(json.loads(r.read()))


def test_disk_full_during_broker_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = make_broker(tmp_path / "broker")
    broker.start()
    metrics = Metrics(CollectorRegistry())
    sub = Subscriber(
        broker.host, broker.port, ["edge/full/+/events/#"], client_id="full-sub", clean_session=False
    )
    sub.start()
    n_events = 300
    with small_tmpfs(tmp_path / "state", "256k") as state:
        outbox = Outbox(
            state / "outbox.sqlite3", metrics=metrics, retry_interval_s=0.2, memory_max_events=1000
        )
        web = WebServer(
            "127.0.0.1",
            0,
            registry=metrics.registry,
            health=lambda: Health(ok=True),
            degraded=outbox.problems,
        )
        web.start()

        async def scenario() -> None:
            pub = Publisher(
                "full", host=broker.host, port=broker.port, outbox=outbox, metrics=metrics,
                reconnect_base=0.2, reconnect_cap=1.0, keepalive=5,
            )  # fmt: skip
            await pub.start()
            assert await wait_until(lambda: pub.connected, 10.0)
            await asyncio.to_thread(broker.stop)  # the outage
            assert await wait_until(lambda: not pub.connected, 10.0)
            for i in range(n_events // 2):
                pub.publish_event("cam", "line_crossing", big_event(i))
                await asyncio.sleep(0.002)
            assert outbox.degraded, "the 256 kB disk should be full by now"
            health = healthz(web.port)
            assert health["status"] == "degraded"
            assert "not writable" in str(health["degraded"])
            await asyncio.sleep(1.5)  # checkpoints on the full disk must not kill the MQTT thread
            assert pub._thread is not None
            assert pub._thread.is_alive()
            await asyncio.to_thread(broker.start)  # broker back, disk still full: acks must drain it
            for i in range(n_events // 2, n_events):
                pub.publish_event("cam", "line_crossing", big_event(i))
                await asyncio.sleep(0.002)
            assert await wait_until(lambda: outbox.depth == 0, 30.0), f"depth {outbox.depth}"
            remount = ["mount", "-o", "remount,size=8m", str(state)]
            await asyncio.to_thread(subprocess.run, remount, check=True)  # space returns
            pub.publish_event("cam", "line_crossing", big_event(n_events))
            assert await wait_until(lambda: not outbox.degraded, 10.0)
            assert await wait_until(lambda: outbox.depth == 0, 10.0)
            await pub.stop()

        with caplog.at_level(logging.WARNING):
            asyncio.run(scenario())
        assert healthz(web.port)["status"] == "ok"
        web.stop()
        outbox.close()
    ok = sub.wait_for(lambda ms: len(first_arrivals(ms)) >= n_events + 1, 20.0)
    sub.stop()
    broker.stop()
    ids = {str(e["event_id"]) for e in first_arrivals(sub.messages)}
    assert ok, f"{n_events + 1 - len(ids)} events missing"
    assert ids == {f"cam-{i:06d}" for i in range(n_events + 1)}
    outbox_errors = [r for r in caplog.records if r.name == "edge.outbox" and r.levelno >= logging.ERROR]
    assert len(outbox_errors) == 1, [r.getMessage() for r in outbox_errors]  # one line for the episode
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]  # no crashed MQTT thread
