"""Durable event outbox: every event is written here before it is published, and removed on PUBACK.

One SQLite database in WAL mode in the state directory. The publisher appends each event (:meth:`Outbox.put`),
sends pending rows in row-id order (:meth:`Outbox.pending`) and deletes a row only when the broker
acknowledged it (:meth:`Outbox.ack`): a crash loses nothing put; the next run replays the rest in order.

Counters live in the same database (table ``counters``, one JSON snapshot per camera), written in the *same
transaction* as the events that changed them (:meth:`Outbox.batch`, :meth:`Outbox.put_events`): after any
crash the restored counts equal the events stored, so no total is published twice or goes backwards.

Bounds (principle 5): at most ``max_events`` rows, none older than ``max_age_s``; beyond, the *oldest* rows
are dropped (the newest describe the present; consumers see the gap in ``seq``), counted in
``edge_outbox_dropped_total{reason}``, one log line when an overflow episode starts and one when it ends.

Trouble with the file is expected, not a bug (principle 7). **Disk full / unwritable**: the outbox turns
*degraded*: events and counts are held in a bounded memory queue (``memory_max_events``; the oldest dropped
as ``reason="memory_full"``), one log line when it starts and one when it ends, ``edge_outbox_degraded`` is
1 and :meth:`Outbox.problems` tells ``/healthz``. Acks keep working (a row whose ``DELETE`` fails is
remembered as acked). Writes are retried every ``retry_interval_s``; held events then move to disk in order.
**Corrupt file** (at open or mid-run): moved aside as ``<name>.corrupt-<unix time>`` with one log line
naming it; rows still readable are carried over to a fresh file.

Thread safety: :meth:`put` runs on the pipeline thread and :meth:`ack` on the MQTT thread; one connection
is shared under a lock, every statement a short indexed operation (tens of microseconds).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge import state
from edge.clock import Clock, SystemClock
from edge.state import StateDirError, is_corrupt, unwritable_reason

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

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
CREATE TABLE IF NOT EXISTS counters (
    camera TEXT PRIMARY KEY,
    counts TEXT NOT NULL
);
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
    """A bounded, durable FIFO of events waiting for a broker acknowledgement, plus the counters.

    Args:
        path: SQLite file (created with its directory if missing). Put it in the state directory.
        max_events: most rows kept. Raising it survives longer outages (at 200 events/s, 100 000 rows is
            about 8 minutes of traffic and ~50 MB of disk for 500-byte events); lowering it bounds disk use
            and the replay burst after a reconnect.
        max_age_s: rows older than this (wall clock at :meth:`put`) are dropped. Events delivered a week late
            are rarely useful; raise it if consumers reconcile history.
        metrics: ``edge_outbox_depth``, ``edge_outbox_dropped_total`` and ``edge_outbox_degraded``.
        clock: wall time for row ages (wall, not monotonic, because ages must survive a restart).
        synchronous: SQLite ``PRAGMA synchronous``. ``NORMAL`` (default) survives a process crash or SIGKILL
            without an fsync per event; ``FULL`` also survives power loss at the price of one fsync per
            :meth:`put` (milliseconds on SD cards).
        age_check_interval_s: how often (monotonic seconds) :meth:`put` purges expired rows. Purging scans
            from the oldest row, so doing it per event would be wasted work.
        memory_max_events: events held in memory while the file cannot be written (disk full). More rides
            out a longer full disk; each held event costs its payload (~500 bytes) of RAM, and all of them
            are lost if the process dies before the disk has room again.
        retry_interval_s: while degraded, how often (monotonic) a write to disk is tried again. Lower
            recovers sooner; each try on a still-full disk costs a failed transaction.
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
        memory_max_events: int = 10_000,
        retry_interval_s: float = 1.0,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if synchronous not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        if memory_max_events < 1:
            raise ValueError("memory_max_events must be at least 1")
        self.path = path
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.memory_max_events = memory_max_events
        self.retry_interval_s = retry_interval_s
        self._fail_log = state.WriteFailureLog()
        self._metrics = metrics
        self._degraded_gauge = state.degraded_gauge(metrics)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._age_check_interval_s = age_check_interval_s
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self.on_commit: Callable[[], None] | None = None  # after batch() wrote rows: the sender's wake-up
        self._batch_lock = threading.RLock()
        self._batch: list[tuple[str, str, bytes]] | None = None  # (camera, topic, payload) inside batch()
        self._ckpt_lock = threading.RLock()  # close() may recover a corrupt file while holding it
        self._ckpt_db: sqlite3.Connection | None = None
        self._episodes = state.OverflowEpisodes(
            f"max_events={max_events}, max_age_s={max_age_s}, memory_max_events={memory_max_events}"
        )
        self._next_age_check = float("-inf")
        self._closed = False
        # Degraded mode: rows and counter snapshots not yet on disk, acks whose DELETE failed.
        self._mem: dict[int, OutboxRow] = {}
        self._mem_counts: dict[str, str] = {}
        self._acked_on_disk: set[int] = set()
        self._degraded: str | None = None
        self._next_retry = float("-inf")
        self._held_dropped = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except (OSError, sqlite3.OperationalError) as exc:
            msg = f"outbox {path} cannot be opened for writing: {exc}"
            raise StateDirError(msg) from None
        count, last = self._db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM outbox").fetchone()
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        self._depth = int(count)
        self._last_id = max(int(last), int(seq[0]) if seq else 0)
        self._set_depth_metric()
        if self._depth:
            log.info("outbox %s holds %d events from a previous run; replaying them", path, self._depth)

    # -- opening, corruption -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit; multi-statement writes use explicit BEGIN/COMMIT.
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.executescript(_SCHEMA)
            # quick_check reads every page once (milliseconds for a few MB): a torn file is found at start,
            # not by the first event that lands on a bad page.
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        except BaseException:
            db.close()
            raise
        if verdict != "ok":
            db.close()
            raise sqlite3.DatabaseError(f"database disk image is malformed ({verdict})")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            state.quarantine(self.path, exc)
            return self._connect()

    def _recover_corrupt_locked(self, exc: sqlite3.Error) -> None:
        # Rows still readable (often all of them: a file truncated under a running daemon is read through
        # the WAL) are carried over to the fresh file, so only what is really unreadable is lost.
        raw, counts = state.salvage(self._db, self._acked_on_disk)
        rows = [OutboxRow(int(r[0]), float(r[1]), str(r[2]), str(r[3]), bytes(r[4])) for r in raw]
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        with self._ckpt_lock:
            if self._ckpt_db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._ckpt_db.close()
                self._ckpt_db = None
        state.quarantine(self.path, exc, len(rows))
        self._db = self._connect()
        self._acked_on_disk.clear()
        try:
            self._write_locked(rows, counts)
        except sqlite3.Error:
            rows = []
        self._depth = len(rows) + len(self._mem)
        self._set_depth_metric()

    # -- public API --------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Rows waiting for an acknowledgement (on disk and held in memory)."""
        return self._depth

    @property
    def last_id(self) -> int:
        """Row id of the newest event put (0 if none); lets a sender skip a query when it is caught up."""
        return self._last_id

    @property
    def degraded(self) -> bool:
        """True while the file cannot be written and events are held in memory."""
        return self._degraded is not None

    def problems(self) -> list[str]:
        """Why the outbox is degraded, for ``/healthz`` (empty when all is well)."""
        reason = self._degraded
        if reason is None:
            return []
        return [f"outbox {self.path} not writable ({reason}); {len(self._mem)} events held in memory"]

    def put(self, topic: str, payload: bytes, camera: str) -> int:
        """Append one event, return its row id (inside :meth:`batch`: collect it); drops beyond the bounds."""
        with self._batch_lock:
            if self._batch is not None:
                self._batch.append((camera, topic, payload))
                return self._last_id + len(self._batch)
            return self._put([(camera, topic, payload)], {})[0]

    @contextlib.contextmanager
    def batch(self, camera: str, counts: Callable[[], Mapping[str, Any]]) -> Iterator[None]:
        """Events :meth:`put` inside the block are written in one transaction at its end, with ``counts()``.

        The pipeline wraps a frame's events in this: the counts they changed and the events themselves are
        on disk together or not at all. Other threads' puts wait for the block (it lasts microseconds).
        """
        with self._batch_lock:
            self._batch = []
            try:
                yield
            finally:
                rows, self._batch = self._batch, None
                self._put(rows, {camera: _encode_counts(counts())})
        if rows and self.on_commit is not None:
            self.on_commit()  # the sender was woken by each put, before these rows were readable

    def put_events(
        self, camera: str, events: Sequence[tuple[str, bytes]], counts: Mapping[str, Any] | None = None
    ) -> list[int]:
        """Append ``(topic, payload)`` events of one camera and, in the same transaction, its counters.

        ``counts`` is the camera's counter snapshot *after* these events (``CameraAnalytics.counts()``);
        a crash leaves both or neither. Never raises for a full or unwritable disk (see the module doc).
        """
        texts = {} if counts is None else {camera: _encode_counts(counts)}
        with self._batch_lock:
            return self._put([(camera, t, p) for t, p in events], texts)

    def _put(self, events: Sequence[tuple[str, str, bytes]], counts: dict[str, str]) -> list[int]:
        now = self._clock.time()
        with self._lock:
            if self._closed:
                raise RuntimeError("outbox is closed")
            if self._degraded is not None:
                self._maybe_recover_locked()
            ids = list(range(self._last_id + 1, self._last_id + 1 + len(events)))
            rows = [OutboxRow(i, now, *ev) for i, ev in zip(ids, events, strict=True)]
            if self._degraded is None:
                self._try_write_locked(rows, counts)
            if self._degraded is not None:
                self._hold_locked(rows, counts)
            if events:
                self._last_id = ids[-1]
                self._depth += len(events)
            self._enforce_bounds_locked(now)
            self._set_depth_metric()
        return ids

    def save_counts(self, camera: str, counts: Mapping[str, Any]) -> None:
        """Store counters that changed without an event (a reset); same durability as :meth:`put_events`."""
        self.put_events(camera, [], counts)

    def load_counts(self, camera: str) -> dict[str, Any] | None:
        """The last stored counter snapshot of ``camera`` (held-in-memory ones first), or ``None``."""
        with self._lock:
            text = self._mem_counts.get(camera)
            if text is None and not self._closed:
                try:
                    row = self._db.execute(
                        "SELECT counts FROM counters WHERE camera = ?", (camera,)
                    ).fetchone()
                except sqlite3.DatabaseError as exc:
                    if not is_corrupt(exc):
                        raise
                    self._recover_corrupt_locked(exc)
                    row = None
                text = None if row is None else str(row[0])
        with contextlib.suppress(ValueError):
            value = json.loads(text) if text is not None else None
            return value if isinstance(value, dict) else None
        return None

    def pending(self, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``id > after_id``, oldest first (disk rows, then held ones)."""
        with self._lock:
            if self._closed:
                return []
            try:
                raw = self._db.execute(
                    "SELECT id, created, camera, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit + len(self._acked_on_disk)),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    raise
                self._recover_corrupt_locked(exc)
                raw = []
            rows = [
                OutboxRow(int(r[0]), float(r[1]), str(r[2]), str(r[3]), bytes(r[4]))
                for r in raw
                if int(r[0]) not in self._acked_on_disk
            ][:limit]
            if len(rows) < limit:
                rows += [r for i, r in self._mem.items() if i > after_id][: limit - len(rows)]
        return rows

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
        """Remove an acked row; False if already gone. On a full disk a failed ``DELETE`` is remembered (the
        row is never handed out again) and retried with the next write; a crash meanwhile re-sends it once."""
        with self._lock:
            if self._closed:
                return False
            if self._mem.pop(row_id, None) is not None:
                removed = True
            elif row_id in self._acked_on_disk:
                removed = False
            else:
                removed = self._delete_locked(row_id)
            if removed:
                self._depth -= 1
                if self._depth < self.max_events:
                    self._episodes.end()
                self._set_depth_metric()
        return removed

    def purge_expired(self) -> int:
        """Drop rows older than ``max_age_s`` now; returns how many were dropped."""
        with self._lock:
            if self._closed:
                return 0
            dropped = self._purge_expired_locked(self._clock.time())
            self._update_episode(dropped, "age")
            self._set_depth_metric()
        return dropped

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database file (SQLite's PASSIVE checkpoint) on a connection of its own.

        SQLite otherwise checkpoints inside whichever commit pushes the WAL past 1000 pages, stalling that
        :meth:`put`. The sender calls this about once a second; a passive checkpoint does not block writers.
        Returns ``(frames in the WAL, frames checkpointed)``; ``(0, 0)`` when closed or the disk is full (not
        the sender's problem). While degraded it also retries the disk, so held events move back unprompted.
        """
        if self._degraded is not None:
            with self._lock:
                if not self._closed and self._degraded is not None:
                    self._maybe_recover_locked()
        with self._ckpt_lock:
            if self._closed:
                return (0, 0)
            try:
                if self._ckpt_db is None:
                    self._ckpt_db = sqlite3.connect(
                        str(self.path), check_same_thread=False, isolation_level=None
                    )
                _busy, log_frames, done = self._ckpt_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                log.debug("outbox checkpoint failed: %s", exc)
                corrupt: sqlite3.Error | None = exc if is_corrupt(exc) else None
            else:
                return int(log_frames), int(done)
        if corrupt is not None:
            with self._lock:
                if not self._closed:
                    self._recover_corrupt_locked(corrupt)
        return (0, 0)

    def close(self) -> None:
        with self._lock, self._ckpt_lock:
            if self._closed:
                return
            if self._degraded is not None:
                self._next_retry = float("-inf")
                self._maybe_recover_locked()
                if self._mem or self._mem_counts:
                    log.error(
                        "outbox %s still not writable at stop: %d held events are lost",
                        self.path,
                        len(self._mem),
                    )
            self._closed = True
            self._db.close()
            if self._ckpt_db is not None:
                self._ckpt_db.close()

    # -- internals (caller holds self._lock) ------------------------------------------------------------

    def _write_locked(self, rows: Sequence[OutboxRow], counts: Mapping[str, str]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO outbox (id, created, camera, topic, payload) VALUES (?, ?, ?, ?, ?)",
                [(r.id, r.created, r.camera, r.topic, r.payload) for r in rows],
            )
            db.executemany(
                "INSERT INTO counters (camera, counts) VALUES (?, ?) "
                "ON CONFLICT(camera) DO UPDATE SET counts = excluded.counts",
                list(counts.items()),
            )
            if self._acked_on_disk:
                db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._acked_on_disk])
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._acked_on_disk.clear()

    def _try_write_locked(self, rows: Sequence[OutboxRow], counts: Mapping[str, str]) -> None:
        try:
            self._write_locked(rows, counts)
        except sqlite3.Error as exc:
            if not is_corrupt(exc):
                self._on_write_error_locked(exc)
                return
            self._recover_corrupt_locked(exc)
        else:
            return
        try:  # once more, on the fresh file
            self._write_locked(rows, counts)
        except sqlite3.Error as exc:
            self._on_write_error_locked(exc)

    def _on_write_error_locked(self, exc: sqlite3.Error) -> None:
        reason = unwritable_reason(exc)
        if reason is None:
            raise exc
        self._degraded = reason
        self._next_retry = self._clock.monotonic() + self.retry_interval_s
        self._set_degraded_metric()
        log.log(
            self._fail_log.failure_level(self._clock.monotonic()),
            "outbox %s cannot be written (%s: %s); holding up to %d new events in memory until it can",
            self.path,
            reason,
            exc,
            self.memory_max_events,
        )

    def _hold_locked(self, rows: Sequence[OutboxRow], counts: Mapping[str, str]) -> None:
        for r in rows:
            self._mem[r.id] = r
        self._mem_counts.update(counts)
        over = len(self._mem) - self.memory_max_events
        if over > 0:
            for rid in list(self._mem)[:over]:
                del self._mem[rid]
            self._depth -= over
            self._held_dropped += over
            self._count_drops(over, "memory_full")
            self._update_episode(over, "memory")

    def _maybe_recover_locked(self) -> None:
        now = self._clock.monotonic()
        if now < self._next_retry:
            return
        self._next_retry = now + self.retry_interval_s
        rows = list(self._mem.values())
        try:
            self._write_locked(rows, self._mem_counts)
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                self._recover_corrupt_locked(exc)
            elif unwritable_reason(exc) is None:
                raise
            return
        log.log(
            self._fail_log.recovery_level(),
            "outbox %s writable again; %d held events moved to disk, %d dropped while degraded",
            self.path,
            len(rows),
            self._held_dropped,
        )
        self._mem.clear()
        self._mem_counts.clear()
        self._held_dropped = 0
        self._degraded = None
        self._set_degraded_metric()

    def _delete_locked(self, row_id: int) -> bool:
        try:
            cur = self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                self._recover_corrupt_locked(exc)
                return False
            if unwritable_reason(exc) is None:
                raise
            exists = self._db.execute("SELECT 1 FROM outbox WHERE id = ?", (row_id,)).fetchone()
            if exists is None:
                return False
            self._acked_on_disk.add(row_id)
            return True
        return cur.rowcount > 0

    def _enforce_bounds_locked(self, now: float) -> None:
        dropped = 0
        reason = "age"
        try:
            if self._depth > self.max_events:
                dropped = self._drop_oldest_locked(self._depth - self.max_events)
                self._count_drops(dropped, "count")
                reason = "count"
            mono = self._clock.monotonic()
            if mono >= self._next_age_check:
                self._next_age_check = mono + self._age_check_interval_s
                dropped += self._purge_expired_locked(now)
        except sqlite3.Error as exc:
            if unwritable_reason(exc) is None and not is_corrupt(exc):
                raise
            # A full disk cannot even delete; the bound is enforced again by the next successful put.
        self._update_episode(dropped, reason)

    def _drop_oldest_locked(self, n: int) -> int:
        # Held (memory) rows are newer than every disk row, so disk rows go first.
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
            self._episodes.dropped(dropped, reason)
        elif self._depth < self.max_events:
            self._episodes.end()

    def _set_depth_metric(self) -> None:
        if self._metrics is not None:
            self._metrics.outbox_depth.set(self._depth)

    def _set_degraded_metric(self) -> None:
        if self._degraded_gauge is not None:
            self._degraded_gauge.set(0.0 if self._degraded is None else 1.0)


def _encode_counts(counts: Mapping[str, Any]) -> str:  # class ids come back as str: restore() converts
    return json.dumps(counts, sort_keys=True, separators=(",", ":"), default=str)
