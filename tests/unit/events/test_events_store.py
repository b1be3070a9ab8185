"""Persistent counters: atomic writes, restart survival (a real second process), corrupt files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edge.clock import FakeClock
from edge.events import CameraAnalytics, CounterStore, LineSpec
from edge.types import Detections

# One process run: restore counters, walk ``n`` new tracks down across the line, save, print the counts.
CHILD = textwrap.dedent(
    """
    import json, sys
    from edge.events import CameraAnalytics, CounterStore, LineSpec, ZoneSpec
    from edge.types import Detections

    state_dir, first_id, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = CounterStore(state_dir)
    analytics = CameraAnalytics(
        "cam/1",
        [LineSpec("door", (0.0, 100.0), (640.0, 100.0), min_frames=2)],
        [ZoneSpec("hall", ((0.0, 110.0), (640.0, 110.0), (640.0, 400.0), (0.0, 400.0)), inertia=1)],
        run_id=f"run{first_id}",
    )
    analytics.restore(store.load("cam/1"))
    ids = list(range(first_id, first_id + n))
    for frame_no, y in enumerate((90.0, 120.0, 130.0)):
        dets = Detections.from_arrays(
            [[10.0 * t, y - 40, 10.0 * t + 20, y] for t in ids], [0.9] * n, [0] * n, ids
        )
        analytics.update(dets, frame_no=frame_no)
    store.save("cam/1", analytics.counts())
    print(json.dumps(analytics.counts()))
    """
)


def run_child(state_dir: Path, first_id: int, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(state_dir), str(first_id), str(n)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    counts: dict[str, Any] = json.loads(out.stdout)
    return counts


def test_counts_survive_a_process_restart(tmp_path: Path) -> None:
    first = run_child(tmp_path, 1, 3)
    assert first == {"lines": {"door": {"in": {"0": 3}, "out": {}}}, "zones": {"hall": {"entries": {"0": 3}}}}
    # Track ids restart at 1 in the new process; the counters continue from the saved ones.
    second = run_child(tmp_path, 1, 2)
    assert second == {
        "lines": {"door": {"in": {"0": 5}, "out": {}}},
        "zones": {"hall": {"entries": {"0": 5}}},
    }
    assert [p.name for p in tmp_path.iterdir()] == ["counts-cam_1.json"]  # no temporary file left over


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"version": 1, "camera": "cam", "counts": {"lines": {"door": {"in": {"0": -3}}}}}',
        b'{"version": 1, "camera": "cam", "counts": {"lines": {"door": {"in": {"x": 3}}}}}',
        b'{"version": 1, "camera": "cam", "counts": {"lines": []}}',
        b'{"version": 99, "counts": {}}',
        b"\xff\xfe\x00",
    ],
    ids=["empty", "truncated", "negative", "bad-class", "wrong-shape", "future-version", "binary"],
)
def test_corrupt_state_is_reported_and_moved_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = CounterStore(tmp_path)
    store.path("cam").write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="edge.events.store"):
        assert store.load("cam") == {}
    assert "unreadable" in caplog.text
    assert "moved it to" in caplog.text
    (aside,) = tmp_path.iterdir()
    assert aside.name.startswith("counts-cam.json.corrupt-")
    assert aside.read_bytes() == content
    # And the camera carries on: the next save writes a fresh file.
    analytics = CameraAnalytics("cam", [LineSpec("door", (0.0, 1.0), (1.0, 1.0))], run_id="r")
    assert store.save("cam", analytics.counts())
    assert CounterStore(tmp_path).load("cam") == {"lines": {"door": {"in": {}, "out": {}}}, "zones": {}}


def test_save_is_throttled_and_skips_unchanged(tmp_path: Path) -> None:
    clock = FakeClock()
    store = CounterStore(tmp_path / "state", min_interval_s=1.0, clock=clock.monotonic)
    counts = {"lines": {"door": {"in": {0: 1}, "out": {}}}, "zones": {}}
    assert store.maybe_save("cam", counts)  # creates the directory
    counts["lines"]["door"]["in"][0] = 2
    assert not store.maybe_save("cam", counts)  # too soon
    clock.advance(1.0)
    assert store.maybe_save("cam", counts)
    clock.advance(1.0)
    assert not store.maybe_save("cam", counts)  # unchanged: no write
    clock.advance(1.0)
    calls = []

    def snapshot() -> dict[str, Any]:
        calls.append(1)
        return counts

    assert not store.maybe_save("cam", snapshot)  # due, but unchanged
    assert not store.maybe_save("cam", snapshot)  # not due: the snapshot is not even taken
    assert len(calls) == 1
    assert store.save("cam", {"lines": {}, "zones": {}})  # explicit save (shutdown) ignores the throttle
    assert json.loads(store.path("cam").read_text())["counts"] == {"lines": {}, "zones": {}}


def test_missing_state_is_empty(tmp_path: Path) -> None:
    assert CounterStore(tmp_path / "nowhere").load("cam") == {}


def test_restore_ignores_empty_snapshot() -> None:
    analytics = CameraAnalytics("cam", [LineSpec("door", (0.0, 1.0), (1.0, 1.0))], run_id="r")
    analytics.restore({})
    analytics.update(Detections.empty())
    assert analytics.counts()["lines"]["door"] == {"in": {}, "out": {}}


def test_a_file_truncated_behind_our_back_is_rewritten_at_the_next_save(tmp_path: Path) -> None:
    store = CounterStore(tmp_path, clock=FakeClock().monotonic)
    counts = {"lines": {"door": {"in": {"0": 3}, "out": {}}}, "zones": {}}
    assert store.save("cam", counts) is True
    assert store.save("cam", counts) is False  # unchanged and intact: no fsync
    path = store.path("cam")
    path.write_bytes(path.read_bytes()[:10])  # truncated mid-run
    assert store.save("cam", counts) is True  # same counts, but the file on disk is not what we wrote
    assert CounterStore(tmp_path).load("cam") == counts
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_failing_save_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the state directory should be")
    store = CounterStore(blocker / "state", clock=FakeClock().monotonic)
    with caplog.at_level(logging.WARNING, logger="edge.events.store"):
        for n in range(5):
            assert store.save("cam", {"lines": {"door": {"in": {"0": n}, "out": {}}}}) is False
        assert len(caplog.records) == 1
        assert str(blocker / "state") in caplog.records[0].getMessage()
        blocker.unlink()
        assert store.save("cam", {"lines": {}}) is True
        assert len(caplog.records) == 2
        assert "again" in caplog.records[1].getMessage()
