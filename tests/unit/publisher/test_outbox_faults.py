"""The outbox under trouble: counters atomic with events, a real full disk, corrupt and unwritable files."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
from typing import TYPE_CHECKING

import pytest
from helpers.disk import small_tmpfs
from prometheus_client import CollectorRegistry

from edge.clock import FakeClock
from edge.errors import EdgeError
from edge.metrics import Metrics
from edge.outbox import Outbox
from edge.state import StateDirError, check_state_dir

if TYPE_CHECKING:
    from pathlib import Path

COUNTS_1 = {"lines": {"door": {"in": {"0": 1}, "out": {}}}, "zones": {}}
COUNTS_2 = {"lines": {"door": {"in": {"0": 2}, "out": {}}}, "zones": {}}


def _gauge(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_counts_are_stored_with_their_events_and_restored(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", clock=FakeClock())
    assert box.load_counts("cam") is None
    ids = box.put_events("cam", [("t/a", b"1"), ("t/b", b"2")], COUNTS_1)
    assert ids == sorted(ids)
    assert box.load_counts("cam") == COUNTS_1
    box.save_counts("cam", COUNTS_2)  # a reset: counts change without an event
    box.close()
    again = Outbox(tmp_path / "o.db", clock=FakeClock())
    assert again.load_counts("cam") == COUNTS_2
    assert [r.payload for r in again] == [b"1", b"2"]
    assert again.load_counts("other") is None
    again.close()


def test_events_and_counts_commit_together_or_not_at_all(tmp_path: Path) -> None:
    """A transaction that fails half-way leaves neither the event nor the counts (same transaction)."""
    box = Outbox(tmp_path / "o.db", clock=FakeClock())
    box.put_events("cam", [("t", b"first")], COUNTS_1)
    # A second connection holds the write lock: the next put cannot commit. With a zero busy timeout this
    # is the same code path as a crash between the INSERT and the counts update.
    other = sqlite3.connect(tmp_path / "o.db", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    box._db.execute("PRAGMA busy_timeout=0")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        box.put_events("cam", [("t", b"second")], COUNTS_2)
    other.execute("ROLLBACK")
    other.close()
    box.close()
    again = Outbox(tmp_path / "o.db", clock=FakeClock())
    assert [r.payload for r in again] == [b"first"]
    assert again.load_counts("cam") == COUNTS_1
    again.close()


def test_full_disk_degrades_holds_events_acks_work_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(CollectorRegistry())
    clock = FakeClock()
    with small_tmpfs(tmp_path / "fs", "256k") as fs:
        box = Outbox(
            fs / "outbox.db", metrics=metrics, clock=clock, retry_interval_s=0.0, memory_max_events=50
        )
        payload = b"x" * 2000
        ids: list[int] = []
        with caplog.at_level(logging.WARNING, logger="edge.outbox"):
            for i in range(400):
                ids += box.put_events("cam", [("t", payload + str(i).encode())], {"n": i})
            assert box.degraded
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1, [r.getMessage() for r in errors]  # one line, not one per event
            assert "disk full" in errors[0].getMessage()
            assert "outbox.db" in errors[0].getMessage()
        assert _gauge(metrics, "edge_outbox_degraded") == 1.0
        assert box.problems()
        assert "not writable" in box.problems()[0]
        # Memory is bounded by memory_max_events; what fell out is counted.
        assert _gauge(metrics, "edge_outbox_dropped_total", {"reason": "memory_full"}) > 0
        rows = list(box)
        assert [r.id for r in rows] == sorted(r.id for r in rows)
        assert box.depth == len(rows)
        assert box.load_counts("cam") == {"n": 399}
        # Acknowledgements work on the full disk, for rows on disk and rows held in memory alike.
        first, last = rows[0], rows[-1]
        assert box.ack(first.id) is True
        assert box.ack(last.id) is True
        assert box.ack(first.id) is False
        left = [r.id for r in box]
        assert first.id not in left
        assert last.id not in left
        assert box.depth == len(rows) - 2
        box.checkpoint()  # must not raise on a full disk (it crashed the MQTT thread before)
        # Space returns: the held events go to disk in order with the next put.
        subprocess.run(["mount", "-o", "remount,size=8m", str(fs)], check=True)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="edge.outbox"):
            box.put_events("cam", [("t", b"after")], {"n": 400})
        assert not box.degraded
        assert any("writable again" in r.getMessage() for r in caplog.records)
        assert _gauge(metrics, "edge_outbox_degraded") == 0.0
        expected = [*left, ids[-1] + 1]
        box.close()
        again = Outbox(fs / "outbox.db", clock=clock)
        assert [r.id for r in again] == expected
        assert again.load_counts("cam") == {"n": 400}
        again.close()


def test_garbage_outbox_is_moved_aside_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        box = Outbox(path, clock=FakeClock())
    assert len(caplog.records) == 1
    assert str(path) in caplog.records[0].getMessage()
    aside = list(tmp_path.glob("outbox.db.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")
    box.put("t", b"x", "cam")
    assert box.depth == 1
    box.close()


def test_truncated_outbox_is_moved_aside_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, clock=FakeClock())
    for i in range(300):
        box.put("t", b"y" * 500 + str(i).encode(), "cam")
    box.checkpoint()
    box.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (tmp_path / f"outbox.db{suffix}").unlink()
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        again = Outbox(path, clock=FakeClock())
    assert [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert again.depth == 0
    again.put("t", b"z", "cam")
    again.close()


def test_outbox_truncated_while_running_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, clock=FakeClock())
    for i in range(300):
        box.put("t", b"y" * 500 + str(i).encode(), "cam")
    box.checkpoint()
    with path.open("r+b") as f:
        f.truncate(4096 * 3)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        box.put("t", b"new", "cam")
        box.checkpoint()  # the sender checkpoints every second: that is where a torn file shows
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "corrupt" in lines[0]
    assert str(path) in lines[0]
    assert "301 readable events carried over" in lines[0]
    assert [r.payload for r in box][-1] == b"new"
    assert box.depth == 301
    box.close()
    again = Outbox(path, clock=FakeClock())
    assert [r.payload for r in again][-1] == b"new"
    again.close()


def test_unwritable_state_dir_is_a_one_line_error_with_exit_73(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateDirError) as info:
        check_state_dir(blocker / "state")
    assert isinstance(info.value, EdgeError)
    assert info.value.exit_code == 73
    assert str(blocker / "state") in str(info.value)
    assert "\n" not in str(info.value)
    check_state_dir(tmp_path / "fine" / "state")  # creates it
    assert (tmp_path / "fine" / "state").is_dir()
    assert not list((tmp_path / "fine" / "state").iterdir())


def test_read_only_state_dir_fails_at_start(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "ro", "1m") as fs:
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        with pytest.raises(StateDirError, match=str(fs)):
            check_state_dir(fs)
        with pytest.raises(StateDirError, match=str(fs)):
            Outbox(fs / "outbox.db")


def test_a_batch_commits_once_at_its_end_and_then_wakes_the_sender(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", clock=FakeClock())
    woken: list[int] = []
    box.on_commit = lambda: woken.append(box.depth)
    with box.batch("cam", lambda: COUNTS_1):
        first = box.put("t", b"a", "cam")
        second = box.put("t", b"b", "cam")
        assert box.pending() == []  # nothing readable before the transaction
        assert woken == []
    assert [r.id for r in box.pending()] == [first, second]
    assert woken == [2]
    assert box.load_counts("cam") == COUNTS_1
    with box.batch("cam", lambda: COUNTS_2):
        pass  # no events: counts still saved, nobody woken
    assert woken == [2]
    assert box.load_counts("cam") == COUNTS_2
    box.close()
