"""Counters that survive restarts: one JSON file per camera in the state directory.

Writes are atomic (temporary file in the same directory, ``fsync``, ``rename``, ``fsync`` of the
directory), so a crash leaves either the old or the new file, never a torn one. A file that cannot be
read back (truncated by a full disk, edited by hand) is reported once and moved aside as
``<name>.corrupt-<unix time>``; the camera then starts from zero instead of refusing to run.

Unchanged counts are not rewritten, but "unchanged" means the file on disk is still the one written last
(same size and modification time): a file truncated or replaced behind the daemon's back is written again
at the next save instead of being quarantined at the next start. A save that fails (full disk, read-only
state directory) never raises: one error line when saving starts failing, one when it works again.

With MQTT enabled the daemon keeps counts in the outbox database instead, in the same transaction as the
events (:meth:`edge.outbox.Outbox.put_events`); these files are the store when there is no outbox, and the
fallback read once when the outbox holds no counts yet (an upgrade).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from edge.outbox import Outbox

log = logging.getLogger(__name__)

STATE_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CounterStore:
    """Load and save per-camera counter snapshots (:data:`edge.events.analytics.Counts`).

    Args:
        state_dir: directory for the files (``$STATE_DIRECTORY`` under systemd); created if missing.
        min_interval_s: :meth:`maybe_save` writes at most this often per camera. Lower loses fewer
            counts on a power cut; higher spares the SD card (each save is an fsync). A clean shutdown
            calls :meth:`save` regardless, so only crashes lose up to this much.
        clock: monotonic clock for the throttle (a fake in tests).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.min_interval_s = min_interval_s
        self._clock = clock if clock is not None else time.monotonic
        self._last_save: dict[str, float] = {}
        self._last_written: dict[str, tuple[str, int, int]] = {}  # camera -> (text, size, mtime_ns)
        self._failing: dict[str, str] = {}  # camera -> error of the failing save, logged once

    def path(self, camera: str) -> Path:
        return self.state_dir / f"counts-{_SAFE.sub('_', camera)}.json"

    def load(self, camera: str) -> dict[str, Any]:
        """The saved snapshot of ``camera``; ``{}`` when there is none or it was corrupt."""
        path = self.path(camera)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            _validate(doc)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._quarantine(path, exc)
            return {}
        counts: dict[str, Any] = doc["counts"]
        self._remember(camera, _encode_counts(camera, counts))
        return counts

    def save(self, camera: str, counts: Mapping[str, Any]) -> bool:
        """Write the snapshot now unless the same text is already on disk; return whether it wrote.

        Never raises for I/O trouble: a failed save is logged once (until one succeeds) and returns False.
        """
        text = _encode_counts(camera, counts)
        self._last_save[camera] = self._clock()
        path = self.path(camera)
        last = self._last_written.get(camera)
        if last is not None and last[0] == text and _stamp(path) == last[1:]:
            return False
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(path)
            _fsync_dir(self.state_dir)
        except OSError as exc:
            error = exc.strerror or str(exc)
            if self._failing.get(camera) != error:
                self._failing[camera] = error
                log.error(  # noqa: TRY400 - expected I/O trouble: one line, no traceback
                    "cannot save counters of camera=%s to %s: %s; retrying", camera, path, error
                )
            return False
        if self._failing.pop(camera, None) is not None:
            log.warning("counters of camera=%s saved to %s again", camera, path)
        self._remember(camera, text)
        return True

    def _remember(self, camera: str, text: str) -> None:
        stamp = _stamp(self.path(camera))
        if stamp is not None:
            self._last_written[camera] = (text, *stamp)

    def due(self, camera: str) -> bool:
        """Whether ``min_interval_s`` has passed since the last save of ``camera``."""
        last = self._last_save.get(camera)
        return last is None or self._clock() - last >= self.min_interval_s

    def maybe_save(self, camera: str, counts: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> bool:
        """:meth:`save` unless the last one was less than ``min_interval_s`` ago.

        Meant to be called on every frame: pass ``analytics.counts`` (the method) and the snapshot is
        only taken when a save is due; unchanged counts are not rewritten.
        """
        if not self.due(camera):
            return False
        return self.save(camera, counts() if callable(counts) else counts)

    @contextlib.contextmanager
    def batch(self, camera: str, counts: Callable[[], Mapping[str, Any]]) -> Iterator[None]:
        """Where events and the counts they changed are stored together. A file store cannot (see
        :class:`OutboxCounterStore`): events go their own way, counts are saved by :meth:`maybe_save`."""
        yield

    def _quarantine(self, path: Path, exc: Exception) -> None:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        try:
            path.replace(aside)
        except OSError as move_exc:
            log.error(  # noqa: TRY400
                "counter state %s is unreadable (%s) and could not be moved aside: %s", path, exc, move_exc
            )
            return
        log.error("counter state %s is unreadable (%s); moved it to %s, starting from zero", path, exc, aside)


class OutboxCounterStore(CounterStore):
    """Counters kept in the outbox database, committed with the events that changed them (issue 15).

    :meth:`batch` wraps a frame's events: the outbox writes them and the counts in one transaction, so after
    any crash the counts restored by :meth:`load` equal the events stored; no total is published twice.
    :meth:`save` (reset, shutdown) writes the counts alone, in the same database. A camera the outbox holds
    no counts for yet is read once from the JSON files of ``state_dir`` (an upgrade from the file store).
    """

    def __init__(self, outbox: Outbox, state_dir: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(state_dir, **kwargs)
        self.outbox = outbox
        self._stored: dict[str, str] = {}

    def load(self, camera: str) -> dict[str, Any]:
        counts = self.outbox.load_counts(camera)
        if counts is None:
            counts = super().load(camera)  # the file store of an earlier version, if any
        self._stored[camera] = _encode_counts(camera, counts)
        return counts

    def save(self, camera: str, counts: Mapping[str, Any]) -> bool:
        self._last_save[camera] = self._clock()
        text = _encode_counts(camera, counts)
        if self._stored.get(camera) == text:
            return False
        self.outbox.save_counts(camera, counts)  # never raises for a full disk: held in memory instead
        self._stored[camera] = text
        return True

    @contextlib.contextmanager
    def batch(self, camera: str, counts: Callable[[], Mapping[str, Any]]) -> Iterator[None]:
        snapshot: dict[str, Mapping[str, Any]] = {}

        def taken() -> Mapping[str, Any]:
            snapshot["counts"] = value = counts()
            return value

        with self.outbox.batch(camera, taken):
            yield
        if "counts" in snapshot:
            self._stored[camera] = _encode_counts(camera, snapshot["counts"])


def _encode_counts(camera: str, counts: Mapping[str, Any]) -> str:
    doc = {"version": STATE_VERSION, "camera": camera, "counts": counts}
    # JSON object keys are strings; class ids come back as str and are converted by restore().
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str) + "\n"


def _validate(doc: Any) -> None:
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        msg = f"not a version {STATE_VERSION} counter file"
        raise ValueError(msg)
    counts = doc["counts"]
    if not isinstance(counts, dict):
        raise TypeError("counts is not an object")
    for name, line in counts.get("lines", {}).items():
        for direction in ("in", "out"):
            for cls, n in line.get(direction, {}).items():
                if not isinstance(n, int) or n < 0:
                    msg = f"line {name!r} {direction} class {cls}: bad count {n!r}"
                    raise ValueError(msg)
                int(cls)
    for name, zone in counts.get("zones", {}).items():
        for cls, n in zone.get("entries", {}).items():
            if not isinstance(n, int) or n < 0:
                msg = f"zone {name!r} class {cls}: bad count {n!r}"
                raise ValueError(msg)
            int(cls)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not supported on every filesystem, where it is best effort.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
