"""The durable outbox: order, acknowledgement, persistence across reopen, count and age bounds."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from edge.clock import FakeClock
from edge.metrics import Metrics
from edge.outbox import Outbox

if TYPE_CHECKING:
    from pathlib import Path


def dropped(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("edge_outbox_dropped_total", {"reason": reason})
    return 0.0 if value is None else value


def depth_gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("edge_outbox_depth")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_put_then_pending_in_order_and_ack_removes(tmp_path: Path, metrics: Metrics) -> None:
    box = Outbox(tmp_path / "o.db", metrics=metrics, clock=FakeClock())
    ids = [box.put(f"t/{i}", f"p{i}".encode(), "cam") for i in range(5)]
    assert ids == sorted(ids)
    assert box.depth == 5
    assert depth_gauge(metrics) == 5
    assert [r.payload for r in box.pending()] == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    assert [r.topic for r in box.pending(after_id=ids[2])] == ["t/3", "t/4"]
    assert len(box.pending(limit=2)) == 2
    assert box.ack(ids[1]) is True
    assert box.ack(ids[1]) is False  # a second PUBACK for the same row changes nothing
    assert [r.id for r in box] == [ids[0], ids[2], ids[3], ids[4]]
    assert box.depth == 4
    assert depth_gauge(metrics) == 4
    assert box.last_id == ids[-1]
    box.close()


def test_rows_survive_reopen_and_ids_are_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.db"
    box = Outbox(path, clock=FakeClock())
    first = [box.put("t", bytes([i]), "cam") for i in range(3)]
    box.ack(first[2])
    box.close()
    again = Outbox(path, clock=FakeClock())
    assert again.depth == 2
    assert [r.payload for r in again] == [b"\x00", b"\x01"]
    # AUTOINCREMENT: an id acked before the restart is never handed out again, so order stays global.
    assert again.put("t", b"new", "cam") > first[2]
    again.close()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("t", b"x", "cam")
    with contextlib.closing(sqlite3.connect(tmp_path / "o.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    box.close()


def test_count_bound_keeps_newest_and_counts_drops(tmp_path: Path, metrics: Metrics) -> None:
    box = Outbox(tmp_path / "o.db", max_events=1000, metrics=metrics, clock=FakeClock())
    for i in range(1500):
        box.put("t", str(i).encode(), "cam")
    assert box.depth == 1000
    rows = list(box)
    assert len(rows) == 1000
    assert [int(r.payload) for r in rows] == list(range(500, 1500))
    assert dropped(metrics, "count") == 500
    assert depth_gauge(metrics) == 1000
    box.close()


def test_overflow_is_logged_once_per_episode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(tmp_path / "o.db", max_events=10, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        for i in range(50):
            box.put("t", str(i).encode(), "cam")
        assert len(caplog.records) == 1
        assert "dropping the oldest" in caplog.records[0].getMessage()
        first = next(iter(box))
        box.ack(first.id)  # below the bound again: the episode ends with one summary line
        assert len(caplog.records) == 2
        assert "40 events were dropped" in caplog.records[1].getMessage()
        for i in range(20):
            box.put("t", str(i).encode(), "cam")
        assert len(caplog.records) == 3  # a new episode, one new line
    box.close()


def test_age_bound_drops_expired_rows(tmp_path: Path, metrics: Metrics) -> None:
    clock = FakeClock()
    box = Outbox(tmp_path / "o.db", max_age_s=60.0, metrics=metrics, clock=clock, age_check_interval_s=0.0)
    for _ in range(3):
        box.put("t", b"old", "cam")
    clock.advance(61.0)
    box.put("t", b"new", "cam")
    assert [r.payload for r in box] == [b"new"]
    assert dropped(metrics, "age") == 3
    clock.advance(61.0)
    assert box.purge_expired() == 1
    assert box.depth == 0
    box.close()


def test_age_is_wall_clock_and_survives_restart(tmp_path: Path, metrics: Metrics) -> None:
    clock = FakeClock()
    box = Outbox(tmp_path / "o.db", max_age_s=60.0, clock=clock)
    box.put("t", b"old", "cam")
    box.close()
    clock.advance(120.0)
    again = Outbox(tmp_path / "o.db", max_age_s=60.0, metrics=metrics, clock=clock)
    assert again.purge_expired() == 1
    assert dropped(metrics, "age") == 1
    again.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_events": 0}, "max_events"),
        ({"max_age_s": 0.0}, "max_age_s"),
        ({"synchronous": "SOMETIMES"}, "synchronous"),
    ],
)
def test_invalid_bounds_are_rejected(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(tmp_path / "o.db", **kwargs)  # type: ignore[arg-type]


def test_checkpoint_copies_the_whole_wal_without_losing_rows(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    for i in range(200):
        box.put("t", str(i).encode(), "cam")
    log_frames, done = box.checkpoint()
    assert log_frames > 0
    assert done == log_frames
    assert box.depth == 200
    assert int(next(iter(box)).payload) == 0
    box.close()
    assert box.checkpoint() == (0, 0)


def test_ack_after_close_is_harmless(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    row = box.put("t", b"x", "cam")
    box.close()
    assert box.ack(row) is False
