"""The pipeline's snapshot hook: a frame with events becomes one encoder request, only for cameras with
snapshots on."""

from __future__ import annotations

import numpy as np

from edge.events.model import LineCrossing
from edge.pipeline import Sink
from edge.sinks import FanOut, SnapshotSink
from edge.snapshots import Options, SnapshotEncoder


def crossing(seq: int, box: tuple[float, float, float, float], cls: str) -> LineCrossing:
    return LineCrossing(
        event_id=f"r-gate-{seq}", run_id="r", seq=seq, camera="gate", ts="2026-01-01T00:00:00.000Z",
        ts_ms=0, frame=1, track_id=seq, class_id=0, class_name=cls, confidence=0.9, bbox=box,
        anchor_xy=(0.0, 0.0), line="door", direction="in", label="in", counts={"in": 1, "out": 0},
        counts_all={"in": 1, "out": 0},
    )  # fmt: skip


def test_a_frame_with_events_is_one_request_with_every_box() -> None:
    encoder = SnapshotEncoder()  # not started: requests stay queued for inspection
    options = Options(mode="crop")
    sink = FanOut([Sink(), SnapshotSink(encoder, {"gate": options})])
    image = np.zeros((48, 64, 3), np.uint8)
    events = [crossing(1, (1.0, 2.0, 3.0, 4.0), "person"), crossing(2, (5.0, 6.0, 7.0, 8.0), "car")]
    sink.snapshot("gate", image, events, 12.5)
    sink.snapshot("yard", image, events, 13.0)  # snapshots off for that camera
    (request,) = list(encoder._queue)
    assert request.camera == "gate"
    assert request.image is image  # a reference: the pipeline thread copies nothing
    assert request.boxes == ((1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0))
    assert request.labels == ("person", "car")
    assert request.event_ids == ("r-gate-1", "r-gate-2")
    assert (request.options, request.captured_mono) == (options, 12.5)
