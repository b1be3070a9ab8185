"""The overlapped detector thread (edge.detector_thread) and fixed batch sizes, without models."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.backends.base import padded_sizes
from edge.detector import BatchingDetector
from edge.preprocess import Letterbox
from edge.types import Detections, Frame


@pytest.mark.parametrize(
    ("max_batch", "sizes"),
    [
        (1, (1,)),
        (2, (1, 2)),
        (3, (1, 2, 3)),
        (4, (1, 2, 4)),
        (8, (1, 2, 4, 8)),
        (12, (1, 2, 4, 8, 12)),
        (32, (1, 2, 4, 8, 16, 32)),
    ],
)
def test_padded_sizes(max_batch, sizes):
    assert padded_sizes(max_batch) == sizes


def test_padded_sizes_need_a_positive_batch():
    with pytest.raises(ValueError, match="max_batch"):
        padded_sizes(0)


class SplitDetector:
    """Stands in for Detector with the split API the overlapped thread uses. Each frame's detection
    carries its (camera index, seq) in the box, so a mix-up between frames, batches or buffers shows.
    Runs take ``run_s`` and record how many run at once."""

    def __init__(self, run_s: float = 0.0, fail_in: str | None = None, warm_s: float = 0.0) -> None:
        self.max_batch = 8
        self.provider = "cpu"
        self.run_s = run_s
        self.fail_in = fail_in
        self.warm_s = warm_s
        self.runs: list[int] = []
        self.warm_calls: list[str] = []

    def warmup(self, batch_size=1, *, stop=None, progress=None):
        for step in ("a", "b", "c"):
            if stop is not None and stop.is_set():
                return False
            if progress is not None:
                progress(f"warming {step}")
            self.warm_calls.append(step)
            time.sleep(self.warm_s)
        return True

    def new_letterbox(self) -> Letterbox:
        return Letterbox(32, 32, max_batch=self.max_batch)

    def run_letterboxed(self, letterbox: Letterbox, n: int) -> np.ndarray:
        if self.fail_in == "run":
            raise RuntimeError("boom in run")
        time.sleep(self.run_s)
        self.runs.append(n)
        # The first pixel of each slot encodes the frame (see frame()); read it back through the buffer.
        return letterbox.batch(n)[:, 0, 0, :2].copy()

    def decode(self, out: np.ndarray, params: np.ndarray) -> list[Detections]:
        if self.fail_in == "decode":
            raise RuntimeError("boom in decode")
        return [Detections.from_arrays([[r[0], r[1], r[0] + 1, r[1] + 1]], [0.9], [0]) for r in out]


def discard(frame: Frame, dets: Detections) -> None:
    """A deliver() that drops the results."""


def frame(cam: int, seq: int) -> Frame:
    image = np.zeros((32, 32, 3), np.uint8)
    image[0, 0] = (seq % 200, 0, cam)  # BGR: the float tensor gets R=cam/255 in channel 0, B=seq/255 in 2
    image[0, 1] = (seq % 200, 0, cam)
    return Frame(image, f"cam{cam}", seq, 0.0, 0.0)


class Cameras:
    """take(): the pending frames of ``cams`` cameras, up to max_n, in camera order, then seq."""

    def __init__(self, cams: int, per_cam: int) -> None:
        self.pending = [frame(c, s) for s in range(per_cam) for c in range(cams)]
        self.lock = threading.Lock()

    def take(self, max_n: int, timeout_s: float) -> list[Frame]:
        with self.lock:
            batch, self.pending[:] = self.pending[:max_n], self.pending[max_n:]
        if not batch:
            time.sleep(timeout_s)
        return batch


def test_every_frame_is_delivered_once_in_order_with_its_own_result():
    cams = Cameras(3, 40)
    got: list[tuple[str, int, float]] = []
    done = threading.Event()

    def deliver(f: Frame, d: Detections) -> None:
        got.append((f.camera, f.seq, float(d.xyxy[0, 0])))
        if len(got) == 120:
            done.set()

    det = SplitDetector(run_s=0.002)
    worker = BatchingDetector(det, cams.take, deliver, batch_size=5, max_batch_wait_ms=1, prep_threads=2)
    assert worker.overlap
    worker.start()
    assert done.wait(20)
    assert worker.stop(5)
    assert not worker.is_alive()
    assert [(c, s) for c, s, _ in got] == [(f"cam{c}", s) for s in range(40) for c in range(3)]
    for camera, _seq, x in got:  # channel 0 is R = the camera index / 255: the frame's own result
        assert round(x * 255) == int(camera[3:])
    assert worker.frames_done == 120
    assert worker.batches_done == len(det.runs) == 24
    assert {t.name for t in worker._threads} == {"detector", "detector-run", "detector-decode"}


def test_frames_waiting_make_full_batches():
    """With frames always pending, every run gets a full batch (the next is gathered while one runs)."""
    cams = Cameras(4, 40)
    done = threading.Event()
    count = [0]

    def deliver(f: Frame, d: Detections) -> None:
        count[0] += 1
        if count[0] == 160:
            done.set()

    det = SplitDetector(run_s=0.02)
    det.max_batch = 16
    worker = BatchingDetector(det, cams.take, deliver, batch_size=16, max_batch_wait_ms=0)
    worker.start()
    assert done.wait(20)
    worker.stop(5)
    assert len(det.runs) == 10
    assert set(det.runs) == {16}


@pytest.mark.parametrize("where", ["run", "decode"])
def test_a_crash_in_any_thread_sets_failed_ends_all_and_is_logged_once(caplog, where):
    cams = Cameras(2, 10)
    seen: list[BaseException | None] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_value)
    try:
        worker = BatchingDetector(SplitDetector(fail_in=where), cams.take, discard)
        worker.start()
        assert worker.failed.wait(5)
        for t in worker._threads:
            t.join(5)
    finally:
        threading.excepthook = old_hook
    assert not worker.is_alive()
    assert isinstance(worker.failure, RuntimeError)
    assert f"boom in {where}" in str(worker.failure)
    assert caplog.text.count("crashed") == 1
    assert f"detector thread detector-{where} crashed" in caplog.text
    assert len(seen) == 1


def test_stop_during_warm_up_ends_the_threads_without_ready():
    statuses: list[str] = []
    det = SplitDetector(warm_s=0.2)
    worker = BatchingDetector(det, Cameras(1, 0).take, discard, on_status=statuses.append)
    worker.start()
    time.sleep(0.1)
    assert worker.stop(5)
    assert not worker.ready.is_set()
    assert not worker.failed.is_set()
    assert det.warm_calls == ["a"]
    assert statuses == ["warming a"]


def test_warm_up_reports_each_step_then_ready():
    statuses: list[str] = []
    worker = BatchingDetector(
        SplitDetector(), Cameras(1, 0).take, discard, on_status=statuses.append
    )
    worker.start()
    assert worker.ready.wait(5)
    assert statuses == ["warming a", "warming b", "warming c"]
    assert worker.stop(5)


def test_batches_larger_than_the_model_takes_keep_the_serial_loop():
    det = SplitDetector()
    det.max_batch = 1
    assert not BatchingDetector(det, Cameras(1, 0).take, discard, batch_size=4).overlap


def test_prep_threads_default_to_one_on_cpu_and_are_checked():
    assert BatchingDetector(SplitDetector(), Cameras(1, 0).take, discard).prep_threads == 1
    gpu = SplitDetector()
    gpu.provider = "cuda"
    assert BatchingDetector(gpu, Cameras(1, 0).take, discard).prep_threads >= 1
    with pytest.raises(ValueError, match="prep_threads"):
        BatchingDetector(SplitDetector(), Cameras(1, 0).take, discard, prep_threads=0)
