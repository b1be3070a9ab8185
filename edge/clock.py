"""Injectable clocks, so tests pass a fake instead of patching :mod:`time`."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What stages need to know about time."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going backwards (durations, timeouts, frame age)."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch (timestamps in events)."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._mono = start
        self._wall_offset = wall_start - start

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._mono + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            msg = "a clock cannot go backwards"
            raise ValueError(msg)
        self._mono += seconds
