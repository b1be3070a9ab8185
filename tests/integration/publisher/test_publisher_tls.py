"""Acceptance: TLS (throwaway CA made with openssl) + password works; a wrong password or an untrusted
certificate gives one clear log line and retries with backoff, never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

import pytest
from helpers.mosquitto import Subscriber, TlsFiles, make_test_ca
from helpers.paths import require_tool
from mqtt_support import event, make_broker, wait_until
from pydantic import SecretStr

from edge.outbox import Outbox
from edge.publisher import Publisher

if TYPE_CHECKING:
    from pathlib import Path

    from helpers.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timing]

USER, PASSWORD = "edge", "correct horse battery"


@pytest.fixture
def tls_broker(tmp_path: Path) -> tuple[Mosquitto, TlsFiles]:
    tls = make_test_ca(tmp_path / "pki", openssl=require_tool("openssl"))
    broker = make_broker(tmp_path / "broker", users={USER: PASSWORD}, tls=tls)
    broker.start()
    yield broker, tls  # type: ignore[misc]
    broker.stop()


def test_tls_and_password_deliver_events(tmp_path: Path, tls_broker: tuple[Mosquitto, TlsFiles]) -> None:
    broker, tls = tls_broker
    outbox = Outbox(tmp_path / "outbox.db")

    async def scenario(sub: Subscriber) -> None:
        pub = Publisher(
            "n1",
            host=broker.host,
            port=broker.port,
            username=USER,
            password=SecretStr(PASSWORD),
            tls_ca=tls.ca,
            outbox=outbox,
        )
        await pub.start()
        try:
            assert await wait_until(lambda: pub.connected, 10.0)
            pub.publish_event("gate", "line_crossing", event("gate", 7))
            assert await wait_until(lambda: bool(sub.on("edge/n1/gate/events/line_crossing")), 5.0)
        finally:
            await pub.stop(flush_timeout=2.0)

    sub = Subscriber(broker.host, broker.port, ["edge/#"], username=USER, password=PASSWORD, tls_ca=tls.ca)
    with sub:
        asyncio.run(scenario(sub))
    outbox.close()
    (received,) = sub.on("edge/n1/gate/events/line_crossing")
    assert json.loads(received.payload)["event_id"] == "gate-000007"


def run_failing(publisher: Publisher, seconds: float) -> None:
    async def scenario() -> None:
        await publisher.start()
        try:
            await asyncio.sleep(seconds)
            assert not publisher.connected
        finally:
            await publisher.stop(flush_timeout=0.0)

    asyncio.run(scenario())


def publisher_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Warnings and errors about the connection (the stop summary about the outbox is expected)."""
    return [
        r
        for r in caplog.records
        if r.name == "edge.publisher" and r.levelno >= logging.WARNING and "MQTT stop" not in r.getMessage()
    ]


def test_wrong_password_one_clear_line_backoff_no_traceback(
    tmp_path: Path, tls_broker: tuple[Mosquitto, TlsFiles], caplog: pytest.LogCaptureFixture
) -> None:
    broker, tls = tls_broker
    outbox = Outbox(tmp_path / "outbox.db")
    pub = Publisher(
        "n1",
        host=broker.host,
        port=broker.port,
        username=USER,
        password="not the password",  # noqa: S106 - a wrong password on purpose
        tls_ca=tls.ca,
        outbox=outbox,
        reconnect_base=0.05,
        reconnect_cap=0.2,
    )
    pub.publish_event("gate", "line_crossing", event("gate", 1))
    with caplog.at_level(logging.DEBUG):
        run_failing(pub, 1.5)
    outbox.close()
    lines = publisher_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert lines[0].levelno == logging.ERROR
    assert "refused the connection" in message
    assert "username and password" in message
    assert lines[0].exc_info is None
    assert "Traceback" not in caplog.text
    assert "not the password" not in caplog.text
    assert pub.connect_attempts >= 3  # kept retrying, with backoff between attempts
    assert pub.connect_attempts < 40
    assert outbox.depth == 1  # the event waits for a broker that accepts us


def test_untrusted_certificate_one_clear_line(
    tmp_path: Path, tls_broker: tuple[Mosquitto, TlsFiles], caplog: pytest.LogCaptureFixture
) -> None:
    broker, _ = tls_broker
    other_ca = make_test_ca(tmp_path / "other-pki")
    outbox = Outbox(tmp_path / "outbox.db")
    pub = Publisher(
        "n1",
        host=broker.host,
        port=broker.port,
        username=USER,
        password=PASSWORD,
        tls_ca=other_ca.ca,
        outbox=outbox,
        reconnect_base=0.05,
        reconnect_cap=0.2,
    )
    with caplog.at_level(logging.DEBUG):
        run_failing(pub, 1.0)
    outbox.close()
    lines = publisher_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "certificate verify failed" in lines[0].getMessage()
    assert "Traceback" not in caplog.text
    assert pub.connect_attempts >= 2
