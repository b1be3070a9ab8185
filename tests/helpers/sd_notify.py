"""A real systemd-style notification socket for tests: bind it, pass its path as ``NOTIFY_SOCKET``.

Usage (also against the full daemon, as ``NOTIFY_SOCKET`` in the child's environment)::

    with NotifySocket.temporary() as sock:
        env = {**os.environ, "NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "2000000"}
        ...
        assert sock.wait_for("READY=1", timeout_s=60)
        messages = sock.drain()
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Self


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's notification socket.

    ``address`` is a file path or, starting with a NUL byte, an abstract-namespace name.
    Every received datagram is also kept in :attr:`messages`.
    """

    def __init__(self, address: str | bytes, *, tmpdir: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.path = "@" + address[1:].decode() if isinstance(address, bytes) else address
        self.messages: list[str] = []
        self._tmpdir = tmpdir

    @classmethod
    def temporary(cls) -> Self:
        """A socket file in a fresh short directory (``sun_path`` holds only 108 bytes, so not tmp_path)."""
        d = Path(tempfile.mkdtemp(prefix="edge-sd-"))
        return cls(str(d / "notify"), tmpdir=d)

    def receive(self, timeout_s: float = 2.0) -> str | None:
        """The next datagram, or ``None`` after ``timeout_s`` (0 = only what is already queued)."""
        self.sock.settimeout(timeout_s)
        try:
            message = self.sock.recv(65536).decode()
        except (TimeoutError, BlockingIOError):
            return None
        self.messages.append(message)
        return message

    def drain(self) -> list[str]:
        """Everything queued right now."""
        out: list[str] = []
        while (m := self.receive(0.0 if out else 0.01)) is not None:
            out.append(m)
        return out

    def wait_for(self, line: str, timeout_s: float) -> bool:
        """Receive until a datagram containing the line ``line`` (e.g. ``READY=1``) arrives."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            m = self.receive(left)
            if m is not None and line in m.splitlines():
                return True
        return False

    def close(self) -> None:
        self.sock.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
