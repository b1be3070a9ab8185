"""Pure parts of the publisher: topic layout, reset parsing, backoff, arguments.

Home Assistant discovery payloads are tested in tests/unit/discovery.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge.errors import PublishError
from edge.outbox import Outbox
from edge.publisher import Backoff, Publisher, Topics


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


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.5, 4.0, random.Random(1))
    delays = [b.next() for _ in range(8)]
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for d, n in zip(delays, nominal, strict=True):
        assert n / 2 <= d <= n
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert 0.25 <= b.next() <= 0.5


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
