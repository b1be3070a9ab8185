"""The state directory: the startup writability check and SQLite error classification.

Everything that decides whether trouble with a state file is expected (a full or read-only disk, a corrupt
file: one log line, a defined exit or a degraded mode) or a bug (a traceback) lives here, shared by the
outbox and the counter store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import EdgeError

if TYPE_CHECKING:
    from collections.abc import Container

    from prometheus_client import Gauge

    from edge.metrics import Metrics

log = logging.getLogger("edge.outbox")
EX_CANTCREAT = 73
"""sysexits.h EX_CANTCREAT: a (state) file cannot be created."""

# SQLite primary result codes (sqlite3.h) that mean "the file cannot be written right now"; anything else
# from a write is a bug and propagates.
_UNWRITABLE = {
    3: "permission denied",  # SQLITE_PERM
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR
    13: "disk full",  # SQLITE_FULL
    14: "cannot open",  # SQLITE_CANTOPEN
}
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


class StateDirError(EdgeError):
    """The state directory (outbox, counters) cannot be created or written; exit 73 (EX_CANTCREAT)."""

    exit_code = EX_CANTCREAT


def check_state_dir(path: Path) -> None:
    """Create ``path`` if needed and prove it is writable; raise :class:`StateDirError` naming it if not.

    Runs at startup before anything slow: a probe file is created, written, fsynced and removed, which is
    exactly what SQLite and the counter files need.
    """
    probe = path / f".edge-write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        msg = f"state directory {path} is not writable: {exc.strerror or exc}"
        raise StateDirError(msg) from None


def sqlite_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_corrupt(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return sqlite_code(exc) in _CORRUPT or "malformed" in text or "not a database" in text


def unwritable_reason(exc: sqlite3.Error) -> str | None:
    reason = _UNWRITABLE.get(sqlite_code(exc))
    if reason is None and isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        for needle, why in (("full", "disk full"), ("readonly", "read-only"), ("disk I/O", "I/O error")):
            if needle in text:
                return why
    return reason


def degraded_gauge(metrics: Metrics | None) -> Gauge | None:
    """``edge_outbox_degraded`` of the injected metrics, if any."""
    return metrics.outbox_degraded if metrics is not None else None


def quarantine(path: Path, exc: Exception, salvaged: int | None = None) -> None:
    """Move a corrupt SQLite file (and its -wal, -shm) aside as ``<name>.corrupt-<unix time>``; one line."""
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").replace(Path(f"{aside}{suffix}"))
    kept = f"{salvaged} readable events carried over" if salvaged else "starting an empty outbox"
    log.error("outbox %s is corrupt (%s); moved it to %s, %s", path, exc, aside, kept)


def salvage(db: sqlite3.Connection, skip: Container[int]) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """Outbox rows (id order, ``skip`` ids left out) and counter snapshots still readable from ``db``."""
    rows: list[tuple[Any, ...]] = []
    counts: dict[str, str] = {}
    with contextlib.suppress(sqlite3.Error):
        counts = {str(c): str(t) for c, t in db.execute("SELECT camera, counts FROM counters")}
    with contextlib.suppress(sqlite3.Error):
        for r in db.execute("SELECT id, created, camera, topic, payload FROM outbox ORDER BY id"):
            if r[0] not in skip:
                rows.append(tuple(r))  # noqa: PERF401 - a loop keeps what was read before an error
    return rows, counts


class OverflowEpisodes:
    """Logs an overflow of the outbox's bounds once when it starts and once when it ends (principle 1)."""

    def __init__(self, bounds: str) -> None:
        self.bounds = bounds
        self.active = False
        self.count = 0

    def dropped(self, n: int, reason: str) -> None:
        self.count += n
        if not self.active:
            self.active = True
            log.warning(
                "outbox %s bound hit (%s): dropping the oldest events; counted in edge_outbox_dropped_total",
                reason,
                self.bounds,
            )

    def end(self) -> None:
        if self.active:
            log.warning("outbox within its bounds again; %d events were dropped meanwhile", self.count)
            self.active = False
            self.count = 0


class WriteFailureLog:
    """The log levels of a state file's write failures and recoveries: one ERROR line per episode.

    A nearly full disk flaps (a small write fits, the next does not). Only the first failure within
    ``quiet_s`` is an ERROR line, and only its recovery a WARNING; flaps inside that window go to DEBUG,
    so the journal keeps one line per real state change. Longer ``quiet_s`` hides more flapping, and also
    a genuinely new failure that soon follows a recovery (the degraded metric still shows it).
    """

    def __init__(self, quiet_s: float = 60.0) -> None:
        self.quiet_s = quiet_s
        self._logged_at: float | None = None
        self._episode_logged = False

    def failure_level(self, now: float) -> int:
        """The level for a failure at monotonic ``now`` (and remember whether this episode was shown)."""
        quiet = self._logged_at is not None and now - self._logged_at < self.quiet_s
        self._episode_logged = not quiet
        if not quiet:
            self._logged_at = now
        return logging.DEBUG if quiet else logging.ERROR

    def recovery_level(self) -> int:
        """The level for the recovery that ends the current episode."""
        return logging.WARNING if self._episode_logged else logging.DEBUG
