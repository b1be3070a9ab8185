"""Tracks bus over real ZeroMQ sockets: what subscribers receive, and that publishing never blocks."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import zmq
from helpers.paths import in_ci

from edge.bus import TracksBus, encode_tracks
from edge.errors import PublishError
from edge.metrics import Metrics
from edge.types import Detections

pytestmark = pytest.mark.timing  # wall-clock bounds: run alone (see pyproject.toml)

DETS = Detections.from_arrays(
    [[10.04, 20.0, 110.0, 220.26], [300.0, 40.0, 360.5, 200.0]], [0.91234, 0.5], [0, 2], [7, -1]
)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.term()


@pytest.fixture
def subscriber(ctx):
    """Make connected SUB sockets, closed at teardown (an unclosed socket warns, and warnings fail)."""
    opened: list[zmq.Socket] = []

    def make(ctx, endpoint: str, *topics: str, rcvhwm: int = 1000) -> zmq.Socket:
        sub = ctx.socket(zmq.SUB)
        opened.append(sub)
        sub.setsockopt(zmq.RCVHWM, rcvhwm)
        sub.setsockopt(zmq.LINGER, 0)
        for t in topics or ("",):
            sub.setsockopt_string(zmq.SUBSCRIBE, t)
        sub.connect(endpoint)
        return sub

    yield make
    for sub in opened:
        sub.close(linger=0)


def first_message(bus: TracksBus, sub: zmq.Socket, camera: str = "door", timeout: float = 5.0):
    """Publish until the subscription has propagated (ZeroMQ's slow joiner) and return what arrives."""
    deadline = time.monotonic() + timeout
    seq = 0
    while time.monotonic() < deadline:
        bus.publish(camera, seq, 1_700_000_000.1234, DETS)
        seq += 1
        if sub.poll(50):
            return sub.recv_multipart()
    pytest.fail("subscriber received nothing")


def test_subscriber_receives_compact_json_with_camera_topic(ctx, subscriber):
    with TracksBus("tcp://127.0.0.1:*", context=ctx) as bus:
        sub = subscriber(ctx, bus.bound_endpoint)
        topic, payload = first_message(bus, sub)
    assert topic == b"door"
    assert b" " not in payload
    msg = json.loads(payload)
    assert msg["camera"] == "door"
    assert isinstance(msg["seq"], int)
    assert msg["ts"] == pytest.approx(1_700_000_000.123)
    assert msg["boxes"] == [[10.0, 20.0, 110.0, 220.3], [300.0, 40.0, 360.5, 200.0]]
    assert msg["ids"] == [7, -1]
    assert msg["classes"] == [0, 2]
    assert msg["scores"] == [0.912, 0.5]


def test_msgpack_payload_has_the_same_content(ctx, subscriber):
    try:
        import msgpack
    except ImportError:
        if in_ci():
            pytest.fail("msgpack is not installed (it is in the dev extra)")
        pytest.skip("msgpack is not installed")
    with TracksBus("tcp://127.0.0.1:*", fmt="msgpack", context=ctx) as bus:
        sub = subscriber(ctx, bus.bound_endpoint)
        _, payload = first_message(bus, sub)
    msg = msgpack.unpackb(payload)
    assert msg["ids"] == [7, -1]
    assert msg["boxes"][1] == [300.0, 40.0, 360.5, 200.0]


def test_ipc_endpoint_and_topic_filtering(ctx, subscriber, tmp_path):
    with TracksBus(f"ipc://{tmp_path}/tracks.sock", context=ctx) as bus:
        sub = subscriber(ctx, bus.bound_endpoint, "yard")
        first_message(bus, sub, camera="yard")
        for seq in range(20):
            bus.publish("door", seq, 0.0, DETS)
            bus.publish("yard", 1000 + seq, 0.0, DETS)
        got = []
        while sub.poll(200):
            got.append(sub.recv_multipart())
    assert got
    assert {topic for topic, _ in got} == {b"yard"}
    # In order, none lost at this rate.
    seqs = [json.loads(p)["seq"] for _, p in got]
    assert seqs[-20:] == list(range(1000, 1020))


def test_empty_frame_is_published_with_empty_arrays(ctx, subscriber):
    with TracksBus("tcp://127.0.0.1:*", context=ctx) as bus:
        sub = subscriber(ctx, bus.bound_endpoint)
        first_message(bus, sub)
        bus.publish("door", 99, 5.0, Detections.empty())
        msgs = []
        while sub.poll(200):
            msgs.append(json.loads(sub.recv_multipart()[1]))
    last = msgs[-1]
    assert (last["seq"], last["boxes"], last["ids"], last["classes"], last["scores"]) == (99, [], [], [], [])


def test_full_subscriber_queue_drops_and_counts_without_blocking(ctx, subscriber):
    metrics = Metrics()
    with TracksBus("inproc://bus-hwm", hwm=5, metrics=metrics, context=ctx) as bus:
        sub = subscriber(ctx, "inproc://bus-hwm", rcvhwm=5)
        first_message(bus, sub)
        # The subscriber stops reading: inproc holds SNDHWM + RCVHWM messages, the rest are dropped.
        results = [bus.publish("door", seq, 0.0, DETS) for seq in range(200)]
        assert results.count(False) == bus.dropped
        assert 150 <= bus.dropped < 200
        assert bus.sent >= 1
        value = metrics.registry.get_sample_value(
            "edge_queue_dropped_total", {"queue": "tracks_bus", "reason": "hwm"}
        )
        assert value == bus.dropped
        # Once the subscriber catches up, frames flow again.
        while sub.poll(100):
            sub.recv_multipart()
        assert bus.publish("door", 1000, 0.0, DETS)


def test_stalled_tcp_subscriber_never_blocks_the_publisher(ctx, subscriber):
    big = Detections.from_arrays(
        np.random.default_rng(0).uniform(0, 1000, (200, 4)), np.ones(200), np.zeros(200), np.arange(200)
    )
    with TracksBus("tcp://127.0.0.1:*", hwm=10, context=ctx) as bus:
        sub = subscriber(ctx, bus.bound_endpoint, rcvhwm=10)
        first_message(bus, sub)
        # ~8 kB per message, 4000 messages = 32 MB: far more than socket buffers and both HWMs hold.
        for seq in range(4000):
            bus.publish("door", seq, 0.0, big)
        assert bus.dropped > 0
        assert bus.sent + bus.dropped >= 4000


def test_publish_from_several_threads(ctx, subscriber):
    with TracksBus("tcp://127.0.0.1:*", hwm=10_000, context=ctx) as bus:
        sub = subscriber(ctx, bus.bound_endpoint, rcvhwm=10_000)
        first_message(bus, sub)
        while sub.poll(100):
            sub.recv_multipart()

        def run(cam: str) -> None:
            for seq in range(200):
                bus.publish(cam, seq, 0.0, DETS)

        threads = [threading.Thread(target=run, args=(f"cam{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got: dict[bytes, list[int]] = {}
        while sub.poll(300):
            topic, payload = sub.recv_multipart()
            got.setdefault(topic, []).append(json.loads(payload)["seq"])
    assert bus.dropped == 0
    assert got == {f"cam{i}".encode(): list(range(200)) for i in range(4)}


def test_close_is_idempotent_and_publish_after_close_is_refused(ctx):
    bus = TracksBus("tcp://127.0.0.1:*", context=ctx)
    bus.close()
    bus.close()
    assert bus.publish("door", 0, 0.0, DETS) is False


def test_bad_settings_and_busy_endpoint_are_reported(ctx):
    with pytest.raises(ValueError, match="format"):
        TracksBus("tcp://127.0.0.1:*", fmt="xml", context=ctx)
    with pytest.raises(ValueError, match="hwm"):
        TracksBus("tcp://127.0.0.1:*", hwm=0, context=ctx)
    with TracksBus("tcp://127.0.0.1:*", context=ctx) as bus, pytest.raises(PublishError, match="cannot bind"):
        TracksBus(bus.bound_endpoint, context=ctx)
    with pytest.raises(PublishError, match="cannot bind"):
        TracksBus("ipc:///nonexistent-dir/x/tracks.sock", context=ctx)


def test_encode_tracks_uses_plain_python_types():
    msg = encode_tracks("c", 3, 1.5, DETS)
    assert type(msg["ids"][0]) is int
    assert type(msg["scores"][0]) is float
    assert type(msg["boxes"][0][0]) is float
