"""Event snapshots: what the JPEG shows, and the bounded hand-off that drops (and counts) when behind."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from edge.metrics import Metrics
from edge.snapshots import (
    BOX_COLOR,
    Options,
    SnapshotEncoder,
    SnapshotRequest,
    jpeg_comment,
    render_snapshot,
)

OBJECT = (600.0, 300.0, 700.0, 420.0)  # x1, y1, x2, y2 of the white block in the test frame


def frame(width: int = 1280, height: int = 720) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in OBJECT)
    image[y1:y2, x1:x2] = 255
    return image


def decode(data: bytes) -> np.ndarray:
    assert data[:2] == b"\xff\xd8"  # JPEG SOI
    assert data[-2:] == b"\xff\xd9"  # JPEG EOI
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def near(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 60) -> bool:
    return bool(np.max(np.abs(pixel.astype(int) - np.array(color))) <= tol)


@pytest.mark.parametrize(
    ("max_width", "expected"), [(640, (360, 640)), (320, (180, 320)), (4096, (720, 1280))]
)
def test_full_frame_is_scaled_to_max_width_with_the_box_drawn(
    max_width: int, expected: tuple[int, int]
) -> None:
    image = frame()
    before = image.copy()
    out = decode(render_snapshot(image, [OBJECT], ["person"], Options(max_width=max_width)))
    assert out.shape[:2] == expected
    np.testing.assert_array_equal(image, before)  # the pipeline's frame is never drawn on
    s = expected[1] / 1280
    pad = max(2, round(expected[1] / 320)) // 2 + 2  # the box is drawn just outside the object
    # Left edge of the box, half-way down: the box colour; the object, edge and centre: still white.
    assert near(out[round(360 * s), round(600 * s) - pad], BOX_COLOR)
    assert near(out[round(360 * s), round(600 * s) + 2], (255, 255, 255))
    assert near(out[round(360 * s), round(650 * s)], (255, 255, 255))


def test_crop_is_around_the_object_with_margin() -> None:
    out = decode(render_snapshot(frame(), [OBJECT], ["car"], Options(mode="crop", crop_margin=0.5)))
    # Box 100 x 120 plus half of it on each side: 200 x 240, the object in the middle.
    assert out.shape[:2] == (240, 200)
    assert near(out[120, 100], (255, 255, 255))
    assert near(out[120, 47], BOX_COLOR)  # the box, just left of the object's edge at x = 50
    assert near(out[120, 52], (255, 255, 255))
    bright = (out.mean(axis=2) > 200).mean()
    assert bright > 0.2  # the object fills a good part of the crop (it is 1.3 % of the full frame)


def test_crop_of_several_boxes_covers_all_and_stays_inside_the_frame() -> None:
    boxes = [(0.0, 0.0, 30.0, 30.0), (1250.0, 690.0, 1280.0, 720.0)]
    out = decode(render_snapshot(frame(), boxes, ["a", "b"], Options(mode="crop", max_width=4096)))
    assert out.shape[:2] == (720, 1280)


def test_tiny_boxes_get_a_minimum_crop() -> None:
    out = decode(render_snapshot(frame(), [(640.0, 360.0, 642.0, 362.0)], [""], Options(mode="crop")))
    assert min(out.shape[:2]) >= 90


def test_quality_trades_bytes() -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    small = render_snapshot(noisy, [OBJECT], ["x"], Options(quality=30))
    big = render_snapshot(noisy, [OBJECT], ["x"], Options(quality=95))
    assert len(small) < len(big)


def request(camera: str = "gate", mono: float = 0.0) -> SnapshotRequest:
    return SnapshotRequest(camera, frame(320, 240), ((10.0, 10.0, 50.0, 50.0),), ("person",), Options(), mono)


def test_encoder_publishes_from_its_own_thread_and_keeps_the_latest() -> None:
    got: list[tuple[str, bytes, str]] = []
    done = threading.Event()

    def publish(camera: str, data: bytes) -> None:
        got.append((camera, data, threading.current_thread().name))
        done.set()

    metrics = Metrics()
    enc = SnapshotEncoder(publish, metrics=metrics)
    enc.start()
    try:
        assert enc.latest("gate") is None
        assert enc.submit(request())
        assert done.wait(5.0)
    finally:
        enc.stop()
    ((camera, data, thread),) = got
    assert (camera, thread) == ("gate", "edge-snapshots")
    assert enc.latest("gate") == data
    decode(data)
    assert metrics.registry.get_sample_value("edge_snapshots_total", {"camera": "gate"}) == 1.0
    assert metrics.registry.get_sample_value("edge_snapshot_latency_seconds_count", {"camera": "gate"}) == 1.0


def test_encoder_drops_the_oldest_when_behind_and_counts_it() -> None:
    release = threading.Event()
    started = threading.Event()

    def publish(camera: str, data: bytes) -> None:
        started.set()
        release.wait(5.0)  # a slow encoder: everything else waits in the queue

    metrics = Metrics()
    enc = SnapshotEncoder(publish, capacity=2, metrics=metrics)
    enc.start()
    try:
        enc.submit(request(mono=0.0))
        assert started.wait(5.0)  # the first is being "published" now
        for i in range(1, 5):
            assert enc.submit(request(mono=float(i)))  # never blocks the caller
        assert enc.pending == 2
        assert enc.dropped == 2
        assert [r.captured_mono for r in enc._queue] == [3.0, 4.0]  # the newest two survive
        assert (
            metrics.registry.get_sample_value(
                "edge_queue_dropped_total", {"queue": "snapshots", "reason": "behind"}
            )
            == 2.0
        )
    finally:
        release.set()
        enc.stop()
    assert enc.encoded == 3  # what was queued at stop is still encoded
    assert not enc.submit(request())
    assert (
        metrics.registry.get_sample_value(
            "edge_queue_dropped_total", {"queue": "snapshots", "reason": "stopped"}
        )
        == 1.0
    )


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SnapshotEncoder(capacity=0)


def test_the_jpeg_comment_names_the_events_and_stays_a_valid_jpeg() -> None:
    done = threading.Event()
    got: list[bytes] = []

    def publish(camera: str, data: bytes) -> None:
        got.append(data)
        done.set()

    enc = SnapshotEncoder(publish)
    enc.start()
    try:
        req = request()
        enc.submit(
            SnapshotRequest(req.camera, req.image, req.boxes, req.labels, req.options, 0.0, ("r-gate-7",))
        )
        assert done.wait(5.0)
    finally:
        enc.stop()
    assert jpeg_comment(got[0]) == "edge events: r-gate-7"
    assert decode(got[0]).shape == (240, 320, 3)
    assert jpeg_comment(render_snapshot(frame(), [OBJECT], ["x"], Options())) is None
