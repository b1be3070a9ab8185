"""Lifecycle edges: a broker that never answers, stop() bounded while connecting, a bug in the network
thread surfacing on the event loop instead of vanishing."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING

import pytest
from mqtt_support import event, make_broker, wait_until

from edge.outbox import Outbox, OutboxRow
from edge.publisher import Publisher

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.timing]


def test_silent_broker_times_out_once_and_stop_is_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A listening socket that never accepts: TCP connects (kernel backlog) but no CONNACK ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        outbox = Outbox(tmp_path / "outbox.db")
        pub = Publisher(
            "n1", host="127.0.0.1", port=port, outbox=outbox, connect_timeout=0.3,
            reconnect_base=0.05, reconnect_cap=0.1,
        )  # fmt: skip

        async def scenario() -> float:
            await pub.start()
            pub.publish_event("gate", "line_crossing", event("gate", 0))
            await asyncio.sleep(1.2)
            assert not pub.connected
            t = time.monotonic()
            await pub.stop(flush_timeout=0.2)
            return time.monotonic() - t

        with caplog.at_level(logging.WARNING, logger="edge.publisher"):
            stop_s = asyncio.run(scenario())
    assert stop_s < 0.2 + 0.3 + 2.0  # flush bound + at most one connect attempt + slack
    timeouts = [r for r in caplog.records if "did not accept the session" in r.getMessage()]
    assert len(timeouts) == 1
    assert pub.connect_attempts >= 2
    assert outbox.depth == 1
    outbox.close()


class BrokenOutbox(Outbox):
    """An outbox whose read fails like a bug would; injected through the constructor, not patched."""

    def pending(self, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        raise RuntimeError("bug in pending()")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_bug_in_the_network_thread_is_raised_on_the_loop(tmp_path: Path) -> None:
    broker = make_broker(tmp_path / "broker")
    broker.start()
    outbox = BrokenOutbox(tmp_path / "outbox.db")

    async def scenario() -> None:
        pub = Publisher("n1", host=broker.host, port=broker.port, outbox=outbox)
        await pub.start()
        pub.publish_event("gate", "line_crossing", event("gate", 0))
        with pytest.raises(RuntimeError, match="bug in pending"):
            await asyncio.wait_for(pub.join(), 10.0)
        assert await wait_until(lambda: not pub.connected, 1.0)
        with pytest.raises(RuntimeError, match="bug in pending"):
            await pub.stop(flush_timeout=0.0)

    try:
        asyncio.run(scenario())
    finally:
        broker.stop()
        outbox.close()
