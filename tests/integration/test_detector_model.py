"""The detector on the real models and real frames of pedestrians.mp4 (CPU provider)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.paths import models_dir, require

import edge.preprocess as pre
from edge.backends.openvino import openvino_available
from edge.detector import BatchingDetector, Detector, _cuda_device_count
from edge.errors import ModelError
from edge.metrics import Metrics
from edge.types import Detections, Frame

pytestmark = pytest.mark.slow




@pytest.fixture(scope="module")
def frames(video_dir) -> list[np.ndarray]:
    """Four frames a second apart, so the batch holds four different scenes."""
    cap = cv2.VideoCapture(str(video_dir / "pedestrians.mp4"))
    out = []
    for index in (0, 30, 60, 90):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok, f"frame {index} of pedestrians.mp4 could not be decoded"
        out.append(frame)
    cap.release()
    return out


@pytest.fixture(scope="module", params=["yolov8n.onnx", "yolo11n_320.onnx"])
def detector(request) -> Detector:
    path = require(models_dir() / request.param, request.param)
    det = Detector(path, providers="auto", max_batch=4)
    det.warmup()
    return det


def test_warmup_runs_both_letterbox_kernels(monkeypatch):
    # Frames that resize by one source pixel per output (1920x1080 into 640, and input-sized ones) and
    # frames that need cv2.resize (1280x720 into 640) take different compiled kernels: warm-up runs
    # both, so neither compiles on the first real frame.
    calls = set()
    for name in ("_gather_to_chw", "_bgr_to_chw"):
        real = getattr(pre, name)
        monkeypatch.setattr(pre, name, lambda *a, _real=real, _name=name: calls.add(_name) or _real(*a))
    path = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    Detector(path, providers="auto", max_batch=1).warmup()
    assert calls == {"_gather_to_chw", "_bgr_to_chw"}


def test_model_is_described_from_its_graph(detector):
    assert detector.dynamic_batch
    assert detector.input_size in {(640, 640), (320, 320)}
    assert len(detector.class_names) == 80
    assert detector.class_names[0] == "person"
    if _cuda_device_count() == 0:  # backend auto on a CPU-only machine: OpenVINO when installed
        expected = ("openvino", "CPU") if openvino_available() else ("onnxruntime", "cpu")
        assert (detector.backend.name, detector.provider) == expected


def test_people_are_found_with_the_right_class_name(detector, frames):
    for frame, dets in zip(frames, detector.infer(frames), strict=True):
        names = [detector.class_names[c] for c in dets.class_id]
        assert names.count("person") >= 2, names
        person = dets[dets.class_id == detector.class_ids_for(["person"])[0]]
        assert person.confidence.max() > 0.5
        h, w = frame.shape[:2]
        assert np.all((person.xyxy >= 0) & (person.xyxy <= [w, h, w, h]))
        heights = person.xyxy[:, 3] - person.xyxy[:, 1]
        widths = person.xyxy[:, 2] - person.xyxy[:, 0]
        assert np.median(heights / widths) > 1.2  # pedestrians stand upright


def assert_same(a: Detections, b: Detections) -> None:
    # ORT may pick different kernels for batch 4 and batch 1, so scores differ in the last bits; a box
    # sitting right on the threshold could flip, which these frames do not have.
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-3)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)


def test_more_frames_than_max_batch_are_split_and_none_is_nothing(frames, yolo11n_320_path):
    det = Detector(yolo11n_320_path, max_batch=3)
    assert det.infer([]) == []
    results = det.infer(frames + frames[:1])  # 5 frames: runs of 3 and 2
    assert len(results) == 5
    assert_same(results[4], results[0])


def test_a_batch_of_four_equals_four_single_runs(detector, frames):
    batched = detector.infer(frames)
    singles = [detector.infer([f])[0] for f in frames]
    for a, b in zip(batched, singles, strict=True):
        assert_same(a, b)


def test_class_filter_and_names(detector, frames):
    ids = detector.class_ids_for(["person"])
    det = Detector(detector.model_path, classes=ids, max_batch=1)
    dets = det.infer(frames[:1])[0]
    assert set(dets.class_id.tolist()) == {0}
    with pytest.raises(ValueError, match="unknown class name"):
        detector.class_ids_for(["unicorn"])
    by_name = Detector(detector.model_path, classes=["person", 2], max_batch=1)
    assert set(by_name.infer(frames[:1])[0].class_id.tolist()) <= {0, 2}
    with pytest.raises(ValueError, match=r"unknown class name\(s\) \['unicorn'\]"):
        Detector(detector.model_path, classes=["unicorn"])
    with pytest.raises(ValueError, match="out of range"):
        Detector(detector.model_path, classes=[80])


def test_fixed_batch_model_runs_frame_by_frame(frames):
    path = require(models_dir() / "yolov8n_int8.onnx", "yolov8n_int8.onnx")
    det = Detector(path, max_batch=4)
    assert not det.dynamic_batch
    assert det.max_batch == 1
    results = det.infer(frames)
    assert len(results) == 4
    assert all("person" in {det.class_names[c] for c in d.class_id} for d in results)


def test_provider_is_logged_once_and_exported(caplog, yolo11n_320_path, frames):
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="edge.detector"):
        det = Detector(yolo11n_320_path, metrics=metrics, max_batch=2)
        det.warmup(2)
        det.infer(frames[:2])
        det.infer(frames[2:])
    lines = [r.getMessage() for r in caplog.records if "provider=" in r.getMessage()]
    assert len(lines) == 1
    assert f"provider={det.provider}" in lines[0]
    labels = {
        "backend": det.backend.name,
        "provider": det.provider,
        "precision": det.backend.precision,
        "model": "yolo11n_320.onnx",
    }
    assert metrics.registry.get_sample_value("edge_detector_provider_info", labels) == 1.0
    assert metrics.registry.get_sample_value("edge_inference_seconds_count") == 3.0
    assert metrics.registry.get_sample_value("edge_inference_batch_size_sum") == 6.0


def test_cuda_without_a_gpu_is_a_clear_error(yolo11n_320_path):
    if _cuda_device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ModelError, match="providers: auto"):
        Detector(yolo11n_320_path, providers=["cuda", "cpu"])


def test_batching_thread_serves_several_cameras(yolo11n_320_path, frames):
    det = Detector(yolo11n_320_path, max_batch=4)
    pending = [Frame(f, cam, seq, 0.0, 0.0) for seq, f in enumerate(frames) for cam in ("left", "right")]
    lock = threading.Lock()
    got: list[tuple[str, int, int]] = []
    done = threading.Event()

    def take(max_n: int, timeout_s: float) -> list[Frame]:
        with lock:
            batch, pending[:] = pending[:max_n], pending[max_n:]
        if not batch:
            done.wait(timeout_s)
        return batch

    def deliver(frame: Frame, dets: Detections) -> None:
        got.append((frame.camera, frame.seq, len(dets)))
        if len(got) == 8:
            done.set()

    worker = BatchingDetector(det, take, deliver, batch_size=4, name="detector-test")
    worker.start()
    assert done.wait(30)
    assert worker.stop(5)
    assert [(c, s) for c, s, _ in got] == [(c, s) for s in range(4) for c in ("left", "right")]
    assert all(n >= 2 for _, _, n in got)
    assert (worker.batches_done, worker.frames_done) == (2, 8)


def test_bench_prints_one_json_object(capsys, yolo11n_320_path, video_dir):
    from edge.benchmarks.detector import main

    argv = ["--model", str(yolo11n_320_path), "--batch", "2", "--frames", "4", "--runs", "1"]
    assert main([*argv, "--video", str(video_dir / "pedestrians.mp4"), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert {"bare_fps", "stage_fps", "ratio", "provider", "batch"} <= row.keys()
    assert row["batch"] == 2
    assert row["frames"] == 4
    assert row["bare_fps"] > 0
    assert row["stage_fps"] > 0
    assert row["ratio"] == pytest.approx(row["ratio_runs"][0])


def test_bench_reports_a_missing_video(capsys, yolo11n_320_path, tmp_path):
    from edge.benchmarks.detector import main

    assert main(["--model", str(yolo11n_320_path), "--video", str(tmp_path / "none.mp4"), "--json"]) != 0
    assert "cannot be opened" in capsys.readouterr().err


VIDEOS = ["pedestrians.mp4", "car-detection.mp4", "vehicle_counting_input_video.mp4"]


@pytest.fixture(scope="module")
def camera_frames(video_dir) -> list[Frame]:
    """Three shared videos as three cameras (different sizes), 12 frames each, interleaved as capture
    hands them on."""
    per_cam: list[list[np.ndarray]] = []
    for name in VIDEOS:
        cap = cv2.VideoCapture(str(video_dir / name))
        images = []
        while len(images) < 12:
            ok, image = cap.read()
            assert ok, f"{name} ended early"
            for _ in range(4):  # every 5th frame: scenes move between frames
                cap.grab()
            images.append(image)
        cap.release()
        per_cam.append(images)
    return [Frame(per_cam[c][s], VIDEOS[c], s, 0.0, 0.0) for s in range(12) for c in range(len(VIDEOS))]


def assert_near(a: Detections, b: Detections, *, iou_min: float, conf_atol: float) -> None:
    """Same boxes, matched one to one by order (both sorted by score): same class, IoU and score close."""
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=conf_atol)
    x1 = np.maximum(a.xyxy[:, 0], b.xyxy[:, 0])
    y1 = np.maximum(a.xyxy[:, 1], b.xyxy[:, 1])
    x2 = np.minimum(a.xyxy[:, 2], b.xyxy[:, 2])
    y2 = np.minimum(a.xyxy[:, 3], b.xyxy[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda d: (d.xyxy[:, 2] - d.xyxy[:, 0]) * (d.xyxy[:, 3] - d.xyxy[:, 1])  # noqa: E731
    iou = inter / (area(a) + area(b) - inter)
    assert np.all(iou >= iou_min), iou.min()


def run_thread(det: Detector, frames: list[Frame], batch_size: int, overlap: bool) -> list[Any]:
    pending = list(frames)
    lock = threading.Lock()
    got: list[tuple[str, int, Detections]] = []
    done = threading.Event()

    def take(max_n: int, timeout_s: float) -> list[Frame]:
        with lock:
            # Uneven takes (1, 2, ..., batch_size frames) so partial batches are padded.
            n = min(max_n, 1 + len(got) % batch_size)
            batch, pending[:] = pending[:n], pending[n:]
        if not batch:
            done.wait(timeout_s)
        return batch

    def deliver(frame: Frame, dets: Detections) -> None:
        got.append((frame.camera, frame.seq, dets))
        if len(got) == len(frames):
            done.set()

    worker = BatchingDetector(det, take, deliver, batch_size=batch_size, overlap=overlap, prep_threads=2)
    assert worker.overlap == overlap
    worker.start()
    assert done.wait(120)
    assert worker.stop(10)
    return got


@pytest.mark.parametrize("model", ["yolo11n_320.onnx", "yolov8n.onnx"])
def test_double_buffered_padded_detector_equals_todays(camera_frames, model):
    """The overlapped thread with padded batches delivers, per camera and in order, the detections of
    today's loop (serial, unpadded) on the shared videos. ORT may choose other kernels for another batch
    size, so scores may differ in the last bits (tolerances as in assert_same)."""
    path = require(models_dir() / model, model)
    today = Detector(path, backend="onnxruntime", providers=["cpu"], max_batch=4, pad_batches=False)
    padded = Detector(path, backend="onnxruntime", providers=["cpu"], max_batch=4, pad_batches=True)
    assert padded.batch_sizes == (1, 2, 4)
    assert today.batch_sizes == (1, 2, 3, 4)
    new = run_thread(padded, camera_frames, 4, overlap=True)
    old = run_thread(today, camera_frames, 4, overlap=False)
    assert [(c, s) for c, s, _ in new] == [(f.camera, f.seq) for f in camera_frames]
    assert [(c, s) for c, s, _ in old] == [(c, s) for c, s, _ in new]
    for (_, _, a), (_, _, b) in zip(new, old, strict=True):
        assert_same(a, b)
    assert sum(len(d) for _, _, d in new) > 100  # the videos really have objects


@pytest.mark.parametrize("model", ["yolo11n_320.onnx", "yolov8n.onnx"])
def test_uint8_input_gives_the_float_paths_detections(camera_frames, model, tmp_path):
    """The uint8-input wrapper (conversion on the model's side) against the float letterbox on the
    shared videos: same boxes, same class, IoU >= 0.99, confidence within 1e-3."""
    path = require(models_dir() / model, model)
    images = [f.image for f in camera_frames]
    as_float = Detector(path, backend="onnxruntime", providers=["cpu"], max_batch=4)
    as_uint8 = Detector(
        path, backend="onnxruntime", providers=["cpu"], max_batch=4, uint8_input=True, cache_dir=tmp_path
    )
    assert as_uint8.backend.input_dtype == np.uint8
    assert as_float.backend.input_dtype == np.float32
    float_dets, uint8_dets = as_float.infer(images), as_uint8.infer(images)
    for a, b in zip(float_dets, uint8_dets, strict=True):
        assert_near(a, b, iou_min=0.99, conf_atol=1e-3)
    assert sum(len(d) for d in float_dets) > 100
