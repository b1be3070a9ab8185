"""Offline tools behind CLI subcommands: ``edge replay``, ``edge evaluate`` and ``edge annotate``.

Unlike the stages, tools may read the config: they turn a camera's configured lines and zones into the
analytics' pixel specs (:mod:`edge.tools.specs`) and run the real tracker and analytics offline.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from edge.errors import ConfigError, EdgeError

if TYPE_CHECKING:
    from collections.abc import Callable


def report_errors(tool: str, body: Callable[[], int]) -> int:
    """Run a tool's body; an :class:`EdgeError` becomes ``edge TOOL: ...`` lines and its exit code."""
    try:
        return body()
    except EdgeError as err:
        lines = err.lines() if isinstance(err, ConfigError) else [str(err)]
        for line in lines:
            print(f"edge {tool}: {line}", file=sys.stderr)
        return err.exit_code
