"""Cameras never hold each other up: hanging and refused sources beside healthy RTSP cameras, capture
processes that crash, hang or outlive their parent, and shutdown that leaves no process behind."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.rtsp import RtspServer

from edge.capture import OFFLINE, ONLINE, STALLED, Capture, CaptureLauncher, FrameNotifier

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

NATIVE_MARKERS = ("[OPENCV", "[ WARN", "[ERROR", "Connection refused", "Immediate exit requested", "VIDEOIO")


def capture_children() -> list[int]:
    """Pids of this process's capture processes (``python -m edge.capture_worker``), including those a
    :class:`CaptureLauncher` of this process forked, and the launcher itself."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if b"edge.capture_worker" in cmd:
            parents[int(entry.name)] = ppid
    mine = {pid for pid, ppid in parents.items() if ppid == me}
    return sorted(mine | {pid for pid, ppid in parents.items() if ppid in mine})


@pytest.fixture(params=["launcher", "interpreter"])
def launcher(request: pytest.FixtureRequest) -> Iterator[CaptureLauncher | None]:
    """Both ways to start capture processes: forked by a shared launcher, or a Python start-up each."""
    if request.param == "interpreter":
        yield None
        return
    shared = CaptureLauncher()
    shared.start()
    yield shared
    shared.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hanging_and_refused_sources_never_hold_up_healthy_cameras(
    rtsp_server: Callable[..., RtspServer],
    clip30: Path,
    clip30_b: Path,
    silent_port: int,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """4 sources that accept and never answer + 1 refused port beside 2 healthy RTSP cameras, 60 s.

    Capture processes are forked by one launcher, as the daemon does (a Python start-up per camera takes
    seconds on a loaded 2-core machine: that path is covered by the other tests here)."""
    launcher = CaptureLauncher()
    launcher.start()
    server = rtsp_server(clip30, clip30_b)
    bad = {
        "hang_http1": f"http://127.0.0.1:{silent_port}/video.mjpg",
        "hang_http2": f"http://127.0.0.1:{silent_port}/cgi-bin/stream",
        "hang_rtsp1": f"rtsp://127.0.0.1:{silent_port}/stream1",
        "hang_rtsp2": f"rtsp://admin:Hunter22@127.0.0.1:{silent_port}/stream2",
        "refused": f"rtsp://127.0.0.1:{refused_port()}/stream",
    }
    notifier = FrameNotifier()
    # The bad cameras start first, so their opens are already hanging when the healthy ones open.
    # Defaults throughout (open_timeout 10 s, backoff cap 2 s), as the daemon builds them.
    bad_caps = [Capture(name, url, notify=notifier, launcher=launcher) for name, url in bad.items()]
    good_caps = [
        Capture(f"good{i}", server.url(path), notify=notifier, launcher=launcher)
        for i, path in enumerate(server.paths)
    ]
    arrivals: dict[str, list[float]] = {c.camera: [] for c in good_caps}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            v = notifier.version
            for c in good_caps:
                if c.poll() is not None:
                    arrivals[c.camera].append(time.monotonic())
            for c in bad_caps:
                assert c.poll() is None
            notifier.wait(v, 0.05)

    consumer = threading.Thread(target=consume, name="consumer", daemon=True)
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        for c in bad_caps:
            c.start()
        time.sleep(0.5)
        t_start = time.monotonic()
        for c in good_caps:
            c.start()
        consumer.start()
        try:
            time.sleep(60.0)
            t_end = time.monotonic()
        finally:
            stop.set()
            consumer.join(2.0)
            t_stop = time.monotonic()
            for c in [*good_caps, *bad_caps]:
                c.stop(5.0)
            stop_s = time.monotonic() - t_stop
            launcher.close()

    firsts = {name: ts[0] - t_start for name, ts in arrivals.items() if ts}
    gaps = {n: max(b - a for a, b in itertools.pairwise(ts)) for n, ts in arrivals.items() if len(ts) > 1}
    summary = (f"first frame after start (s): {firsts}; longest gap (s): {gaps}; "
               f"frames: { {n: len(ts) for n, ts in arrivals.items()} }; stop took {stop_s:.2f} s")
    with capfd.disabled():
        print(f"\n{summary}")
    for name, ts in arrivals.items():
        assert ts, f"{name} never delivered"
        assert ts[0] - t_start <= 2.0, f"{name} started {ts[0] - t_start:.2f} s late"
        assert t_end - ts[-1] <= 1.0
        assert gaps[name] <= 1.0, f"{name} went {gaps[name]:.2f} s without a frame"
        assert len([t for t in ts if t <= t_end]) >= 60 * 25  # ~30 fps delivered, all taken
    for c in good_caps:
        assert c.reconnects == 0
    for c in bad_caps:
        assert c.reconnects >= 1  # retried, and each retry hung in its own process
    text = caplog.text
    assert "camera=refused connecting -> offline: connection refused" in text
    for name in ("hang_http1", "hang_http2", "hang_rtsp1", "hang_rtsp2"):
        assert f"camera={name} connecting -> offline: no answer within open_timeout 10 s" in text
    assert "Hunter22" not in text
    # One line per state change: the bad cameras went offline once and stayed there.
    for c in bad_caps:
        changes = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"camera={c.camera} ")]
        assert len(changes) == 2, changes  # connecting -> offline, offline -> stopped
    # Nothing native reached this process's stderr (or stdout): FFmpeg/OpenCV speak into the capture
    # processes' pipes and come back as log records.
    out, err = capfd.readouterr()
    for marker in NATIVE_MARKERS:
        assert marker not in err, err[-2000:]
        assert marker not in out, out[-2000:]
    assert stop_s < 5.0
    assert wait_until(lambda: not capture_children(), 2.0), capture_children()


def test_shutdown_leaves_no_capture_process_behind(
    rtsp_server: Callable[..., RtspServer], clip30: Path, silent_port: int, launcher: CaptureLauncher | None
) -> None:
    server = rtsp_server(clip30)
    caps = [
        Capture("good", server.url(), launcher=launcher),
        Capture("hanging", f"rtsp://127.0.0.1:{silent_port}/x", launcher=launcher),
        Capture("refused", f"rtsp://127.0.0.1:{refused_port()}/x", launcher=launcher),
        Capture("file", str(clip30), loop=True, realtime=True, launcher=launcher),
    ]
    for c in caps:
        c.start()
    extra = 0 if launcher is None else 1  # the launcher process itself
    assert wait_until(lambda: len(capture_children()) == 4 + extra, 10.0), capture_children()
    assert wait_until(lambda: caps[0].state == ONLINE and caps[3].state == ONLINE, 10.0)
    pids = [c.worker_pid for c in caps]
    t0 = time.monotonic()
    assert all(c.stop(5.0) for c in caps)
    took = time.monotonic() - t0
    assert took < 2.0, f"stop took {took:.2f} s"
    assert len(capture_children()) == extra
    assert not any(alive(p) for p in pids if p is not None)  # reaped, not zombies
    if launcher is not None:
        launcher.close()
        assert capture_children() == []


def test_a_crashed_or_hung_capture_process_is_replaced(
    rtsp_server: Callable[..., RtspServer],
    clip30: Path,
    caplog: pytest.LogCaptureFixture,
    launcher: CaptureLauncher | None,
) -> None:
    server = rtsp_server(clip30)
    states: list[str] = []
    cap = Capture(
        "cam", server.url(), stall_timeout=2.0, on_state=lambda _c, s: states.append(s), launcher=launcher
    )
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        cap.start()
        try:
            assert wait_until(lambda: cap.state == ONLINE, 10.0)
            first = cap.worker_pid
            assert first is not None
            os.kill(first, signal.SIGKILL)  # a crash (segfault in a decoder, OOM killer)
            assert wait_until(lambda: cap.state == STALLED, 3.0), states
            assert wait_until(lambda: cap.state == ONLINE, 8.0), states
            second = cap.worker_pid
            assert second is not None
            assert second != first
            assert cap.take(2.0) is not None

            os.kill(second, signal.SIGSTOP)  # hung in a native call: alive, silent
            t0 = time.monotonic()
            assert wait_until(lambda: cap.state == STALLED, 2.0 + 3.0 + 1.0), states
            assert wait_until(lambda: cap.state == ONLINE, 8.0), states
            hung_for = time.monotonic() - t0
            third = cap.worker_pid
            assert third is not None
            assert third != second
            assert not alive(second)  # killed, not left stopped
        finally:
            cap.stop(5.0)
    # A launcher's children are reaped by the kernel, so their exit status is not known.
    assert ("killed by signal 9" if launcher is None else "capture process ended") in caplog.text
    assert "capture process hung; killed" in caplog.text
    assert hung_for < 12.0
    assert len(capture_children()) == (0 if launcher is None else 1)


_ORPHAN_SCRIPT = """
import sys, time
from edge.capture import Capture, CaptureLauncher
launcher = CaptureLauncher() if sys.argv[3] == "launcher" else None
caps = [Capture(f"c{i}", sys.argv[1], loop=True, realtime=True, launcher=launcher) for i in range(2)]
caps.append(Capture("hang", sys.argv[2], launcher=launcher))
for c in caps:
    c.start()
while sum(c.worker_pid is not None for c in caps) < 3 or caps[0].take(0.1) is None:
    time.sleep(0.05)
print(" ".join(str(c.worker_pid) for c in caps) + (f" {launcher.pid}" if launcher else ""), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", ["launcher", "interpreter"])
def test_capture_processes_die_with_a_sigkilled_daemon(clip30: Path, silent_port: int, how: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(clip30), f"rtsp://127.0.0.1:{silent_port}/x", how],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == (4 if how == "launcher" else 3), line
        assert all(alive(p) for p in pids)
        proc.kill()  # SIGKILL: no atexit, no finally, no stop()
        proc.wait(10)
        assert wait_until(lambda: not any(alive(p) for p in pids), 3.0), [p for p in pids if alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_refused_port_is_logged_as_refused_at_once(caplog: pytest.LogCaptureFixture) -> None:
    cap = Capture("cam", f"rtsp://127.0.0.1:{refused_port()}/stream")
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        cap.start()
        t0 = time.monotonic()
        try:
            assert wait_until(lambda: cap.state == OFFLINE, 5.0)
            took = time.monotonic() - t0
        finally:
            cap.stop(5.0)
    assert took < 2.0  # not after open_timeout
    assert "camera=cam connecting -> offline: connection refused" in caplog.text


def test_an_open_that_hangs_past_its_timeout_is_killed_alone(
    rtsp_server: Callable[..., RtspServer], clip30: Path, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A capture process frozen inside open (SIGSTOP: FFmpeg's own timeout cannot fire) is killed at
    open_timeout + 3 s and replaced, while a healthy camera beside it keeps delivering."""
    server = rtsp_server(clip30)
    good = Capture("good", server.url())
    stuck = Capture("stuck", f"rtsp://127.0.0.1:{silent_port}/x", open_timeout=2.0)
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        good.start()
        stuck.start()
        try:
            assert wait_until(lambda: stuck.worker_pid is not None and good.state == ONLINE, 10.0)
            frozen = stuck.worker_pid
            assert frozen is not None
            os.kill(frozen, signal.SIGSTOP)
            t0 = time.monotonic()
            arrivals = []
            while time.monotonic() - t0 < 7.0:
                if good.take(0.5) is not None:
                    arrivals.append(time.monotonic())
            assert not alive(frozen)
            assert wait_until(lambda: stuck.worker_pid not in (None, frozen), 5.0)
        finally:
            good.stop(5.0)
            stuck.stop(5.0)
    killed = "camera=stuck connecting -> offline: no answer within open_timeout 2 s (capture process killed)"
    assert killed in caplog.text
    assert len(arrivals) > 150  # ~30 fps throughout
    assert max(b - a for a, b in itertools.pairwise(arrivals)) < 1.0
    assert good.reconnects == 0
