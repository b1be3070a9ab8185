"""Provider choice, model inspection, class names and the batching thread (edge.detector), without models."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge.clock import FakeClock
from edge.detector import (
    BatchingDetector,
    Detector,
    class_ids_for,
    inspect_model,
    resolve_providers,
)
from edge.errors import ModelError
from edge.metrics import Metrics
from edge.types import Detections, Frame

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_ONLY = ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("available", "cuda_devices", "trt", "want"),
    [
        (ALL, 0, False, ["cpu"]),  # onnxruntime-gpu on a machine without a GPU
        (ALL, 1, False, ["cuda", "cpu"]),
        (ALL, 2, True, ["tensorrt", "cuda", "cpu"]),
        (CPU_ONLY, 1, True, ["cpu"]),  # plain onnxruntime wheel on a GPU machine
    ],
)
def test_auto_keeps_what_can_run_here(available, cuda_devices, trt, want):
    assert resolve_providers("auto", available, cuda_devices=cuda_devices, tensorrt_libs=trt) == want
    # The config holds providers as a list: [auto] means the same.
    assert resolve_providers(["auto"], available, cuda_devices=cuda_devices, tensorrt_libs=trt) == want


@pytest.mark.parametrize("asked", ["cuda", ["cuda"], ["cuda", "cpu"], ["tensorrt", "cuda", "cpu"]])
def test_asking_for_a_gpu_without_one_is_an_error_pointing_at_auto(asked):
    with pytest.raises(ModelError, match="providers: auto") as err:
        resolve_providers(asked, ALL, cuda_devices=0, tensorrt_libs=False)
    assert "no CUDA device" in str(err.value)


def test_asking_for_tensorrt_without_its_libraries_is_an_error():
    with pytest.raises(ModelError, match="libnvinfer"):
        resolve_providers(["tensorrt"], ALL, cuda_devices=1, tensorrt_libs=False)


def test_a_provider_missing_from_the_wheel_is_an_error():
    with pytest.raises(ModelError, match="not built into this onnxruntime"):
        resolve_providers(["cuda"], CPU_ONLY, cuda_devices=1, tensorrt_libs=False)


@pytest.mark.parametrize("asked", [["gpu"], [], "metal", ["auto", "cpu"]])
def test_unknown_provider_names_are_rejected(asked):
    with pytest.raises(ValueError, match="providers"):
        resolve_providers(asked, ALL, cuda_devices=1, tensorrt_libs=True)


def test_explicit_names_are_case_insensitive():
    assert resolve_providers(["CUDA", "Cpu"], ALL, cuda_devices=1, tensorrt_libs=False) == ["cuda", "cpu"]


NAMES = ["person", "bicycle", "car"]


def test_class_ids_for_names():
    assert class_ids_for(NAMES, ["car", "person"]) == [2, 0]
    with pytest.raises(ValueError, match=r"unknown class name\(s\) \['cat'\]; the model knows: person"):
        class_ids_for(NAMES, ["person", "cat"])


def fake_session(
    input_shape=("batch", 3, 640, 640),
    output_shape=("batch", 7, 8400),
    meta=None,
    input_type="tensor(float)",
):
    meta = {"names": repr(dict(enumerate(NAMES))), "task": "detect"} if meta is None else meta
    return SimpleNamespace(
        get_inputs=lambda: [SimpleNamespace(name="images", shape=list(input_shape), type=input_type)],
        get_outputs=lambda: [SimpleNamespace(name="output0", shape=list(output_shape), type="tensor(float)")],
        get_modelmeta=lambda: SimpleNamespace(custom_metadata_map=meta),
    )


def test_inspect_reads_size_batch_mode_and_names():
    info = inspect_model(fake_session(), Path("m.onnx"))
    assert info.input_size == (640, 640)
    assert info.dynamic_batch
    assert info.class_names == NAMES
    assert (info.input_name, info.output_name) == ("images", "output0")
    fixed = inspect_model(fake_session(input_shape=(1, 3, 384, 640), output_shape=(1, 7, 5040)), Path("m"))
    assert not fixed.dynamic_batch
    assert fixed.input_size == (640, 384)


def test_symbolic_input_size_comes_from_imgsz_metadata():
    meta = {"names": repr(dict(enumerate(NAMES))), "imgsz": "[320, 480]"}
    info = inspect_model(fake_session(input_shape=("b", 3, "h", "w"), meta=meta), Path("m"))
    assert info.input_size == (480, 320)


def test_labels_file_overrides_metadata(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n\nc\n", encoding="utf-8")
    assert inspect_model(fake_session(), Path("m"), labels).class_names == ["a", "b", "c"]
    labels.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ModelError, match="4 \\+ 2 rows from labels file"):
        inspect_model(fake_session(), Path("m"), labels)


def test_no_names_anywhere_numbers_the_classes():
    assert inspect_model(fake_session(meta={}), Path("m")).class_names == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"output_shape": (1, 8400, 7)}, r"expected output \[batch, 4 \+ classes, anchors\]"),  # transposed
        ({"output_shape": (1, 300, 6)}, r"expected output"),  # end-to-end export with NMS inside
        ({"output_shape": (1, 25200, 8)}, r"expected output"),  # YOLOv5 (objectness column)
        ({"output_shape": (1, 84, 8400)}, r"4 \+ 3 rows from its names metadata"),  # wrong class count
        ({"output_shape": (1, 7)}, r"expected output"),
        ({"input_shape": (1, 640, 640, 3)}, r"expected a float32 input \[batch, 3, height, width\]"),
        ({"input_type": "tensor(float16)"}, r"float32 input"),
        ({"input_shape": (4, 3, 640, 640)}, r"fixed batch 4 is not supported"),
        ({"input_shape": ("b", 3, "h", "w")}, r"input size is symbolic"),
        ({"meta": {"task": "segment"}}, r"expected a detect model, found task 'segment'"),
    ],
)
def test_unsupported_models_are_rejected_saying_what_was_expected(kwargs, match):
    with pytest.raises(ModelError, match=match):
        inspect_model(fake_session(**kwargs), Path("m.onnx"))


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="file not found"):
        Detector(tmp_path / "nope.onnx")


def test_corrupt_model_file_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Detector(bad, providers="auto")


class FakeDetector:
    """Stands in for Detector in BatchingDetector tests: one row per image, its value the batch index."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[int] = []
        self.warmed = 0
        self.fail_on = fail_on

    def warmup(self, batch_size: int = 1) -> None:
        self.warmed = batch_size

    def infer(self, images):
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            raise RuntimeError("boom")
        self.batches.append(len(images))
        return [Detections.from_arrays([[0, 0, 1, 1]], [len(self.batches)], [0]) for _ in images]


def discard(frame: Frame, dets: Detections) -> None:
    """A deliver() that drops the results."""


def make_frame(camera: str, seq: int, t: float = 0.0) -> Frame:
    return Frame(np.zeros((4, 4, 3), np.uint8), camera, seq, t, 0.0)


class Source:
    """A take() that hands out queued frames, up to max_n, waiting at most timeout_s for the first."""

    def __init__(self) -> None:
        self.q: queue.Queue[Frame] = queue.Queue()
        self.calls: list[tuple[int, float]] = []

    def take(self, max_n: int, timeout_s: float) -> list[Frame]:
        self.calls.append((max_n, timeout_s))
        try:
            out = [self.q.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while len(out) < max_n:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                break
        return out


def test_batching_thread_delivers_every_frame_in_order_and_counts_progress():
    source = Source()
    delivered: list[tuple[str, int]] = []
    done = threading.Event()

    def deliver(frame: Frame, dets: Detections) -> None:
        assert len(dets) == 1
        delivered.append((frame.camera, frame.seq))
        if len(delivered) == 10:
            done.set()

    fake = FakeDetector()
    metrics = Metrics()
    worker = BatchingDetector(
        fake, source.take, deliver, batch_size=4, max_batch_wait_ms=20, metrics=metrics, clock=FakeClock(2.0)
    )
    for seq in range(5):
        source.q.put(make_frame("a", seq, 1.5))
        source.q.put(make_frame("b", seq, 1.5))
    worker.start()
    assert done.wait(10)
    assert worker.stop(5)
    assert delivered == [(c, s) for s in range(5) for c in ("a", "b")]
    assert fake.warmed == 4
    assert all(n <= 4 for n in fake.batches)
    assert sum(fake.batches) == 10
    assert worker.frames_done == 10
    assert worker.batches_done == len(fake.batches)
    assert source.calls[0] == (4, 0.02)
    assert worker.ready.is_set()
    age = metrics.registry.get_sample_value("edge_frame_age_seconds_sum", {"camera": "a"})
    assert age == pytest.approx(5 * 0.5)


def test_batching_thread_is_named_and_stops_when_idle():
    worker = BatchingDetector(FakeDetector(), Source().take, discard, name="detector-main")
    worker.start()
    assert worker.ready.wait(5)
    assert "detector-main" in [t.name for t in threading.enumerate()]
    assert worker.stop(5)
    assert not worker.is_alive()


def test_a_crash_in_the_thread_is_kept_and_ends_it(caplog):
    source = Source()
    source.q.put(make_frame("a", 0))
    worker = BatchingDetector(FakeDetector(fail_on=0), source.take, discard)
    # The re-raised exception reaches threading.excepthook; keep pytest's unraisable-thread check quiet
    # about the one we cause on purpose.
    seen: list[BaseException | None] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_value)
    try:
        worker.start()
        worker._thread.join(5)
    finally:
        threading.excepthook = old_hook
    assert not worker.is_alive()
    assert isinstance(worker.failure, RuntimeError)
    assert worker.frames_done == 0
    assert "detector thread detector crashed" in caplog.text
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"batch_size": 0}, "batch_size"), ({"max_batch_wait_ms": -1}, "max_batch_wait")]
)
def test_batching_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchingDetector(FakeDetector(), Source().take, discard, **kwargs)
