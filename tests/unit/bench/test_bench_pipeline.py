"""The pure parts of ``edge bench pipeline``: the latency sampler it puts into the daemon's metrics, and the
daemon config it writes. (The benchmark itself is run by hand; its results are in docs/benchmarks.md.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import models_dir, require

from edge.benchmarks.pipeline import BenchMetrics, CpuMeter, write_config
from edge.config import load_settings


def test_latency_sampler_forwards_to_the_histogram_and_is_bounded() -> None:
    metrics = BenchMetrics(capacity=3)
    for v in (0.01, 0.02, 0.03, 0.04, 0.05):
        metrics.latency.labels(camera="cam0").observe(v)
    rec = metrics.recorder
    assert rec.n == 3
    assert rec.overflow == 2
    assert rec.value[:3].tolist() == [0.01, 0.02, 0.03]
    assert rec.when.shape == (3,)  # preallocated, never grows
    count = metrics.registry.get_sample_value("edge_capture_to_publish_seconds_count", {"camera": "cam0"})
    assert count == 5  # every observation still reaches the real histogram


def test_cpu_meter_counts_this_process_and_not_as_other() -> None:
    meter = CpuMeter(server_pid=None)
    a = meter.sample()
    x = 0
    for i in range(2_000_000):  # keep this process busy for a moment
        x += i
    b = meter.sample()
    assert CpuMeter.cores(a, b, 2) > 0
    assert b[1] >= a[1]


@pytest.mark.parametrize("streams", [1, 4])
def test_written_config_is_valid_and_uncapped(tmp_path: Path, streams: int) -> None:
    model = require(models_dir() / "yolov8n.onnx", "yolov8n.onnx")
    cfg = tmp_path / "bench.yaml"
    urls = [f"rtsp://127.0.0.1:8554/cam{i}" for i in range(streams)]
    write_config(
        cfg, urls=urls, model=model, batch=streams, providers="[cpu]", threads=None, node="bench-1",
        mqtt_host="127.0.0.1", mqtt_port=1883, state_dir=tmp_path / "state",
    )
    settings = load_settings(cfg)
    assert [c.source for c in settings.cameras] == urls
    assert all(c.fps is None for c in settings.cameras)  # throughput-bound: no fps cap
    assert settings.model.batch_size == streams
    assert settings.metrics.enabled is False
    assert settings.node == "bench-1"
