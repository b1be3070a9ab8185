"""Acceptance: 2 000 events at 200/s survive a 10 s broker outage, every event_id arrives, seq in order."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import pytest
from helpers.mosquitto import Subscriber
from mqtt_support import event, first_arrivals, make_broker, seq_in_order_per_camera, wait_until
from prometheus_client import CollectorRegistry

from edge.metrics import Metrics
from edge.outbox import Outbox
from edge.publisher import Publisher

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 2000
RATE_HZ = 200.0
OUTAGE_START_S = 3.0
OUTAGE_S = 10.0
CAMERAS = ("north", "south")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_broker_outage_loses_nothing(tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    broker = make_broker(tmp_path / "broker")
    broker.start()
    metrics = Metrics(CollectorRegistry())
    outbox = Outbox(tmp_path / "state" / "outbox.db", metrics=metrics)
    sub = Subscriber(
        broker.host, broker.port, ["edge/n1/+/events/#"], client_id="outage-sub", clean_session=False
    )
    observed = {"max_depth": 0, "saw_disconnected": False}

    async def scenario() -> None:
        pub = Publisher(
            "n1",
            host=broker.host,
            port=broker.port,
            protocol=protocol,  # type: ignore[arg-type]
            outbox=outbox,
            metrics=metrics,
            keepalive=5,
            reconnect_base=0.2,
            reconnect_cap=1.0,
            connect_timeout=3.0,
        )
        await pub.start()
        assert await wait_until(lambda: pub.connected, 10.0)

        async def outage() -> None:
            await asyncio.sleep(OUTAGE_START_S)
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(broker.start)

        async def watch() -> None:
            while True:
                observed["max_depth"] = max(observed["max_depth"], outbox.depth)
                observed["saw_disconnected"] = observed["saw_disconnected"] or not pub.connected
                await asyncio.sleep(0.05)

        outage_task = asyncio.create_task(outage())
        watch_task = asyncio.create_task(watch())
        start = time.monotonic()
        for i in range(N_EVENTS):
            # Paced against absolute times so the rate stays 200/s whatever each put costs.
            delay = start + i / RATE_HZ - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            camera = CAMERAS[i % len(CAMERAS)]
            pub.publish_event(camera, "line_crossing", event(camera, i // len(CAMERAS)))
        await outage_task
        delivered = await wait_until(lambda: len(first_arrivals(sub.messages)) >= N_EVENTS, 40.0, 0.1)
        await pub.stop(flush_timeout=5.0)
        watch_task.cancel()
        assert delivered, f"only {len(first_arrivals(sub.messages))} of {N_EVENTS} distinct events arrived"

    sub.start()
    try:
        with caplog.at_level(logging.INFO, logger="edge.publisher"):
            asyncio.run(scenario())
    finally:
        sub.stop()
        broker.stop()
        outbox.close()

    events = first_arrivals(sub.messages)
    received = sum("/events/" in m.topic for m in sub.messages)
    print(
        f"outage[{protocol}]: {received} messages for {len(events)} events, "
        f"max outbox depth {observed['max_depth']}"
    )
    assert len({e["event_id"] for e in events}) == N_EVENTS
    assert seq_in_order_per_camera(events)
    # The outage really happened while events kept coming: hundreds waited in the outbox.
    assert observed["saw_disconnected"]
    assert observed["max_depth"] >= 0.5 * OUTAGE_S * RATE_HZ
    assert outbox.depth == 0
    published = sum(
        metrics.registry.get_sample_value("edge_events_published_total", {"camera": c}) or 0.0
        for c in CAMERAS
    )
    assert published == N_EVENTS
    # One log line per state change, however many reconnect attempts the outage took.
    changes = [r.getMessage().split(" (")[0] for r in caplog.records if r.name == "edge.publisher"]
    assert len(changes) <= 6, changes
