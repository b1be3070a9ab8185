"""sd_notify over a real unix datagram socket, and the progress-driven watchdog."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.sd_notify import NotifySocket

from edge.clock import FakeClock
from edge.systemd import Notifier, WatchdogPinger, status_line, watchdog_interval_s

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def path_socket() -> Iterator[tuple[str, NotifySocket]]:
    with NotifySocket.temporary() as s:
        assert isinstance(s.path, str)
        yield s.path, s


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, NotifySocket]]:
    name = f"edge-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    with NotifySocket(b"\0" + name.encode()) as s:
        assert s.path == "@" + name
        yield s.path, s


def test_lifecycle_messages_arrive_on_a_path_socket(path_socket: tuple[str, NotifySocket]) -> None:
    path, sock = path_socket
    n = Notifier(path)
    assert n.enabled
    assert n.ready()
    assert sock.receive() == "READY=1"
    assert n.status("cam1 12.5 fps\ncam2 0.0 fps")
    assert sock.receive() == "STATUS=cam1 12.5 fps cam2 0.0 fps"
    assert n.watchdog()
    assert sock.receive() == "WATCHDOG=1"
    assert n.reloading()
    msg = sock.receive()
    assert msg is not None
    assert msg.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert n.ready("reloaded")
    assert sock.receive() == "READY=1\nSTATUS=reloaded"
    assert n.extend_timeout(2.5)
    assert sock.receive() == "EXTEND_TIMEOUT_USEC=2500000"
    assert n.stopping()
    assert sock.receive() == "STOPPING=1"


def test_abstract_namespace_socket_from_environment(abstract_socket: tuple[str, NotifySocket]) -> None:
    name, sock = abstract_socket
    n = Notifier(environ={"NOTIFY_SOCKET": name})
    assert n.socket_path.startswith("@")
    assert n.ready()
    assert sock.receive() == "READY=1"


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_a_socket_everything_is_a_no_op(environ: dict[str, str]) -> None:
    n = Notifier(environ=environ)
    assert not n.enabled
    assert not n.ready()
    assert not n.watchdog()
    assert not n.stopping()


def test_explicit_empty_path_disables_even_with_environment() -> None:
    assert not Notifier("", environ={"NOTIFY_SOCKET": "/run/systemd/notify"}).enabled


def test_a_vanished_socket_is_logged_once_and_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory(prefix="edge-sd-") as d:
        path = str(Path(d) / "notify")
        n = Notifier(path)
        with caplog.at_level(logging.INFO, logger="edge.systemd"):
            assert not n.watchdog()
            assert not n.watchdog()
            assert not n.status("x")
            sock = NotifySocket(path)
            assert n.watchdog()
            sock.close()
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        recoveries = [r for r in caplog.records if "works again" in r.getMessage()]
        assert len(failures) == 1
        assert len(recoveries) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # inherited from another process
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(environ) == expected


def test_pinger_is_disabled_without_watchdog_usec(path_socket: tuple[str, NotifySocket]) -> None:
    path, sock = path_socket
    pinger = WatchdogPinger(Notifier(path), progress=lambda: 1, environ={})
    assert not pinger.enabled
    pinger.start()
    pinger.stop()
    assert sock.receive(0.05) is None


def test_pinger_takes_its_interval_from_the_environment() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "10000000"}
    pinger = WatchdogPinger(Notifier(environ=env), progress=lambda: 0, environ=env)
    assert pinger.interval_s == 5.0
    assert pinger.enabled


def test_check_pings_only_when_progress_advanced(
    path_socket: tuple[str, NotifySocket], caplog: pytest.LogCaptureFixture
) -> None:
    path, sock = path_socket
    counter = [0]
    clock = FakeClock()
    pinger = WatchdogPinger(Notifier(path), progress=lambda: counter[0], interval_s=1.0, clock=clock)
    # (frames processed since the previous check, expect a ping)
    script = [(0, True), (5, True), (1, True), (0, False), (0, False), (0, False), (3, True), (0, False)]
    with caplog.at_level(logging.INFO, logger="edge.systemd"):
        for step, (frames, expect_ping) in enumerate(script):
            counter[0] += frames
            clock.advance(1.0)
            assert pinger.check() is expect_ping, step
            assert (sock.receive(0.2 if expect_ping else 0.01) == "WATCHDOG=1") is expect_ping, step
            assert pinger.stalled is not expect_ping
    assert pinger.pings == 4
    stall_lines = [r for r in caplog.records if "withholding" in r.getMessage()]
    resume_lines = [r for r in caplog.records if "resume" in r.getMessage()]
    assert len(stall_lines) == 2  # one per stall, not one per check
    assert "1.0 s" in stall_lines[0].getMessage()
    assert len(resume_lines) == 1


def test_real_thread_pings_while_frames_flow_and_stops_when_they_stall(
    path_socket: tuple[str, NotifySocket],
) -> None:
    path, sock = path_socket
    frames = [0]
    flowing = threading.Event()
    flowing.set()
    done = threading.Event()

    def source() -> None:  # stands in for the pipeline: frames flow every 5 ms while `flowing`
        while not done.is_set():
            if flowing.is_set():
                frames[0] += 1
            time.sleep(0.005)

    producer = threading.Thread(target=source, name="test-frames", daemon=True)
    producer.start()
    notifier = Notifier(path)
    pinger = WatchdogPinger(notifier, progress=lambda: frames[0], interval_s=0.05)
    try:
        notifier.ready()
        assert sock.receive() == "READY=1"
        pinger.start()
        assert any(t.name == "edge-watchdog" for t in threading.enumerate())
        pings = [sock.receive() for _ in range(5)]
        assert pings == ["WATCHDOG=1"] * 5  # periodic while frames flow

        flowing.clear()  # the source stops and the detector stalls: no more progress
        deadline = time.monotonic() + 5.0
        while not pinger.stalled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pinger.stalled
        sock.drain()
        assert sock.receive(0.4) is None  # eight intervals without a single ping

        flowing.set()  # recovery brings the pings back
        assert sock.receive() == "WATCHDOG=1"
    finally:
        pinger.stop()
        done.set()
        producer.join()
    assert not any(t.name == "edge-watchdog" for t in threading.enumerate())
    notifier.stopping()
    assert sock.drain()[-1] == "STOPPING=1"


def test_status_line_lists_fps_and_abnormal_states() -> None:
    assert (
        status_line({"door": 12.46, "road": 0.0}, {"road": "offline"})
        == "door 12.5 fps, road 0.0 fps (offline)"
    )
    assert status_line({"door": 3.0}) == "door 3.0 fps"
    assert status_line({}) == "no cameras"
