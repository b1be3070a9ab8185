"""Where a :class:`~edge.pipeline.CameraPipeline` sends its output: MQTT, stdout, JSONL, the tracks bus.

Each sink overrides only the :class:`~edge.pipeline.Sink` methods it cares about and runs on the pipeline's
thread, so none may block: the publisher writes to its outbox, the bus drops when its peer is slow, the
printers write to a local stream.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from edge.pipeline import Sink
from edge.snapshots import SnapshotRequest

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import numpy as np
    import numpy.typing as npt

    from edge.bus import TracksBus
    from edge.events import Event
    from edge.payloads import LineState, ZoneState
    from edge.publisher import Publisher
    from edge.snapshots import SnapshotEncoder, SnapshotOptions
    from edge.types import Detections


class FanOut(Sink):
    """Hands everything to each of ``sinks`` in order."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)

    def tracks(self, camera: str, frame_no: int, ts_wall: float, tracked: Detections) -> None:
        for s in self.sinks:
            s.tracks(camera, frame_no, ts_wall, tracked)

    def event(self, event: Event) -> None:
        for s in self.sinks:
            s.event(event)

    def line_state(self, camera: str, line: str, state: LineState) -> None:
        for s in self.sinks:
            s.line_state(camera, line, state)

    def zone_state(self, camera: str, zone: str, state: ZoneState) -> None:
        for s in self.sinks:
            s.zone_state(camera, zone, state)

    def snapshot(
        self, camera: str, image: npt.NDArray[np.uint8], events: Sequence[Event], ts_mono: float
    ) -> None:
        for s in self.sinks:
            s.snapshot(camera, image, events, ts_mono)


class PublisherSink(Sink):
    """Events into the MQTT outbox (durable), line and zone states as retained messages."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def event(self, event: Event) -> None:
        self.publisher.publish_event(event.camera, event.type, event.to_json())

    def line_state(self, camera: str, line: str, state: LineState) -> None:
        self.publisher.set_line_state(camera, line, state)

    def zone_state(self, camera: str, zone: str, state: ZoneState) -> None:
        self.publisher.set_zone_state(camera, zone, state)


class SnapshotSink(Sink):
    """Frames with events to the snapshot encoder's thread (it never blocks: when behind, it drops and
    counts). ``options``: per camera name, how its snapshots look; cameras not in it get none."""

    def __init__(self, encoder: SnapshotEncoder, options: Mapping[str, SnapshotOptions]) -> None:
        self.encoder = encoder
        self.options = options

    def snapshot(
        self, camera: str, image: npt.NDArray[np.uint8], events: Sequence[Event], ts_mono: float
    ) -> None:
        options = self.options.get(camera)
        if options is None:
            return
        boxes = tuple(ev.bbox for ev in events)
        labels = tuple(ev.class_name for ev in events)
        ids = tuple(ev.event_id for ev in events)
        self.encoder.submit(SnapshotRequest(camera, image, boxes, labels, options, ts_mono, ids))


class BusSink(Sink):
    """Every frame's tracks onto the ZeroMQ tracks bus (it drops, and counts, when a subscriber lags)."""

    def __init__(self, bus: TracksBus) -> None:
        self.bus = bus

    def tracks(self, camera: str, frame_no: int, ts_wall: float, tracked: Detections) -> None:
        self.bus.publish(camera, frame_no, ts_wall, tracked)


class JsonlSink(Sink):
    """Each event as one line of JSON, the exact bytes the daemon publishes (``edge replay``)."""

    def __init__(self, out: IO[bytes] | None) -> None:
        self.out = out
        self.count = 0

    def event(self, event: Event) -> None:
        self.count += 1
        if self.out is not None:
            self.out.write(event.to_json() + b"\n")


class PrintSink(Sink):
    """One human-readable line per event (``edge run --print-events``, the demo)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def event(self, event: Event) -> None:
        print(format_event(event), file=self.out, flush=True)


def format_event(ev: Event) -> str:
    """``ts camera type line-or-zone track class details`` in fixed-width columns."""
    if ev.type == "line_crossing":
        where = ev.line
        extra = f"{ev.direction}({ev.label}) total in={ev.counts_all['in']} out={ev.counts_all['out']}"
    else:
        where = ev.zone
        extra = f"occupancy={ev.occupancy_all} dwell={ev.dwell_s:.1f}s"
    who = f"track={ev.track_id:<5} {ev.class_name:<8}"
    return f"{ev.ts} {ev.camera:<12} {ev.type:<15} {where:<12} {who} {extra}"
