"""Pieces of the daemon's startup -> serve -> shutdown phases that must exist before ``edge.app`` loads.

:class:`EarlySignals` is installed by ``edge run`` before anything slow (importing ONNX Runtime, Numba
and OpenCV takes seconds on a small box): a SIGTERM then is remembered and stops the startup cleanly
(exit 0, no READY), a SIGHUP is remembered and applied once the daemon runs, instead of the default
actions, which kill the process.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from edge.errors import EX_UNAVAILABLE, EdgeError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    import numpy as np
    import numpy.typing as npt

    from edge.detector import Detector
    from edge.types import Detections

log = logging.getLogger(__name__)

EX_CANTCREAT = 73
"""sysexits.h EX_CANTCREAT: an output file (the state directory) cannot be created."""


class StartupError(EdgeError):
    """An expected startup failure (port taken, state directory unusable): one line and this exit code."""

    def __init__(self, message: str, exit_code: int = EX_UNAVAILABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class EarlySignals:
    """Remembers SIGTERM, SIGINT and SIGHUP until the event loop installs its own handlers.

    Handlers only set attributes (they run between two bytecodes of whatever is loading).
    """

    def __init__(self) -> None:
        self.stop: signal.Signals | None = None
        """The first stop signal received, if any."""
        self.reload = False
        """A SIGHUP arrived."""

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop is None:
            self.stop = signal.Signals(signum)

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.reload = True


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

    def warmup(self, batch_size: int = 1) -> None:
        try:
            self._detector.warmup(batch_size)
        except EdgeError as err:
            self.failure = err
            log.error("%s", err)  # noqa: TRY400 - expected: one line, no traceback

    def infer(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        return self._detector.infer(images)
