"""Acceptance: with the broker down and the outbox limited to 1 000, 1 500 events keep the newest 1 000,
edge_outbox_dropped_total reads 500, one log line says so, and the newest 1 000 arrive once it is back."""

from __future__ import annotations

import asyncio
import json
import logging
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

pytestmark = pytest.mark.integration

LIMIT, SENT = 1000, 1500


def test_outbox_bound_keeps_newest_and_counts_drops(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = make_broker(tmp_path / "broker")
    broker.start()
    metrics = Metrics(CollectorRegistry())
    outbox = Outbox(tmp_path / "outbox.db", max_events=LIMIT, metrics=metrics)
    sub = Subscriber(
        broker.host, broker.port, ["edge/n1/+/events/#"], client_id="bound-sub", clean_session=False
    )

    async def scenario() -> None:
        pub = Publisher(
            "n1", host=broker.host, port=broker.port, outbox=outbox, metrics=metrics,
            reconnect_base=0.1, reconnect_cap=0.5,
        )  # fmt: skip
        await pub.start()
        try:
            assert await wait_until(lambda: pub.connected, 10.0)
            await asyncio.to_thread(broker.stop)
            assert await wait_until(lambda: not pub.connected, 10.0)
            for i in range(SENT):
                pub.publish_event("gate", "line_crossing", event("gate", i))
            assert outbox.depth == LIMIT
            assert metrics.registry.get_sample_value("edge_outbox_dropped_total", {"reason": "count"}) == 500
            assert metrics.registry.get_sample_value("edge_outbox_depth") == LIMIT
            kept = [json.loads(r.payload)["seq"] for r in outbox]
            assert kept == list(range(SENT - LIMIT, SENT))

            await asyncio.to_thread(broker.start)
            assert await wait_until(lambda: len(first_arrivals(sub.messages)) >= LIMIT, 20.0)
            assert await wait_until(lambda: outbox.depth == 0, 5.0)
        finally:
            await pub.stop(flush_timeout=1.0)

    sub.start()
    try:
        with caplog.at_level(logging.WARNING, logger="edge.outbox"):
            asyncio.run(scenario())
    finally:
        sub.stop()
        broker.stop()
        outbox.close()

    events = first_arrivals(sub.messages)
    assert [e["seq"] for e in events] == list(range(SENT - LIMIT, SENT))
    assert seq_in_order_per_camera(events)
    overflow_lines = [r for r in caplog.records if "bound hit" in r.getMessage()]
    assert len(overflow_lines) == 1  # one line for the whole episode, not 500
