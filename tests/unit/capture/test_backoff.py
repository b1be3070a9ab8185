"""edge.backoff: the one retry policy of capture and MQTT (fake clock, seeded random source)."""

from __future__ import annotations

import random

import pytest

from edge.backoff import Backoff
from edge.clock import FakeClock


class _Top(random.Random):
    """Always the upper bound: delays equal their ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [
        (0.5, 2.0, [0.5, 1.0, 2.0, 2.0, 2.0]),
        (1.0, 30.0, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        (0.25, 0.25, [0.25, 0.25, 0.25]),
    ],
)
def test_ceilings_double_up_to_the_cap(base: float, cap: float, expected: list[float]) -> None:
    b = Backoff(base, cap, rng=_Top(), clock=FakeClock())
    assert [b.next() for _ in expected] == expected


def test_every_delay_lies_in_the_upper_half_of_its_ceiling() -> None:
    b = Backoff(0.5, 2.0, rng=random.Random(7), clock=FakeClock())
    for _ in range(200):
        ceiling = b.ceiling()
        d = b.next()
        assert ceiling / 2 <= d <= ceiling
    assert b.ceiling() == 2.0


def test_jitter_spreads_clients_that_failed_together() -> None:
    delays = {round(Backoff(0.5, 2.0, rng=random.Random(seed)).next(), 6) for seed in range(20)}
    assert len(delays) == 20


def test_healthy_for_reset_after_starts_again_at_base() -> None:
    clock = FakeClock()
    b = Backoff(0.5, 2.0, reset_after=30.0, clock=clock, rng=_Top())
    for _ in range(5):
        b.next()
    assert b.ceiling() == 2.0
    b.online()
    clock.advance(30.0)
    assert b.healthy_for() == 30.0
    assert b.next() == 0.5  # healthy long enough: the first retry is fast again
    assert b.failures == 1


def test_a_flapping_peer_is_not_reset() -> None:
    clock = FakeClock()
    b = Backoff(0.5, 2.0, reset_after=30.0, clock=clock, rng=_Top())
    for _ in range(5):
        b.next()
    b.online()
    clock.advance(29.0)
    assert b.next() == 2.0  # online for less than reset_after: still at the cap
    assert b.healthy_for() == 0.0  # next() ends the healthy period


def test_online_twice_keeps_the_first_start() -> None:
    clock = FakeClock()
    b = Backoff(0.5, 2.0, reset_after=10.0, clock=clock, rng=_Top())
    b.next()
    b.next()
    b.online()
    clock.advance(6.0)
    b.online()
    clock.advance(6.0)
    assert b.next() == 0.5


def test_reset_forgets_failures() -> None:
    b = Backoff(0.5, 4.0, rng=_Top(), clock=FakeClock())
    for _ in range(4):
        b.next()
    b.reset()
    assert b.failures == 0
    assert b.next() == 0.5


def test_many_failures_never_overflow() -> None:
    b = Backoff(0.5, 2.0, rng=_Top(), clock=FakeClock())
    for _ in range(10_000):
        assert b.next() <= 2.0


@pytest.mark.parametrize(("base", "cap", "reset_after"), [(0.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.5, 1.0, -1.0)])
def test_bad_bounds_are_rejected(base: float, cap: float, reset_after: float) -> None:
    with pytest.raises(ValueError, match=r"must be|needs"):
        Backoff(base, cap, reset_after)
