"""Signal handlers for the first moments of ``edge run``, before anything slow is imported.

Importing ONNX Runtime, Numba and OpenCV takes seconds on a small box. :class:`EarlySignals` is installed
first thing (this module imports nothing else): a SIGTERM then is remembered and stops the startup
cleanly (exit 0, no READY), a SIGHUP is remembered and applied once the daemon runs, instead of the
default actions, which kill the process. The event loop's handlers take over later
(:class:`edge.lifecycle.LoopSignals`).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType


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
