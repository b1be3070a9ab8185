"""Stopping an ``edge run`` subprocess and reading its error lines, for the daemon's integration tests."""

from __future__ import annotations

import signal
import subprocess

import pytest


def stop(proc: subprocess.Popen[str], timeout_s: float = 30.0, *, signal_it: bool = True) -> tuple[int, str]:
    """SIGTERM the daemon (unless ``signal_it`` is false: it is expected to exit by itself) and wait
    ``timeout_s`` for it; returns its exit code and stderr. A daemon that does not stop fails the test."""
    if signal_it and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"edge did not stop within {timeout_s} s; stderr:\n{err}")
    return proc.returncode, err


def error_lines(stderr: str) -> list[str]:
    """Lines logged at ERROR or CRITICAL, and ``error:`` lines printed before logging is set up."""
    return [
        ln for ln in stderr.splitlines() if " ERROR " in ln or " CRITICAL " in ln or ln.startswith("error:")
    ]
