"""CameraPipeline driven directly with synthetic detections: events, states handed to the sink, counts
persisted, reset and reload, the debug-view snapshot; and the daemon's pipeline thread around it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.config import TrackerConfig
from edge.events import LineSpec, ZoneSpec
from edge.events.lines import OUT
from edge.events.store import CounterStore
from edge.metrics import Metrics
from edge.pipeline import CameraPipeline, LineState, Sink, ZoneState
from edge.runner import PipelineRunner
from edge.types import Detections, Frame

pytestmark = pytest.mark.timing  # wall-clock bounds: run alone (see pyproject.toml)

NAMES = ["person", "car"]
LINE = LineSpec(name="door", a=(100.0, 0.0), b=(100.0, 200.0), labels={"in": "enter", "out": "leave"})
ZONE = ZoneSpec(name="hall", polygon=((120.0, 0.0), (200.0, 0.0), (200.0, 200.0), (120.0, 200.0)), inertia=1)


class Recorder(Sink):
    """Everything a pipeline hands on, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []

    def tracks(self, camera: str, frame_no: int, ts_wall: float, tracked: Detections) -> None:
        self.items.append(("tracks", frame_no))

    def event(self, event: object) -> None:
        self.items.append(("event", event))

    def line_state(self, camera: str, line: str, state: LineState) -> None:
        self.items.append(("line", (line, state)))

    def zone_state(self, camera: str, zone: str, state: ZoneState) -> None:
        self.items.append(("zone", (zone, state)))

    def of(self, kind: str) -> list[object]:
        return [v for k, v in self.items if k == kind]


def box_at(x: float, cls: int = 0) -> Detections:
    """One confident box whose bottom centre is at (x, 100)."""
    return Detections(
        xyxy=np.array([[x - 10, 60, x + 10, 100]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([cls], np.int32),
        track_id=np.full(1, -1, np.int64),
    )


def pipeline(
    sink: Sink, *, store: CounterStore | None = None, lines: list[LineSpec] | None = None
) -> CameraPipeline:
    specs = ([LINE] if lines is None else lines, [ZONE])
    return CameraPipeline(
        "cam",
        lambda _w, _h: specs,
        tracker=TrackerConfig(),
        class_names=NAMES,
        run_id="run1",
        sink=sink,
        store=store,
        frame_rate=10.0,
        trails=None,
    )


def walk(p: CameraPipeline, xs: list[float], start: int = 1) -> list[object]:
    events: list[object] = []
    for i, x in enumerate(xs):
        n = start + i
        res = p.step(box_at(x), frame_no=n, ts_wall=1000.0 + n / 10, ts_mono=n / 10, size=(200, 200))
        events.extend(res.events)
    return events


RIGHT = [60.0 + 4 * i for i in range(30)]  # x from 60 to 176: crosses the line, enters the zone


def test_a_crossing_and_a_zone_entry_reach_the_sink_with_their_states() -> None:
    rec = Recorder()
    p = pipeline(rec)
    events = walk(p, RIGHT)
    types = [e.type for e in events]  # type: ignore[attr-defined]
    assert types == ["line_crossing", "zone_enter"]
    assert rec.of("event") == events
    # The first frame announces every line (retained state), then the crossing changes it.
    lines = rec.of("line")
    assert lines[0] == ("door", {"in": {"total": 0}, "out": {"total": 0}})
    # A -> B points down the screen, so its right-hand ("in") side is the left: walking right is "out".
    assert lines[-1] == ("door", {"in": {"total": 0}, "out": {"person": 1, "total": 1}})
    assert rec.of("zone")[-1] == ("hall", {"occupancy": {"person": 1, "total": 1}})
    assert len(rec.of("tracks")) == len(RIGHT)


def test_zone_state_is_sent_only_when_it_changes() -> None:
    rec = Recorder()
    p = pipeline(rec)
    walk(p, RIGHT + [176.0] * 20)
    zone_states = rec.of("zone")
    assert zone_states[0] == ("hall", {"occupancy": {"total": 0}})
    assert zone_states[1:] == [("hall", {"occupancy": {"person": 1, "total": 1}})]


def test_counts_are_persisted_and_restored(tmp_path: Path) -> None:
    store = CounterStore(tmp_path, min_interval_s=0.0)
    p = pipeline(Recorder(), store=store)
    walk(p, RIGHT)
    p.close()
    again = pipeline(Recorder(), store=CounterStore(tmp_path))
    analytics = again.prepare((200, 200))
    assert analytics.lines["door"].total(OUT) == 1


def test_reset_zeroes_saves_and_publishes(tmp_path: Path) -> None:
    rec = Recorder()
    store = CounterStore(tmp_path, min_interval_s=3600.0)
    p = pipeline(rec, store=store)
    walk(p, RIGHT)
    assert p.reset_line("door")
    assert rec.of("line")[-1] == ("door", {"in": {"total": 0}, "out": {"total": 0}})
    assert CounterStore(tmp_path).load("cam")["lines"]["door"] == {"in": {}, "out": {}}
    assert not p.reset_line("nope")


def test_reconfigure_keeps_counts_of_lines_that_stay_and_republishes() -> None:
    rec = Recorder()
    p = pipeline(rec)
    walk(p, RIGHT)
    moved = LineSpec(name="door", a=(90.0, 0.0), b=(90.0, 200.0))
    extra = LineSpec(name="back", a=(0.0, 150.0), b=(200.0, 150.0))
    p.reconfigure(lambda _w, _h: ([moved, extra], [ZONE]))
    published = dict(v for v in rec.of("line")[-2:])  # type: ignore[misc]
    assert published["door"]["out"]["total"] == 1
    assert published["back"] == {"in": {"total": 0}, "out": {"total": 0}}


def test_view_snapshot_only_while_requested() -> None:
    p = CameraPipeline(
        "cam", lambda _w, _h: ([LINE], [ZONE]), tracker=TrackerConfig(), class_names=NAMES, run_id="r"
    )
    image = np.zeros((200, 200, 3), np.uint8)
    p.step(box_at(50), frame_no=1, ts_wall=0.0, ts_mono=0.1, size=(200, 200), image=image)
    assert p.view() is None
    p.request_view(0.1)
    p.step(box_at(54), frame_no=2, ts_wall=0.0, ts_mono=0.2, size=(200, 200), image=image)
    snap = p.view()
    assert snap is not None
    assert snap.state.frame_no == 2
    assert snap.image is image
    p.step(box_at(58), frame_no=3, ts_wall=0.0, ts_mono=10.0, size=(200, 200), image=image)
    assert p.view() is snap  # hold expired: no new copy
    assert snap.scene.render_jpeg(snap.image, snap.tracked, snap.state, snap.trails)[:2] == b"\xff\xd8"


def _frame(seq: int) -> Frame:
    return Frame(np.zeros((200, 200, 3), np.uint8), "cam", seq, seq / 10, 1000.0 + seq / 10)


def test_runner_processes_in_order_runs_commands_on_its_thread_and_drains_on_stop() -> None:
    rec = Recorder()
    p = pipeline(rec)
    runner = PipelineRunner({"cam": p}, capacity=4, metrics=Metrics())
    ran_on: list[str] = []
    runner.start()
    for i, x in enumerate(RIGHT):
        runner.deliver(_frame(i + 1), box_at(x))
    runner.call(lambda: ran_on.append(threading.current_thread().name))
    assert runner.stop(10.0)
    assert runner.frames_done == len(RIGHT)
    assert [n for k, n in rec.items if k == "tracks"] == list(range(1, len(RIGHT) + 1))
    assert ran_on == ["edge-pipeline"]


def test_runner_never_started_still_saves_counters_and_counts_drops(tmp_path: Path) -> None:
    store = CounterStore(tmp_path)
    p = pipeline(Recorder(), store=store)
    p.prepare((200, 200))
    metrics = Metrics()
    runner = PipelineRunner({"cam": p}, capacity=1, metrics=metrics, put_timeout_s=0.01)
    assert runner.stop(1.0)
    assert store.path("cam").exists()
    runner.deliver(_frame(1), box_at(50))  # fills the queue
    t0 = time.monotonic()
    runner.deliver(_frame(2), box_at(50))  # full and nobody consumes: dropped, counted, not stuck
    assert time.monotonic() - t0 < 1.0
    dropped = metrics.registry.get_sample_value(
        "edge_queue_dropped_total", {"queue": "pipeline", "reason": "stopped"}
    )
    assert dropped == 1.0


def test_a_crash_on_the_pipeline_thread_is_kept_and_reported() -> None:
    stopped = threading.Event()
    p = pipeline(Recorder())
    runner = PipelineRunner({"cam": p}, on_failure=stopped.set)
    runner.start()
    bad = Frame(np.zeros((2, 2, 3), np.uint8), "unknown-camera", 1, 0.0, 0.0)
    runner.deliver(bad, box_at(50))
    assert stopped.wait(5.0)
    assert isinstance(runner.failure, KeyError)
    runner.stop(1.0)


@pytest.mark.parametrize("line_classes", [None, frozenset({1})])
def test_class_filter_of_a_line_is_honoured(line_classes: frozenset[int] | None) -> None:
    line = LineSpec(name="door", a=(100.0, 0.0), b=(100.0, 200.0), classes=line_classes)
    p = pipeline(Recorder(), lines=[line])
    crossings = [e for e in walk(p, RIGHT) if e.type == "line_crossing"]  # type: ignore[attr-defined]
    assert len(crossings) == (1 if line_classes is None else 0)
