"""One retry policy for everything that reconnects (cameras, the MQTT broker): jittered exponential backoff.

The n-th consecutive failure waits ``uniform(d / 2, d)`` seconds with ``d = min(cap, base * 2**n)``
("equal jitter"). The upper half keeps a floor under every delay, so a dead peer costs at most one attempt
per ``cap / 2`` seconds once the ceiling is reached; the random half spreads the retries of many clients
that failed together (a switch reboot, a broker restart) instead of having them hit the network in the
same instant. The cap bounds how late a peer that comes back is noticed: at most ``cap`` seconds after it
returned, plus the time of one attempt.

A peer that has been healthy for ``reset_after`` seconds starts again at ``base`` when it next fails, so a
camera that drops once a day retries fast every time, while one that flaps (fails again within
``reset_after``) keeps climbing to the cap instead of being hammered::

    backoff = Backoff(base=0.5, cap=2.0, reset_after=30.0, clock=clock, rng=rng)
    while running:
        if connect():
            backoff.online()           # healthy from now on
            serve()                    # returns when the connection is lost
        sleep(backoff.next())          # resets first when serve() lasted >= reset_after

Clock and random source are constructor arguments (tests pass a fake clock and a seeded ``Random``).
"""

from __future__ import annotations

import random

from edge.clock import Clock, SystemClock

_MAX_EXPONENT = 62  # 2.0**62 is still exact; beyond it the ceiling is the cap anyway


class Backoff:
    """Jittered exponential backoff with a reset after a healthy period.

    Args:
        base: ceiling of the first delay, seconds. Lower retries a brief glitch sooner, at the cost of a
            burst of quick attempts when a peer is really gone.
        cap: largest ceiling, seconds. Lower notices a returning peer sooner (at most ``cap`` late), at
            the cost of more attempts against a dead one (one per ``cap / 2`` to ``cap`` seconds).
        reset_after: seconds a peer must stay healthy (since :meth:`online`) for the next failure to
            start again at ``base``. Lower forgives a flapping peer sooner; higher keeps a peer that
            fails every few seconds at the cap.
        clock: monotonic time for the healthy period.
        rng: random source for the jitter.
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 2.0,
        reset_after: float = 30.0,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not base > 0 or not cap >= base:
            msg = f"backoff needs 0 < base <= cap, got base={base} cap={cap}"
            raise ValueError(msg)
        if reset_after < 0:
            msg = f"reset_after must be >= 0, got {reset_after}"
            raise ValueError(msg)
        self.base = float(base)
        self.cap = float(cap)
        self.reset_after = float(reset_after)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._rng = rng if rng is not None else random.Random()
        self._failures = 0
        self._online_since: float | None = None

    @property
    def failures(self) -> int:
        """Consecutive failures since the last reset (the exponent of the next delay)."""
        return self._failures

    def ceiling(self) -> float:
        """The upper bound of the next delay, before jitter."""
        return min(self.cap, self.base * 2.0 ** min(self._failures, _MAX_EXPONENT))

    def online(self) -> None:
        """The peer is healthy from now on (frames flow, the session is up)."""
        if self._online_since is None:
            self._online_since = self._clock.monotonic()

    def healthy_for(self) -> float:
        """Seconds since :meth:`online`, 0.0 when not online."""
        if self._online_since is None:
            return 0.0
        return max(0.0, self._clock.monotonic() - self._online_since)

    def next(self) -> float:
        """A failure happened: the seconds to wait before the next attempt.

        Starts again at ``base`` first when the peer had been online for ``reset_after`` seconds.
        """
        if self._online_since is not None and self.healthy_for() >= self.reset_after:
            self._failures = 0
        self._online_since = None
        d = self.ceiling()
        self._failures = min(self._failures + 1, _MAX_EXPONENT)
        return self._rng.uniform(d / 2.0, d)

    def reset(self) -> None:
        """Forget all failures (e.g. after a configuration change): the next delay is at most ``base``."""
        self._failures = 0
        self._online_since = None
