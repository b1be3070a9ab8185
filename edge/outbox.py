"""Durable event outbox: every event is written here before it is published, and removed on PUBACK.

The outbox is one SQLite database in WAL mode in the state directory. The publisher appends each event
(:meth:`Outbox.put`), sends pending rows in row-id order (:meth:`Outbox.pending`), and deletes a row only
when the broker acknowledged it (:meth:`Outbox.ack`). A crash or restart therefore loses nothing that was
put: the next process replays the remaining rows in the original order.

Bounds (principle 5): at most ``max_events`` rows and none older than ``max_age_s``. When a bound is hit the
*oldest* rows are dropped, because the newest events describe the present and consumers detect the gap from
the per-camera ``seq``. Every dropped row is counted in ``edge_outbox_dropped_total{reason}`` and an overflow
episode is logged once when it starts and once when it ends.

Thread safety: :meth:`put` runs on the asyncio loop thread and :meth:`ack` on the MQTT network thread, so
one connection is shared under a lock; every statement is a short indexed operation (tens of microseconds),
which is why calling :meth:`put` from the event loop is acceptable.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from edge.metrics import Metrics

log = logging.getLogger(__name__)

Synchronous = Literal["OFF", "NORMAL", "FULL"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    camera TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One pending event. ``id`` increases with insertion order and is never reused."""

    id: int
    created: float
    camera: str
    topic: str
    payload: bytes


class Outbox:
    """A bounded, durable FIFO of events waiting for a broker acknowledgement.

    Args:
        path: SQLite file (created with its directory if missing). Put it in the state directory.
        max_events: most rows kept. Raising it survives longer outages (at 200 events/s, 100 000 rows is
            about 8 minutes of traffic and ~50 MB of disk for 500-byte events); lowering it bounds disk use
            and the replay burst after a reconnect.
        max_age_s: rows older than this (wall clock at :meth:`put`) are dropped. Events delivered a week late
            are rarely useful; raise it if consumers reconcile history.
        metrics: ``edge_outbox_depth`` and ``edge_outbox_dropped_total`` are kept here when given.
        clock: wall time for row ages (wall, not monotonic, because ages must survive a restart).
        synchronous: SQLite ``PRAGMA synchronous``. ``NORMAL`` (default) survives a process crash or SIGKILL
            without an fsync per event; ``FULL`` also survives power loss at the price of one fsync per
            :meth:`put` (milliseconds on SD cards, on the event loop).
        age_check_interval_s: how often (monotonic seconds) :meth:`put` purges expired rows. Purging scans
            from the oldest row, so doing it per event would be wasted work.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_events: int = 100_000,
        max_age_s: float = 7 * 86400,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        synchronous: Synchronous = "NORMAL",
        age_check_interval_s: float = 5.0,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if synchronous not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        self.path = path
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._metrics = metrics
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._age_check_interval_s = age_check_interval_s
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each put/ack is its own short transaction and nothing is left
        # half-committed if the process dies between statements.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        count, last = self._db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM outbox").fetchone()
        self._depth = int(count)
        self._last_id = int(last)
        self._overflowing = False
        self._episode_dropped = 0
        self._next_age_check = float("-inf")
        self._closed = False
        self._ckpt_lock = threading.Lock()
        self._ckpt_db: sqlite3.Connection | None = None
        self._set_depth_metric()
        if self._depth:
            log.info("outbox %s holds %d events from a previous run; replaying them", path, self._depth)

    @property
    def depth(self) -> int:
        """Rows waiting for an acknowledgement."""
        return self._depth

    @property
    def last_id(self) -> int:
        """Row id of the newest event put (0 if none); lets a sender skip a query when it is caught up."""
        return self._last_id

    def put(self, topic: str, payload: bytes, camera: str) -> int:
        """Append one event and return its row id; drops the oldest rows if a bound is exceeded."""
        now = self._clock.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox (created, camera, topic, payload) VALUES (?, ?, ?, ?)",
                (now, camera, topic, payload),
            )
            row_id = cur.lastrowid
            assert row_id is not None
            self._last_id = row_id
            self._depth += 1
            dropped = 0
            reason = "age"
            if self._depth > self.max_events:
                dropped = self._drop_oldest_locked(self._depth - self.max_events)
                self._count_drops(dropped, "count")
                reason = "count"
            mono = self._clock.monotonic()
            if mono >= self._next_age_check:
                self._next_age_check = mono + self._age_check_interval_s
                dropped += self._purge_expired_locked(now)
            self._update_episode(dropped, reason)
            self._set_depth_metric()
        return row_id

    def pending(self, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``id > after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created, camera, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(int(r[0]), float(r[1]), str(r[2]), str(r[3]), bytes(r[4])) for r in rows]

    def __iter__(self) -> Iterator[OutboxRow]:
        """Iterate over all pending rows in order, reading in batches (rows acked meanwhile are skipped)."""
        after = 0
        while True:
            batch = self.pending(after, 500)
            if not batch:
                return
            yield from batch
            after = batch[-1].id

    def ack(self, row_id: int) -> bool:
        """Remove an acknowledged row; returns False if it was already gone (dropped or acked twice)."""
        with self._lock:
            if self._closed:
                return False
            cur = self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            removed = cur.rowcount > 0
            if removed:
                self._depth -= 1
                if self._overflowing and self._depth < self.max_events:
                    self._end_episode()
                self._set_depth_metric()
        return removed

    def purge_expired(self) -> int:
        """Drop rows older than ``max_age_s`` now; returns how many were dropped."""
        with self._lock:
            dropped = self._purge_expired_locked(self._clock.time())
            self._update_episode(dropped, "age")
            self._set_depth_metric()
        return dropped

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database file (SQLite's PASSIVE checkpoint) on a connection of its own.

        SQLite otherwise checkpoints inside whichever commit pushes the WAL past 1000 pages, which stalls
        that :meth:`put` (and the event loop) for milliseconds. A sender thread calling this about once a
        second keeps the WAL small so that never happens; a passive checkpoint does not block writers.
        Returns SQLite's ``(frames in the WAL, frames checkpointed)``.
        """
        with self._ckpt_lock:
            if self._closed:
                return (0, 0)
            if self._ckpt_db is None:
                self._ckpt_db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            _busy, log_frames, done = self._ckpt_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return int(log_frames), int(done)

    def close(self) -> None:
        with self._lock, self._ckpt_lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                if self._ckpt_db is not None:
                    self._ckpt_db.close()

    # -- internals (caller holds self._lock) ------------------------------------------------------------

    def _drop_oldest_locked(self, n: int) -> int:
        cur = self._db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (n,)
        )
        self._depth -= cur.rowcount
        return cur.rowcount

    def _purge_expired_locked(self, now: float) -> int:
        # The index on ``created`` keeps this a range delete instead of a table scan.
        cur = self._db.execute("DELETE FROM outbox WHERE created < ?", (now - self.max_age_s,))
        if cur.rowcount:
            self._depth -= cur.rowcount
            self._count_drops(cur.rowcount, "age")
        return cur.rowcount

    def _count_drops(self, n: int, reason: str) -> None:
        if n and self._metrics is not None:
            self._metrics.outbox_dropped.labels(reason=reason).inc(n)

    def _update_episode(self, dropped: int, reason: str) -> None:
        if dropped:
            self._episode_dropped += dropped
            if not self._overflowing:
                self._overflowing = True
                log.warning(
                    "outbox %s bound hit (max_events=%d, max_age_s=%s): dropping the oldest events; "
                    "counted in edge_outbox_dropped_total",
                    reason,
                    self.max_events,
                    self.max_age_s,
                )
        elif self._overflowing and self._depth < self.max_events:
            self._end_episode()

    def _end_episode(self) -> None:
        log.warning("outbox within its bounds again; %d events were dropped meanwhile", self._episode_dropped)
        self._overflowing = False
        self._episode_dropped = 0

    def _set_depth_metric(self) -> None:
        if self._metrics is not None:
            self._metrics.outbox_depth.set(self._depth)
