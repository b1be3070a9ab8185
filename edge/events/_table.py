"""Per-track state as a struct of arrays keyed by track id (the hot-path store of lines and zones).

Rows are kept sorted by track id so a whole frame's ids are looked up with one ``np.searchsorted``
instead of one dict lookup per detection. Rows are added only when new tracks appear and removed when
the tracker reports tracks removed, so the table never holds more rows than there are live tracks;
``max_rows`` is a second line of defence against a caller that never reports removals.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
IntP = npt.NDArray[np.intp]


class TrackTable:
    """Sorted track ids plus named columns, one row per track.

    Args:
        columns: column name -> (dtype, trailing shape, fill value of a new row).
        max_rows: hard bound; inserting beyond it first drops the rows seen least recently (logged once
            per overflow episode). Raising it only costs memory; the tracker's own ``max_tracks`` is the
            real bound in a running pipeline.
    """

    def __init__(
        self,
        columns: dict[str, tuple[type[np.generic], tuple[int, ...], float | bool | int]],
        max_rows: int = 10_000,
    ) -> None:
        if max_rows < 1:
            msg = f"max_rows must be >= 1, got {max_rows}"
            raise ValueError(msg)
        self._spec = columns
        self.max_rows = max_rows
        self.ids: I64 = np.zeros(0, np.int64)
        self.last_seen: I64 = np.zeros(0, np.int64)
        self.cols: dict[str, npt.NDArray[Any]] = {
            name: np.zeros((0, *shape), dtype) for name, (dtype, shape, _fill) in columns.items()
        }
        self._overflowing = False

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def find(self, ids: I64) -> tuple[IntP, npt.NDArray[np.bool_]]:
        """Row index of each id and whether it is present (index is meaningless where absent)."""
        n = self.ids.shape[0]
        if n == 0:
            return np.zeros(ids.shape[0], np.intp), np.zeros(ids.shape[0], np.bool_)
        idx = np.searchsorted(self.ids, ids).astype(np.intp, copy=False)
        np.minimum(idx, n - 1, out=idx)
        return idx, self.ids[idx] == ids

    def rows_for(self, ids: I64, frame_no: int) -> IntP:
        """Row index of each id, inserting rows (with fill values) for ids not yet present."""
        idx, found = self.find(ids)
        if not found.all():
            self._insert(np.unique(ids[~found]))
            idx, found = self.find(ids)
        self.last_seen[idx] = frame_no
        return idx

    def _insert(self, new_ids: I64) -> None:
        overflow = len(self) + new_ids.shape[0] - self.max_rows
        if overflow > 0:
            if not self._overflowing:
                log.warning(
                    "per-track state reached max_rows=%s; dropping the least recently seen tracks "
                    "(is the tracker reporting removed tracks?)",
                    self.max_rows,
                )
                self._overflowing = True
            keep = np.sort(np.argsort(self.last_seen, kind="stable")[overflow:])
            self._take(keep)
        else:
            self._overflowing = False
        ids = np.concatenate((self.ids, new_ids))
        self.last_seen = np.concatenate((self.last_seen, np.zeros(new_ids.shape[0], np.int64)))
        for name, (dtype, shape, fill) in self._spec.items():
            fresh = np.full((new_ids.shape[0], *shape), fill, dtype)
            self.cols[name] = np.concatenate((self.cols[name], fresh))
        # ``new_ids`` is sorted (np.unique) and the tracker hands out growing ids, so the new rows
        # usually belong at the end already: sort only when they do not.
        if self.ids.shape[0] and new_ids[0] < self.ids[-1]:
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            self.last_seen = self.last_seen[order]
            for name in self.cols:
                self.cols[name] = self.cols[name][order]
        self.ids = ids

    def _take(self, rows: IntP) -> None:
        self.ids = self.ids[rows]
        self.last_seen = self.last_seen[rows]
        for name in self.cols:
            self.cols[name] = self.cols[name][rows]

    def hand_over(self, child: I64, parent: I64, frame_no: int) -> IntP:
        """Move each row ``parent[i]`` to the id ``child[i]`` (an id switch the tracker linked): the
        child gets every column of the parent, the parent's row goes. Pairs whose child already has a
        row, or whose parent has none, are skipped. Returns the children's new rows."""
        pidx, pfound = self.find(parent)
        _cidx, cfound = self.find(child)
        ok = pfound & ~cfound
        if not ok.any():
            return np.zeros(0, np.intp)
        saved = {name: col[pidx[ok]].copy() for name, col in self.cols.items()}
        self.remove(parent[ok])
        rows = self.rows_for(child[ok], frame_no)
        for name, values in saved.items():
            self.cols[name][rows] = values
        return rows

    def remove(self, ids: I64) -> None:
        """Drop the rows of ``ids`` (ids not present are ignored)."""
        if ids.shape[0] == 0 or len(self) == 0:
            return
        idx, found = self.find(ids)
        if not found.any():
            return
        keep = np.ones(len(self), np.bool_)
        keep[idx[found]] = False
        self._take(np.flatnonzero(keep))

    def clear(self) -> None:
        self._take(np.zeros(0, np.intp))
