"""A real full disk on demand, for the outbox and publisher fault tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real, tiny tmpfs mounted at ``where`` (``size`` as mount takes it, e.g. ``"64k"``); needs root,
    as on the CI runner and the dev box: without it the test skips, or fails under ``CI=true``."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("a real full disk needs root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
