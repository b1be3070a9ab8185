"""Pieces of the daemon's startup -> serve -> shutdown phases: signals on the loop, the stop budget, the
warm-up guard, the kernel warm-up, and the error type of expected startup failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from edge.early_signals import EarlySignals
from edge.errors import EX_UNAVAILABLE, EdgeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import numpy.typing as npt

    from edge.clock import Clock
    from edge.detector import Detector
    from edge.types import Detections

log = logging.getLogger(__name__)


class StartupError(EdgeError):
    """An expected startup failure (port taken, state directory unusable): one line and this exit code."""

    def __init__(self, message: str, exit_code: int = EX_UNAVAILABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class WarmupGuard:
    """The detector as the batching thread sees it, with warm-up failures a user can cause kept here.

    A model that loads but cannot run (its real output shape differs from the declared one, a provider
    that fails on the first batch) raises an :class:`~edge.errors.EdgeError` from ``warmup``. Inside the
    detector thread that would be logged as a crash with a traceback; this guard logs it as one line and
    keeps it in :attr:`failure`, which the startup phase waits on together with "ready" and "stop".
    Bugs (any other exception) still propagate as crashes.
    """

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self.failure: EdgeError | None = None

    def warmup(self, batch_size: int = 1, **kwargs: Any) -> bool | None:
        try:
            return self._detector.warmup(batch_size, **kwargs)
        except EdgeError as err:
            self.failure = err
            log.error("%s", err)  # noqa: TRY400 - expected: one line, no traceback
            return None

    def infer(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        return self._detector.infer(images)

    def __getattr__(self, name: str) -> Any:
        # The overlapped detector thread also calls new_letterbox, run_letterboxed and decode, and reads
        # max_batch and provider: everything but warm-up passes straight through.
        return getattr(self._detector, name)


def _compile_kernels() -> list[Callable[[], float]]:
    from edge.events.analytics import warmup as analytics_warmup  # noqa: PLC0415 - loads numba
    from edge.tracking.bytetrack import warmup as tracker_warmup  # noqa: PLC0415

    return [tracker_warmup, analytics_warmup]


class KernelWarmup:
    """Compiles the tracker's and the analytics' Numba kernels (or loads them from Numba's cache) in a
    thread named ``edge-jit``, while the model warms up; the startup phase waits for both before
    ``READY=1``.

    Cold, on a fresh install or after an upgrade that changed a kernel's source, this takes tens of
    seconds on a small CPU (the tracker alone 43 s on the 2-core dev VM, longer beside the capture
    processes). Paid by the first frames after ``READY=1`` it was a minute without a processed frame,
    and systemd's watchdog (``WatchdogSec=60s``) restarted the daemon before it ever counted. Before
    ``READY=1`` it counts against ``TimeoutStartSec=`` (5 min) instead. From the cache it takes well
    under a second.

    Args:
        steps: the warm-up functions, each returning the seconds it took; default: the tracker's and the
            analytics' ``warmup``.
        thread_name: name of the compiling thread.

    A step that raises is a bug: it is logged with its traceback and kept in :attr:`failure`.
    """

    def __init__(
        self, steps: Sequence[Callable[[], float]] | None = None, *, thread_name: str = "edge-jit"
    ) -> None:
        self._steps = steps
        self.done = threading.Event()
        self.failure: BaseException | None = None
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            for step in self._steps if self._steps is not None else _compile_kernels():
                step()
        except BaseException as exc:  # a bug; the startup phase sees it in self.failure
            self.failure = exc
            log.exception("compiling the tracker and analytics kernels failed")
        else:
            self.seconds = time.perf_counter() - t0
            log.info("tracker and analytics kernels ready in %.1f s", self.seconds)
        finally:
            self.done.set()


class LoopSignals:
    """SIGTERM/SIGINT/SIGHUP on the event loop: handlers only set flags and wake the serve phase.

    A second SIGINT exits at once (130), as uvicorn does, for a shutdown that hangs. Signals that
    arrived before the loop ran (``early``) are replayed: a stop stops the startup, a reload is applied
    once the daemon runs.
    """

    def __init__(self, wake: asyncio.Event, early: EarlySignals) -> None:
        self._wake = wake
        self.early = early
        self.stops = 0
        """Stop signals received."""
        self.reload = early.reload
        """A reload is pending."""

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.on_hup)
        if self.early.stop is not None:
            self.on_stop(self.early.stop)

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def on_stop(self, sig: signal.Signals) -> None:
        self.stops += 1
        if self.stops > 1 and sig == signal.SIGINT:
            log.warning("second SIGINT: exiting now without a graceful shutdown")
            os._exit(130)
        log.info("received %s, shutting down", sig.name)
        self._wake.set()

    def on_hup(self) -> None:
        self.reload = True
        self._wake.set()  # wakes the serve wait; it tells reload from stop


class StopBudget:
    """The shutdown's time budget, shared by the steps of the exit stack.

    Args:
        clock: monotonic clock.
        total_s: the whole shutdown's budget (``shutdown_timeout``); it starts with the first step.
    """

    def __init__(self, clock: Clock, total_s: float) -> None:
        self._clock = clock
        self._total_s = total_s
        self._deadline: float | None = None

    def start(self) -> None:
        if self._deadline is None:
            self._deadline = self._clock.monotonic() + self._total_s

    def left(self, cap: float) -> float:
        """Seconds a step may take: at most ``cap`` and what is left of the budget (0.1 s at least)."""
        self.start()
        assert self._deadline is not None
        return max(0.1, min(cap, self._deadline - self._clock.monotonic()))

    async def in_thread(self, stop: Callable[[float], object], cap: float) -> None:
        """Run a blocking ``stop(timeout_s)`` in a worker thread within the budget."""
        await asyncio.to_thread(stop, self.left(cap))


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
