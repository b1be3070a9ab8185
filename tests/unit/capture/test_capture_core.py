"""Capture's pure parts (backoff, fps cap, notifier) and its reader thread against fake sources."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from edge.backoff import Backoff
from edge.capture import (
    CONNECTING,
    OFFLINE,
    ONLINE,
    STALLED,
    STOPPED,
    Capture,
    FpsCap,
    FrameNotifier,
    source_kind,
)
from edge.metrics import Metrics

pytestmark = pytest.mark.timing  # wall-clock bounds: run alone (see pyproject.toml)


class FakeSource:
    """Serves ``frames`` tiny frames at ``interval`` seconds each, then fails (a dropped stream)."""

    def __init__(
        self,
        frames: int,
        *,
        interval: float = 0.0,
        fps: float = 30.0,
        block: threading.Event | None = None,
        frame_count: float = 0.0,
    ) -> None:
        self.left = frames
        self.interval = interval
        self.fps = fps
        self.block = block
        self.frame_count = frame_count
        self.n = 0
        self.released = False

    def grab(self) -> bool:
        if self.block is not None:
            self.block.wait(30)
        if self.left <= 0:
            return False
        if self.interval:
            time.sleep(self.interval)
        self.left -= 1
        self.n += 1
        return True

    def retrieve(self, image: np.ndarray | None = None, flag: int = 0) -> tuple[bool, np.ndarray]:
        if image is None:
            image = np.zeros((4, 6, 3), np.uint8)
        image[0, 0, 0] = self.n % 256
        return True, image

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FPS:
            return self.fps
        if prop_id == cv2.CAP_PROP_POS_MSEC:
            return (self.n - 1) * 1000.0 / self.fps
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return self.frame_count
        return 0.0

    def release(self) -> None:
        self.released = True


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


# --------------------------------------------------------------------------------------------------
# pure parts


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("rtsp://user:pw@10.0.0.5:554/s", "stream"),
        ("RTSP://cam/s", "stream"),
        ("https://host/live.m3u8", "stream"),
        ("/dev/video0", "device"),
        ("0", "device"),
        ("videos/demo.mp4", "file"),
        ("/abs/path.mkv", "file"),
    ],
)
def test_source_kind(source: str, kind: str) -> None:
    assert source_kind(source) == kind


@pytest.mark.parametrize(
    ("source_fps", "target", "keep_every"), [(30.0, 15.0, 2), (30.0, 5.0, 6), (30.0, 10.0, 3)]
)
def test_fps_cap_thins_evenly(source_fps: float, target: float, keep_every: int) -> None:
    cap = FpsCap(target)
    kept = [k for k in range(300) if cap.accept(k / source_fps)]
    assert len(kept) == 300 // keep_every
    assert set(np.diff(kept).tolist()) == {keep_every}  # evenly spaced: no bursts


@pytest.mark.parametrize(("target", "keep_every"), [(15.0, 2), (5.0, 6)])
def test_fps_cap_is_not_fooled_by_timestamp_jitter(target: float, keep_every: int) -> None:
    rng = np.random.default_rng(5)
    jitter = rng.uniform(-0.008, 0.008, 600)  # RTP timestamps wobble by milliseconds
    cap = FpsCap(target, source_fps=30.0)
    kept = [k for k in range(600) if cap.accept(k / 30.0 + jitter[k])]
    assert set(np.diff(kept).tolist()) == {keep_every}


def test_fps_cap_on_ntsc_rate_stays_within_one_frame() -> None:
    cap = FpsCap(15.0)
    kept = sum(cap.accept(k * 1001 / 30000) for k in range(2997))  # 100 s of 29.97 fps
    assert abs(kept - 1500) <= 1


def test_fps_cap_restarts_after_a_jump_in_stream_time() -> None:
    cap = FpsCap(5.0)
    assert cap.accept(10.0)
    assert not cap.accept(10.05)
    assert cap.accept(10.2)
    assert cap.accept(0.0)  # file looped / stream reconnected: timestamps start again
    assert not cap.accept(0.03)
    assert cap.accept(100.0)  # a gap longer than resync_s
    assert not cap.accept(100.1)


def test_fps_cap_rejects_nonpositive_rate() -> None:
    with pytest.raises(ValueError, match="fps cap"):
        FpsCap(0.0)


def test_notifier_wakes_a_waiter_and_does_not_miss_an_earlier_notify() -> None:
    n = FrameNotifier()
    v = n.version
    n.notify()  # happens between the consumer's poll and its wait
    t0 = time.monotonic()
    assert n.wait(v, timeout=5.0) == v + 1
    assert time.monotonic() - t0 < 1.0
    v = n.version
    threading.Timer(0.05, n.notify).start()
    assert n.wait(v, timeout=5.0) == v + 1
    t0 = time.monotonic()
    assert n.wait(n.version, timeout=0.05) == v + 1
    assert time.monotonic() - t0 >= 0.04


# --------------------------------------------------------------------------------------------------
# the reader thread with fake sources


def test_latest_frame_wins_and_every_frame_is_accounted_for() -> None:
    metrics = Metrics(CollectorRegistry())
    src = FakeSource(200, interval=0.001)
    cap = Capture("cam", "rtsp://h/s", metrics=metrics, opener=lambda: src, backoff_base=10.0)
    cap.start()
    taken = []
    while src.left > 0:
        f = cap.take(0.5)
        if f is not None:
            taken.append(f)
            time.sleep(0.01)  # a consumer slower than the source
    assert wait_for(lambda: cap.state == STALLED)
    cap.stop(1.0)
    seqs = [f.seq for f in taken]
    assert seqs == sorted(set(seqs))
    drops = cap.drops
    assert drops["superseded"] > 0
    assert cap.frames_captured == 200
    assert len(taken) + drops["superseded"] + drops["fps_cap"] + drops["shutdown"] == 200
    reg = metrics.registry
    assert reg.get_sample_value("edge_frames_captured_total", {"camera": "cam"}) == 200
    assert reg.get_sample_value(
        "edge_frames_dropped_total", {"camera": "cam", "reason": "superseded"}
    ) == drops["superseded"]
    assert reg.get_sample_value("edge_camera_state", {"camera": "cam", "state": "stopped"}) == 1.0


def test_frames_carry_camera_seq_and_both_timestamps() -> None:
    src = FakeSource(3)
    cap = Capture("door", "rtsp://h/s", opener=lambda: src, backoff_base=10.0)
    before_wall = time.time()
    cap.start()
    f = cap.take(2.0)
    cap.stop(1.0)
    assert f is not None
    assert f.camera == "door"
    assert f.seq >= 0
    assert f.captured_mono <= time.monotonic()
    assert before_wall - 1 <= f.captured_wall <= time.time()
    assert f.image.shape == (4, 6, 3)


def test_state_machine_reconnects_with_backoff_and_reports_each_change_once() -> None:
    script = [FakeSource(5), None, None, FakeSource(5)]
    opens: list[float] = []

    def opener() -> FakeSource | None:
        opens.append(time.monotonic())
        return script.pop(0) if script else None

    seen: list[str] = []
    cap = Capture(
        "cam",
        "rtsp://h/s",
        opener=opener,
        backoff_base=0.01,
        backoff_cap=0.02,
        on_state=lambda _cam, s: seen.append(s),
        rng=random.Random(1),
    )
    cap.start()
    assert wait_for(lambda: len(opens) >= 6)
    cap.stop(1.0)
    # connecting is the initial state; every later change is reported exactly once, in order.
    assert seen[:4] == [ONLINE, STALLED, OFFLINE, ONLINE]
    assert seen[-1] == STOPPED
    assert cap.reconnects >= 5
    assert all(b - a <= 1.0 for a, b in itertools.pairwise(opens))


def test_backoff_grows_while_failing() -> None:
    opens: list[float] = []

    def opener() -> None:
        opens.append(time.monotonic())

    rng = random.Random(3)
    cap = Capture("cam", "rtsp://h/s", opener=opener, backoff_base=0.01, backoff_cap=0.16, rng=rng)
    cap.start()
    assert wait_for(lambda: len(opens) >= 9)
    cap.stop(1.0)
    gaps = np.diff(opens)[:8]
    # Same seed, same policy: the thread waited the delays of edge.backoff.Backoff in turn.
    replay = Backoff(0.01, 0.16, rng=random.Random(3))
    want = np.array([replay.next() for _ in range(8)])
    assert np.all(gaps >= want - 0.002)
    assert np.all(gaps <= want + 0.2)  # scheduling slack on a loaded machine


def test_stop_is_bounded_while_blocked_in_open() -> None:
    release = threading.Event()

    def opener() -> FakeSource:
        release.wait(30)
        return FakeSource(1000)

    seen: list[str] = []
    cap = Capture("cam", "rtsp://h/s", opener=opener, on_state=lambda _c, s: seen.append(s))
    cap.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    ended = cap.stop(timeout=0.3)
    assert time.monotonic() - t0 < 1.0
    assert not ended  # still inside the blocking call ...
    assert cap.state == STOPPED
    release.set()  # ... which returns later; the thread then ends without touching the state
    assert wait_for(lambda: not cap.running)
    assert cap.state == STOPPED
    assert seen == [STOPPED]
    assert cap.poll() is None


def test_stop_is_bounded_while_blocked_in_read() -> None:
    block = threading.Event()
    src = FakeSource(1000, block=block)
    cap = Capture("cam", "rtsp://h/s", opener=lambda: src)
    cap.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    cap.stop(timeout=0.3)
    assert time.monotonic() - t0 < 1.0
    assert cap.state == STOPPED
    block.set()
    assert wait_for(lambda: not cap.running)
    assert src.released


def test_take_wakes_up_on_stop() -> None:
    cap = Capture("cam", "rtsp://h/s", opener=lambda: FakeSource(0), backoff_base=10.0)
    cap.start()
    threading.Timer(0.1, cap.stop).start()
    t0 = time.monotonic()
    assert cap.take(timeout=5.0) is None
    assert time.monotonic() - t0 < 2.0


def test_one_notifier_serves_several_cameras() -> None:
    notifier = FrameNotifier()
    caps = [
        Capture(f"c{i}", "rtsp://h/s", opener=lambda: FakeSource(50, interval=0.002), notify=notifier,
                backoff_base=10.0)
        for i in range(3)
    ]
    for c in caps:
        c.start()
    got: dict[str, int] = {}
    deadline = time.monotonic() + 5.0
    while len(got) < 3 and time.monotonic() < deadline:
        v = notifier.version
        for c in caps:
            f = c.poll()
            if f is not None:
                got[f.camera] = f.seq
        if len(got) < 3:
            notifier.wait(v, 0.5)
    for c in caps:
        c.stop(1.0)
    assert set(got) == {"c0", "c1", "c2"}


def test_file_end_is_stopped_and_early_end_is_offline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"x")
    full = Capture("a", str(path), opener=lambda: FakeSource(30, frame_count=30), lossless=True)
    cut = Capture("b", str(path), opener=lambda: FakeSource(10, frame_count=30), lossless=True)
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        for c in (full, cut):
            c.start()
            n = 0
            while c.take(2.0) is not None:
                n += 1
            assert wait_for(lambda c=c: not c.running)
            c.stop(1.0)
    assert "camera=a online -> stopped: end of file after 30 frames" in caplog.text
    assert "camera=b online -> offline: file ended early after 10 of 30 frames" in caplog.text


def test_lossless_file_mode_delivers_every_frame_and_fps_cap_uses_stream_time(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"x")
    cap = Capture("a", str(path), fps=5.0, lossless=True, opener=lambda: FakeSource(90, frame_count=90))
    cap.start()
    seqs = []
    while (f := cap.take(2.0)) is not None:
        seqs.append(f.seq)
        time.sleep(0.002)
    cap.stop(1.0)
    assert seqs == list(range(0, 90, 6))  # 3 s of 30 fps at 5 fps, evenly
    assert cap.drops == {"fps_cap": 75, "superseded": 0, "shutdown": 0}


def test_missing_file_goes_offline_without_retrying(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cap = Capture("a", str(tmp_path / "missing.mp4"))
    with caplog.at_level(logging.INFO, logger="edge.capture"):
        cap.start()
        assert wait_for(lambda: not cap.running)
    assert cap.state == OFFLINE
    assert "no such file" in caplog.text
    cap.stop(1.0)


def test_credentials_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    script = [FakeSource(2)]
    cap = Capture(
        "cam",
        "rtsp://admin:S3cretPw@10.1.2.3:554/live",
        opener=lambda: script.pop(0) if script else None,
        backoff_base=0.01,
        backoff_cap=0.01,
    )
    with caplog.at_level(logging.DEBUG, logger="edge.capture"):
        cap.start()
        assert wait_for(lambda: cap.state == OFFLINE)
        cap.stop(1.0)
    assert "S3cretPw" not in caplog.text
    assert "rtsp://admin:***@10.1.2.3:554/live" in caplog.text


def test_initial_state_and_argument_checks() -> None:
    cap = Capture("cam", "rtsp://h/s", opener=lambda: None)
    assert cap.state == CONNECTING
    assert cap.fps_estimate == 0.0
    with pytest.raises(ValueError, match="transport"):
        Capture("cam", "rtsp://h/s", transport="http")
    with pytest.raises(ValueError, match="fps"):
        Capture("cam", "rtsp://h/s", fps=0)
    cap.start()
    with pytest.raises(RuntimeError, match="already started"):
        cap.start()
    cap.stop(1.0)


def test_read_timeout_never_exceeds_stall_timeout() -> None:
    assert Capture("c", "rtsp://h/s", stall_timeout=2.0, read_timeout=30.0).read_timeout == 2.0
    assert Capture("c", "rtsp://h/s", stall_timeout=2.0).read_timeout == 2.0
    assert Capture("c", "rtsp://h/s", stall_timeout=5.0, read_timeout=1.0).read_timeout == 1.0


def test_options_gate_lets_same_transport_opens_overlap_and_serialises_others() -> None:
    from edge.capture_slot import OptionsGate as _OptionsGate

    gate = _OptionsGate()
    stop = threading.Event()
    order: list[str] = []
    with gate.use("rtsp_transport;tcp", stop) as a:
        assert a
        with gate.use("rtsp_transport;tcp", stop) as b:  # same value: no waiting
            assert b

        def udp() -> None:
            with gate.use("rtsp_transport;udp", stop):
                order.append("udp")

        t = threading.Thread(target=udp)
        t.start()
        time.sleep(0.2)
        order.append("tcp done")  # the udp open is still waiting for the tcp one to finish
    t.join(2)
    assert order == ["tcp done", "udp"]
    stop.set()
    with gate.use("rtsp_transport;tcp", stop) as entered:
        assert not entered  # a stopping capture does not open at all


class BrokenSource(FakeSource):
    def retrieve(self, image: np.ndarray | None = None, flag: int = 0) -> tuple[bool, np.ndarray]:
        raise ZeroDivisionError("a bug")


def test_a_bug_in_the_reader_is_loud_and_shows_in_the_state(caplog: pytest.LogCaptureFixture) -> None:
    crashed: list[BaseException | None] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: crashed.append(args.exc_value)
    try:
        cap = Capture("cam", "rtsp://h/s", opener=lambda: BrokenSource(5))
        with caplog.at_level(logging.INFO, logger="edge.capture"):
            cap.start()
            assert wait_for(lambda: not cap.running)
    finally:
        threading.excepthook = old_hook
    assert cap.state == OFFLINE
    assert "capture thread crashed" in caplog.text
    assert len(crashed) == 1
    assert isinstance(crashed[0], ZeroDivisionError)
    cap.stop(1.0)
