"""The tracking tests also pass with ``NUMBA_DISABLE_JIT=1``: the kernels as plain Python.

That is how kernel lines get coverage (``NUMBA_DISABLE_JIT=1 pytest --cov=edge.tracking
tests/unit/tracking``), and it proves the kernels do not rely on Numba-only semantics (e.g. integer
overflow or typed-array coercions that plain Python would do differently).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILES = ("test_tracking_kernels.py", "test_tracking_bytetrack.py", "test_tracking_parity.py")


@pytest.mark.slow
def test_tracking_tests_pass_without_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not slow",
            *(str(HERE / f) for f in FILES),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=HERE.parents[2],
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
