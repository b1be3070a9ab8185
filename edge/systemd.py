"""systemd integration: ``sd_notify`` over ``$NOTIFY_SOCKET`` and a progress-driven watchdog.

The protocol (``man sd_notify``) is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET``; a leading ``@`` names a socket in the Linux abstract namespace. That is
a few lines of socket code, so no library is needed.

What edge sends and when (the composition root drives it):

- ``READY=1`` once the models are warm and every camera has been started. Until then systemd counts
  against ``TimeoutStartSec=``; the service watchdog is not armed yet (systemd only arms it once the
  unit leaves the ``start`` state), so a slow model warm-up cannot trip ``WatchdogSec=``.
- ``STATUS=...`` with per-camera fps, shown by ``systemctl status edge``.
- ``WATCHDOG=1`` from :class:`WatchdogPinger`, and only while frames make progress: liveness follows
  the work, not a timer, so a stuck detector or every camera being dead stops the pings and systemd
  restarts the daemon (``WatchdogSec=`` with ``Restart=on-failure``).
- ``RELOADING=1`` ... ``READY=1`` around a SIGHUP reload, ``STOPPING=1`` when shutdown begins.

Everything is a no-op when there is no ``$NOTIFY_SOCKET`` (running from a terminal, in tests).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

from edge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (what ``man sd_watchdog_enabled`` recommends), or ``None``.

    ``None`` when the watchdog is off: no ``WATCHDOG_USEC``, an unparsable or zero value, or a
    ``WATCHDOG_PID`` that names another process (the variables were inherited from a parent).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return usec / 2e6


class Notifier:
    """Sends ``sd_notify`` messages to systemd; does nothing when there is no notification socket.

    ``socket_path``: the socket to notify. ``None`` (the default) reads ``$NOTIFY_SOCKET`` from
    ``environ`` (``os.environ`` when not given); an empty string disables notification explicitly.
    A path starting with ``@`` is an abstract-namespace socket.

    A failed send (systemd restarted, socket gone) is an expected I/O failure: it is logged once per
    change between working and failing and never raised, because losing a status line must not take
    the daemon down (a lost ``WATCHDOG=1`` is what the watchdog is for anyway).

    Thread-safe: the watchdog thread and the event loop may send at the same time. ``send_timeout_s``
    bounds one send (normally microseconds) if systemd stops reading its socket.
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        send_timeout_s: float = 0.5,
    ) -> None:
        self.send_timeout_s = send_timeout_s
        if socket_path is None:
            socket_path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if socket_path.startswith("@"):
            # Abstract namespace: the kernel wants a leading NUL byte instead of the '@'.
            self._address = b"\0" + socket_path[1:].encode()
        elif socket_path:
            self._address = socket_path
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    def notify(self, message: str) -> bool:
        """Send one raw message (``KEY=value`` lines). Returns whether it was delivered to the socket."""
        if self._address is None:
            return False
        data = message.encode()
        with self._lock:
            try:
                # One socket per message, like libsystemd: nothing to leak or to close, and the sends
                # are seconds apart. The timeout bounds a send into a full queue of a stuck PID 1, so
                # a caller on the event loop is never blocked for long.
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                    sock.settimeout(self.send_timeout_s)
                    sock.sendto(data, self._address)
            except OSError as exc:
                if not self._failing:
                    log.warning("sd_notify to %s failed: %s", self.socket_path, exc)
                    self._failing = True
                return False
            if self._failing:
                log.info("sd_notify to %s works again", self.socket_path)
                self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: startup (or a reload) finished; optionally with a status line."""
        return self.notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        """``STATUS=text``: one free-form line for ``systemctl status`` (newlines are replaced)."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive. Call it through :class:`WatchdogPinger`, which checks progress."""
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        """``RELOADING=1`` plus ``MONOTONIC_USEC`` (systemd >= 253 wants it); follow with :meth:`ready`."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown has begun (systemd then only waits ``TimeoutStopSec=``)."""
        return self.notify("STOPPING=1")

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: ask for more start/stop time, e.g. during a long model warm-up."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")


def status_line(fps: Mapping[str, float], states: Mapping[str, str] | None = None) -> str:
    """The ``STATUS=`` text: per-camera processed fps, plus the state of cameras that are not online.

    ``status_line({"door": 12.46, "road": 0.0}, {"road": "offline"})`` gives
    ``"door 12.5 fps, road 0.0 fps (offline)"``.
    """
    parts = []
    for name, value in fps.items():
        state = (states or {}).get(name, "online")
        parts.append(f"{name} {value:.1f} fps" + ("" if state == "online" else f" ({state})"))
    return ", ".join(parts) if parts else "no cameras"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


class WatchdogPinger:
    """Sends ``WATCHDOG=1`` every ``interval_s``, but only if ``progress()`` advanced since the last check.

    ``progress`` returns a counter that grows while the daemon does useful work; the composition root
    passes the total of frames processed by all cameras. If it does not change between two checks
    (detector stuck, every camera dead, a deadlock), no ping is sent; after ``WatchdogSec=`` without one
    systemd kills and restarts the daemon. One log line is written when pings stop and one when they
    resume.

    ``interval_s``: seconds between checks; ``None`` (default) takes half of ``$WATCHDOG_USEC`` from
    ``environ``, and when that is unset the pinger is disabled (``start()`` does nothing). Shorter
    intervals detect nothing sooner (systemd decides at ``WatchdogSec=``) but give a slow stream fewer
    chances to show a frame per interval: the interval must exceed the time between two processed
    frames of the slowest healthy setup, which at half of a ``WatchdogSec=`` of tens of seconds it does.

    Runs in a daemon thread named ``edge-watchdog`` (not an asyncio task) on purpose: the check must keep
    working — and keep *not* pinging — whatever the event loop does, and a blocked loop must not hide
    stalled frames or fake progress. ``clock`` only measures how long progress has been missing, for the
    log line; tests drive :meth:`check` directly.
    """

    def __init__(
        self,
        notifier: Notifier,
        progress: Callable[[], int],
        interval_s: float | None = None,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        thread_name: str = "edge-watchdog",
    ) -> None:
        if interval_s is None:
            interval_s = watchdog_interval_s(environ)
        if interval_s is not None and interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if clock is None:
            clock = SystemClock()
        self.interval_s = interval_s
        self._notifier = notifier
        self._progress = progress
        self._clock = clock
        self._thread_name = thread_name
        self._last: int | None = None
        self._last_progress_at = clock.monotonic()
        self._stalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0

    @property
    def enabled(self) -> bool:
        """True when there is an interval and a socket, so :meth:`start` will run a thread."""
        return self.interval_s is not None and self._notifier.enabled

    @property
    def stalled(self) -> bool:
        """True while the last check saw no progress."""
        return self._stalled

    def check(self) -> bool:
        """Read the progress counter once; ping if it advanced since the previous check.

        The first check only takes the baseline (there is no "previous" yet) and pings: the pinger is
        started right after ``READY=1``, when the pipeline has just been shown to work.
        Returns whether a ping was sent.
        """
        value = self._progress()
        now = self._clock.monotonic()
        advanced = self._last is None or value != self._last
        self._last = value
        if advanced:
            self._last_progress_at = now
            if self._stalled:
                log.info("frames flow again (progress=%s); watchdog pings resume", value)
                self._stalled = False
            if self._notifier.watchdog():
                self.pings += 1
            return True
        if not self._stalled:
            log.error(
                "no frame progress for %.1f s (progress=%s); withholding watchdog pings so systemd "
                "restarts edge if it does not recover",
                now - self._last_progress_at,
                value,
            )
            self._stalled = True
        return False

    def start(self) -> None:
        """Start the checking thread (no-op when disabled or already running)."""
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and wait for it up to ``timeout_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        assert self.interval_s is not None  # start() checked it
        self.check()
        while not self._stop.wait(self.interval_s):
            self.check()
