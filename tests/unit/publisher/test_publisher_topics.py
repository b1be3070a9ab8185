"""Pure parts of the publisher: topic layout, reset parsing, backoff, arguments.

Home Assistant discovery payloads are tested in tests/unit/discovery.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge.backoff import Backoff
from edge.errors import PublishError
from edge.outbox import Outbox
from edge.publisher import Publisher, Topics


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda t: t.availability, "edge/n1/availability"),
        (lambda t: t.status("gate"), "edge/n1/gate/status"),
        (lambda t: t.event("gate", "line_crossing"), "edge/n1/gate/events/line_crossing"),
        (lambda t: t.line_state("gate", "door"), "edge/n1/gate/lines/door/state"),
        (lambda t: t.zone_state("gate", "desk"), "edge/n1/gate/zones/desk/state"),
        (lambda t: t.line_reset("gate", "door"), "edge/n1/gate/lines/door/reset"),
        (lambda t: t.snapshot("gate"), "edge/n1/gate/snapshot"),
        (lambda t: t.reset_filter, "edge/n1/+/lines/+/reset"),
    ],
)
def test_topic_layout(build, expected: str) -> None:
    assert build(Topics("edge", "n1")) == expected


def test_prefix_may_have_several_levels() -> None:
    assert Topics("site/a", "n1").status("cam") == "site/a/n1/cam/status"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x\x00"])
def test_names_that_would_break_topics_are_rejected(bad: str) -> None:
    topics = Topics("edge", "n1")
    with pytest.raises(ValueError, match="topic level"):
        topics.status(bad)
    with pytest.raises(ValueError, match="topic level"):
        Topics("edge", bad)


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("edge/n1/gate/lines/door/reset", ("gate", "door")),
        ("edge/n2/gate/lines/door/reset", None),
        ("edge/n1/gate/zones/door/reset", None),
        ("edge/n1/gate/lines/door/state", None),
        ("edge/n1/gate/lines/door/reset/x", None),
        ("other/n1/gate/lines/door/reset", None),
    ],
)
def test_parse_reset(topic: str, parsed: tuple[str, str] | None) -> None:
    assert Topics("edge", "n1").parse_reset(topic) == parsed


def test_reconnects_follow_the_shared_backoff_policy(tmp_path: Path) -> None:
    # The policy itself (jitter, cap, reset after a healthy period) is tested in tests/unit/capture.
    box = Outbox(tmp_path / "o.db")
    rng = random.Random(1)
    p = Publisher("n1", host="localhost", outbox=box, reconnect_base=0.5, reconnect_cap=4.0, rng=rng)
    assert isinstance(p._backoff, Backoff)
    assert (p._backoff.base, p._backoff.cap, p._backoff.reset_after) == (0.5, 4.0, 30.0)
    box.close()


def test_constructor_checks(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    with pytest.raises(ValueError, match="tls_insecure"):
        Publisher("n1", host="localhost", outbox=box, tls_insecure=True)
    with pytest.raises(ValueError, match="protocol"):
        Publisher("n1", host="localhost", outbox=box, protocol="4")  # type: ignore[arg-type]
    with pytest.raises(PublishError, match="TLS setup failed"):
        Publisher("n1", host="localhost", outbox=box, tls_ca=tmp_path / "missing.pem")
    box.close()


def test_publish_event_without_a_broker_goes_to_the_outbox(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    pub = Publisher("n1", host="127.0.0.1", outbox=box)
    pub.publish_event("gate", "line_crossing", b'{"event_id":"a","seq":1}')
    assert [r.topic for r in box] == ["edge/n1/gate/events/line_crossing"]
    assert not pub.connected
    box.close()


def test_from_config_takes_every_field_of_the_mqtt_section(tmp_path: Path) -> None:
    from edge.config import MqttConfig

    cfg = MqttConfig(
        host="broker",
        port=8883,
        username="u",
        password="secret",  # type: ignore[arg-type]  # noqa: S106 - a test value
        protocol="5",
        client_id="cid",
        keepalive=12,
        topic_prefix="site/a",
        qos=0,
        ha_discovery=False,
        ha_prefix="ha",
    )
    box = Outbox(tmp_path / "o.db")
    p = Publisher.from_config("n1", cfg, outbox=box)
    assert (p.host, p.port, p.username, p._password) == ("broker", 8883, "u", "secret")
    assert (p.protocol, p.client_id, p.keepalive, p.qos) == ("5", "cid", 12, 0)
    assert (p.topics.base, p.ha_discovery, p.ha_prefix) == ("site/a/n1", False, "ha")
    box.close()
