"""KernelWarmup: the Numba kernels compile in a named thread before READY=1, and a failure is kept."""

from __future__ import annotations

import threading

import pytest

from edge.lifecycle import KernelWarmup


def test_steps_run_in_the_named_thread_and_done_is_set() -> None:
    ran: list[str] = []

    def step() -> float:
        ran.append(threading.current_thread().name)
        return 0.0

    warm = KernelWarmup([step, step], thread_name="edge-jit-test")
    warm.start()
    assert warm.done.wait(10.0)
    assert ran == ["edge-jit-test", "edge-jit-test"]
    assert warm.failure is None
    assert warm.seconds is not None


def test_a_failing_step_is_kept_and_done_is_still_set(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> float:
        raise RuntimeError("typing error in a kernel")

    warm = KernelWarmup([broken])
    warm.start()
    assert warm.done.wait(10.0)
    assert isinstance(warm.failure, RuntimeError)
    assert warm.seconds is None
    assert "compiling the tracker and analytics kernels failed" in caplog.text


def test_the_default_steps_compile_the_real_kernels() -> None:
    warm = KernelWarmup()
    warm.start()
    assert warm.done.wait(300.0)
    assert warm.failure is None
