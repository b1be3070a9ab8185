"""Acceptance: a publisher SIGKILLed with events in its outbox delivers them all after a restart; the last
will announces ``offline`` when the process dies."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.mosquitto import Subscriber
from mqtt_support import first_arrivals, make_broker, seq_in_order_per_camera

from edge.outbox import Outbox

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

CHILD = Path(__file__).with_name("publisher_child.py")
KEEPALIVE_S = 2
N_EVENTS = 300


class Child:
    """The publishing process, with its stdout read line by line in a thread."""

    def __init__(self, port: int, state: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                "--port",
                str(port),
                "--state",
                str(state),
                "--keepalive",
                str(KEEPALIVE_S),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float = 15.0) -> str:
        line = self.lines.get(timeout=timeout)
        assert line.startswith(prefix), line
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def sigkill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def availability(sub: Subscriber, since: float) -> list[tuple[float, bytes]]:
    return [(m.at, m.payload) for m in sub.on("edge/crashy/availability") if m.at >= since]


def test_sigkill_with_pending_events_then_restart_delivers_all(tmp_path: Path) -> None:
    state = tmp_path / "state"
    broker = make_broker(tmp_path / "broker")
    broker.start()
    sub = Subscriber(broker.host, broker.port, ["edge/crashy/#"], client_id="crash-sub", clean_session=False)
    children: list[Child] = []
    try:
        sub.start()
        first = Child(broker.port, state)
        children.append(first)
        first.expect("connected")
        assert sub.wait_for(lambda _: any(p == b"online" for _, p in availability(sub, 0.0)), 10.0)

        # Broker down: every event stays in the outbox; then the process dies without any chance to clean up.
        broker.stop()
        first.send(f"put {N_EVENTS}")
        assert first.expect("depth") == f"depth {N_EVENTS}"
        first.sigkill()
        left = Outbox(state / "outbox.db")
        assert left.depth == N_EVENTS
        left.close()

        broker.start()
        second = Child(broker.port, state)
        children.append(second)
        second.expect("connected")
        assert sub.wait_for(lambda m: len(first_arrivals(m)) >= N_EVENTS, 20.0)
        events = first_arrivals(sub.messages)
        assert {e["event_id"] for e in events} == {f"cam-{i:06d}" for i in range(N_EVENTS)}
        assert seq_in_order_per_camera(events)
        time.sleep(0.5)  # let the last PUBACKs reach the child before it dies

        # Kill the connected process: the broker publishes the retained last will "offline".
        killed_at = time.monotonic()
        second.sigkill()
        assert sub.wait_for(
            lambda _: any(p == b"offline" for _, p in availability(sub, killed_at)), 1.5 * KEEPALIVE_S + 1.0
        ), "no last will within the keep-alive window"
        will_after = min(t for t, p in availability(sub, killed_at) if p == b"offline") - killed_at
        print(f"last will 'offline' seen {will_after:.3f} s after SIGKILL (keepalive {KEEPALIVE_S} s)")
        assert will_after <= 1.5 * KEEPALIVE_S + 1.0
        reopened = Outbox(state / "outbox.db")
        assert reopened.depth == 0
        reopened.close()
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.sigkill()
        sub.stop()
        broker.stop()
