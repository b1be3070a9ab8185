"""CameraAnalytics: event identity and encoding, counters, reset, reload, eviction, metrics."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from prometheus_client import CollectorRegistry

from edge.events import (
    CameraAnalytics,
    LineCrossing,
    LineSpec,
    ZoneSpec,
    json_schema,
    parse_event,
)
from edge.events.model import Event, iso_ms
from edge.metrics import Metrics
from edge.types import Detections

LINE = LineSpec("door", (0.0, 100.0), (640.0, 100.0), min_frames=2)  # frames as given: a 2-frame hold
ZONE = ZoneSpec("hall", ((0.0, 110.0), (640.0, 110.0), (640.0, 400.0), (0.0, 400.0)), inertia=1)


def walker(track_id: int, y: float, class_id: int = 0) -> tuple[int, float, float, int]:
    return (track_id, 50.0 * track_id, y, class_id)


def frame(rows: list[tuple[int, float, float, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections.from_arrays(
        [[x - 10, y - 40, x + 10, y] for _t, x, y, _c in rows],
        [0.75] * len(rows),
        [c for *_r, c in rows],
        [t for t, *_r in rows],
    )


def cross_down(analytics: CameraAnalytics, track_ids: list[int], start: int = 0) -> list[Event]:
    events: list[Event] = []
    for n, y in enumerate((90.0, 120.0, 130.0)):
        rows = [walker(t, y) for t in track_ids]
        events += analytics.update(
            frame(rows), frame_no=start + n, ts_wall=1e9 + start + n, ts_mono=start + n
        )
    return events


def test_event_ids_unique_seq_increasing_and_json_round_trips() -> None:
    analytics = CameraAnalytics("cam-1", [LINE], [ZONE], run_id="run42", class_names=["person"])
    events = cross_down(analytics, [1, 2, 3])
    events += analytics.update(Detections.empty(), [1, 2, 3], frame_no=3, ts_wall=1e9 + 3, ts_mono=3)
    types = [e.type for e in events]
    assert types.count("line_crossing") == 3
    assert types.count("zone_enter") == 3
    assert types.count("zone_exit") == 3
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.run_id == "run42" and e.camera == "cam-1" for e in events)
    for e in events:
        raw = e.to_json()
        assert parse_event(raw) == e
        assert raw == parse_event(raw).to_json()  # stable bytes
        doc = json.loads(raw)
        assert next(iter(doc)) == "type"
        assert doc["schema_version"] == 1
        assert doc["ts"] == iso_ms(doc["ts_ms"] / 1000)


def test_iso_timestamps_have_milliseconds_and_z() -> None:
    assert iso_ms(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"
    assert iso_ms(1_700_000_000.9996) == "2023-11-14T22:13:21.000Z"


def test_counts_reset_and_restore() -> None:
    analytics = CameraAnalytics("cam", [LINE], [ZONE], run_id="r")
    cross_down(analytics, [1, 2])
    snapshot = analytics.counts()
    assert snapshot == {"lines": {"door": {"in": {0: 2}, "out": {}}}, "zones": {"hall": {"entries": {0: 2}}}}
    analytics.reset_line("door")
    assert analytics.counts()["lines"]["door"] == {"in": {}, "out": {}}
    assert analytics.counts()["zones"]["hall"]["entries"] == {0: 2}
    # Restore takes the JSON form (string class ids) and ignores names no longer configured.
    fresh = CameraAnalytics("cam", [LINE], [ZONE], run_id="r2")
    fresh.restore(
        json.loads(json.dumps({**snapshot, "lines": {**snapshot["lines"], "gone": {"in": {"0": 5}}}}))
    )
    assert fresh.counts() == snapshot
    (e,) = [e for e in cross_down(fresh, [7]) if isinstance(e, LineCrossing)]
    assert e.counts == {"in": 3, "out": 0}
    fresh.reset()
    assert fresh.counts() == {"lines": {"door": {"in": {}, "out": {}}}, "zones": {"hall": {"entries": {}}}}


def test_reconfigure_keeps_counts_of_names_that_persist() -> None:
    analytics = CameraAnalytics("cam", [LINE, replace(LINE, name="other")], [ZONE], run_id="r")
    cross_down(analytics, [1])
    moved = replace(LINE, a=(0.0, 200.0), b=(640.0, 200.0))  # same name, new geometry
    analytics.reconfigure([moved, LineSpec("new", (0.0, 50.0), (640.0, 50.0))], [])
    counts = analytics.counts()
    assert counts["lines"] == {"door": {"in": {0: 1}, "out": {}}, "new": {"in": {}, "out": {}}}
    assert counts["zones"] == {}
    # The changed line starts its tracks afresh: track 1 walking down across y=200 counts again.
    for n, y in enumerate((190.0, 210.0, 220.0)):
        analytics.update(frame([walker(1, y)]), frame_no=10 + n)
    assert analytics.counts()["lines"]["door"]["in"] == {0: 2}


def test_reconfigure_with_the_same_spec_keeps_track_state() -> None:
    analytics = CameraAnalytics("cam", [LINE], run_id="r")
    analytics.update(frame([walker(1, 90.0)]), frame_no=0)
    analytics.update(frame([walker(1, 110.0)]), frame_no=1)  # pending run started
    analytics.reconfigure([LINE], [])
    (e,) = analytics.update(frame([walker(1, 120.0)]), frame_no=2)
    assert isinstance(e, LineCrossing)
    assert e.direction == "in"


def test_evict_and_removed_ids_drop_state() -> None:
    analytics = CameraAnalytics("cam", [LINE], [ZONE], run_id="r")
    analytics.update(frame([walker(t, 90.0) for t in range(1, 6)]), frame_no=0)
    assert analytics.state_sizes() == {"line:door": 5, "zone:hall": 5}
    analytics.evict([1, 2])
    assert analytics.state_sizes() == {"line:door": 3, "zone:hall": 3}
    analytics.update(Detections.empty(), np.array([3, 4, 99], np.int64), frame_no=1)
    assert analytics.state_sizes() == {"line:door": 1, "zone:hall": 1}


def test_hard_bound_drops_least_recently_seen() -> None:
    analytics = CameraAnalytics("cam", [LINE], run_id="r", max_tracks=8)
    for n in range(100):  # a caller that never reports removals
        analytics.update(frame([walker(n, 90.0)]), frame_no=n)
    assert analytics.state_sizes() == {"line:door": 8}
    assert analytics.lines["door"].table.ids.tolist() == list(range(92, 100))


def test_metrics_exported() -> None:
    metrics = Metrics(CollectorRegistry())
    analytics = CameraAnalytics("cam", [LINE], [ZONE], run_id="r", class_names=["person"], metrics=metrics)
    cross_down(analytics, [1, 2])
    get = metrics.registry.get_sample_value
    labels = {"camera": "cam", "line": "door", "direction": "in", "class_name": "person"}
    assert get("edge_line_crossings_total", labels) == 2.0
    assert get("edge_zone_events_total", {"camera": "cam", "zone": "hall", "type": "zone_enter"}) == 2.0
    assert get("edge_zone_occupancy", {"camera": "cam", "zone": "hall", "class_name": "person"}) == 2.0


def test_schema_lists_every_event_type() -> None:
    schema = json_schema()
    names = {ref["$ref"].rsplit("/", 1)[-1] for ref in schema["oneOf"]}
    assert names == {"LineCrossing", "ZoneEnter", "ZoneExit", "ZoneLoitering"}


def test_occupancy_gauge_drops_to_zero_when_the_zone_empties() -> None:
    metrics = Metrics(CollectorRegistry())
    analytics = CameraAnalytics("cam", [], [ZONE], run_id="r", class_names=["person"], metrics=metrics)
    cross_down(analytics, [1])
    labels = {"camera": "cam", "zone": "hall", "class_name": "person"}
    assert metrics.registry.get_sample_value("edge_zone_occupancy", labels) == 1.0
    analytics.update(Detections.empty(), [1], frame_no=9)
    assert metrics.registry.get_sample_value("edge_zone_occupancy", labels) == 0.0


def test_specs_normalise_their_inputs() -> None:
    loose = LineSpec(
        "door", [0, 100], [640, 100], classes={0}, labels={"in": "enter"}, min_frames=2  # type: ignore[arg-type]
    )
    assert loose == replace(LINE, classes=frozenset({0}), labels={"in": "enter", "out": "out"})
    zone = ZoneSpec("hall", [[0, 110], [640, 110], [640, 400], [0, 400]], inertia=1)  # type: ignore[arg-type]
    assert zone == ZONE
