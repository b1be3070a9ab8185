"""The measuring parts of ``edge bench pipeline`` (see :mod:`edge.benchmarks.pipeline`): the served video,
the CPU other processes use, the decode + bare-inference limit, metrics that record every latency sample,
and the daemon's YAML."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.metrics import Metrics

if TYPE_CHECKING:
    import numpy.typing as npt
    from prometheus_client import Histogram


# ----------------------------------------------------------------------------------------------------
# the served video


def retime(video: Path, fps: float, dst: Path) -> Path:
    """``video`` with every frame kept but played at ``fps`` (faster than life), as H.264 baseline (no
    B-frames: the RTSP server passes it through without re-encoding), one key frame per second.

    A camera at 24-30 frames/s is slower than yolov8n's limit on some machines: the stream, not the
    pipeline, would then bound the frame rate and the ratio would measure nothing. At ``fps`` above the
    limit the daemon is throughput-bound; the frames it cannot take are dropped by the latest-frame slot
    (``superseded``, counted), and their decode is part of the daemon's cost, as with any fast camera.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        msg = "ffmpeg is needed to prepare the stream (apt-get install ffmpeg), or pass --stream-fps 0"
        raise EdgeError(msg)
    g = max(1, round(fps))
    cmd = [
        ffmpeg, "-v", "error", "-y", "-i", str(video), "-an", "-vf", f"setpts=N/({fps}*TB)", "-r", f"{fps}",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
        "-g", str(g), "-keyint_min", str(g), "-sc_threshold", "0", str(dst),
    ]
    subprocess.run(cmd, check=True, timeout=600)  # noqa: S603 - argv list, no shell
    return dst


# ----------------------------------------------------------------------------------------------------
# CPU used by other processes: the machine is shared, so each phase reports how busy the rest of it was

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class CpuMeter:
    """CPU seconds of the whole machine, of this process and of the RTSP server (Linux ``/proc``).

    ``other_cores(a, b)`` is the mean number of cores that *other* processes kept busy between two
    samples: a limit measured while others used 0.2 cores and a daemon run while they used 1.0 are not
    comparable, and the report says so instead of hiding it."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def sample(self) -> tuple[float, float, float, float]:
        try:
            fields = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()[1:]
            v = [int(x) for x in fields]
            busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / _TICK
        except (OSError, ValueError, IndexError):
            busy = float("nan")
        t = os.times()
        server = 0.0
        if self.server_pid is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{self.server_pid}/stat").read_text(encoding="ascii")
                rest = stat.rsplit(")", 1)[1].split()
                server = (int(rest[11]) + int(rest[12])) / _TICK
        return time.monotonic(), busy, t.user + t.system, server

    @staticmethod
    def other_cores(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
        dt = b[0] - a[0]
        return ((b[1] - a[1]) - (b[2] - a[2]) - (b[3] - a[3])) / dt if dt > 0 else float("nan")

    @staticmethod
    def cores(a: tuple[float, float, float, float], b: tuple[float, float, float, float], i: int) -> float:
        dt = b[0] - a[0]
        return (b[i] - a[i]) / dt if dt > 0 else float("nan")


# ----------------------------------------------------------------------------------------------------
# the limit: decode-only and bare ORT, per frame


def decode_ms_per_frame(video: Path, frames: int = 240, runs: int = 3) -> float:
    """Median over ``runs`` of the mean wall time of ``cv2.VideoCapture.read`` (decode + BGR conversion,
    what capture does per frame) over ``frames`` frames of ``video``, as fast as it goes."""
    results = []
    for _ in range(runs):
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise EdgeError(f"video {video}: cannot be opened")
        try:
            ok, image = cap.read()  # opening and the first key frame are not per-frame costs
            if not ok:
                raise EdgeError(f"video {video}: no frames")
            n = 0
            t0 = time.perf_counter()
            while n < frames:
                ok, image = cap.read(image)
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                n += 1
            results.append((time.perf_counter() - t0) / n * 1000)
        finally:
            cap.release()
    return statistics.median(results)


def infer_ms_per_frame(
    model: Path,
    video: Path,
    *,
    batch: int,
    iterations: int,
    providers: str | list[str],
    threads: int | None,
    backend: str = "auto",
    precision: str = "auto",
) -> tuple[float, str]:
    """Median wall time of one bare runtime call (ORT ``session.run``, an OpenVINO infer request) at
    ``batch`` frames, divided by ``batch`` (ms), and the provider/device. The tensors are letterboxed real
    frames, made before the clock starts."""
    from edge.benchmarks.detector import bare_call, read_frames  # noqa: PLC0415
    from edge.detector import Detector  # noqa: PLC0415
    from edge.preprocess import Letterbox  # noqa: PLC0415

    det = Detector(
        model, providers=providers, intra_op_threads=threads, max_batch=batch, backend=backend,
        precision=precision,
    )
    batch = det.max_batch
    frames = read_frames(video, batch * 4)
    lb = Letterbox(det.input_size[0], det.input_size[1], max_batch=batch)
    tensors: list[npt.NDArray[np.float32]] = [
        lb.fill(frames[i : i + batch])[0].copy() for i in range(0, len(frames), batch)
    ]
    run = bare_call(det)
    for t in tensors:  # warm-up: lazy initialisation and allocator growth are not per-frame costs
        run(t)
    times = []
    for k in range(iterations):
        t0 = time.perf_counter()
        run(tensors[k % len(tensors)])
        times.append(time.perf_counter() - t0)
    provider = det.provider
    det.backend.close()
    del det, run
    return statistics.median(times) / batch * 1000, provider


def measure_limit(
    model: Path,
    video: Path,
    *,
    batch: int,
    iterations: int,
    providers: str | list[str],
    threads: int | None,
    cpu: CpuMeter,
    backend: str = "auto",
    precision: str = "auto",
) -> dict[str, float | str]:
    a = cpu.sample()
    decode_ms = decode_ms_per_frame(video)
    infer_ms, provider = infer_ms_per_frame(
        model, video, batch=batch, iterations=iterations, providers=providers, threads=threads,
        backend=backend, precision=precision,
    )
    b = cpu.sample()
    return {
        "decode_ms": decode_ms,
        "infer_ms": infer_ms,
        "limit_fps": 1000.0 / (decode_ms + infer_ms),
        "provider": provider,
        "other_cores": CpuMeter.other_cores(a, b),
    }


# ----------------------------------------------------------------------------------------------------
# latency samples from the daemon's own histogram


class _LatencyRecorder:
    """Stands in for ``Metrics.latency``: forwards every observation to the real histogram and keeps
    (time, seconds) pairs in preallocated arrays (bounded: beyond ``capacity`` samples are only counted).
    Written by the daemon's single pipeline thread; read after it stopped."""

    def __init__(self, histogram: Histogram, capacity: int) -> None:
        self._histogram = histogram
        self.when = np.empty(capacity, np.float64)
        self.value = np.empty(capacity, np.float64)
        self.n = 0
        self.overflow = 0

    def labels(self, **labels: str) -> _RecordingChild:
        return _RecordingChild(self, self._histogram.labels(**labels))

    def record(self, seconds: float) -> None:
        i = self.n
        if i < self.when.shape[0]:
            self.when[i] = time.monotonic()
            self.value[i] = seconds
            self.n = i + 1
        else:
            self.overflow += 1


class _RecordingChild:
    __slots__ = ("_child", "_parent")

    def __init__(self, parent: _LatencyRecorder, child: Any) -> None:
        self._parent = parent
        self._child = child

    def observe(self, seconds: float) -> None:
        self._parent.record(seconds)
        self._child.observe(seconds)


class BenchMetrics(Metrics):
    """The daemon's metrics, with ``edge_capture_to_publish_seconds`` also sampled for percentiles (the
    histogram's buckets are too coarse for a p95 that should be compared window by window)."""

    def __init__(self, capacity: int = 2_000_000) -> None:
        super().__init__()
        self.recorder = _LatencyRecorder(self.latency, capacity)
        self.latency = cast("Histogram", self.recorder)


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(metrics: Metrics, name: str) -> float:
    return sum(samples(metrics, name).values())


def total_where(metrics: Metrics, name: str, label: tuple[str, str]) -> float:
    return sum(v for k, v in samples(metrics, name).items() if label in k)


def snapshot(metrics: Metrics, cpu: CpuMeter) -> dict[str, Any]:
    drops: dict[str, float] = {}
    for labels, v in samples(metrics, "edge_frames_dropped_total").items():
        reason = dict(labels)["reason"]
        drops[reason] = drops.get(reason, 0.0) + v
    for labels, v in samples(metrics, "edge_queue_dropped_total").items():
        key = "queue_" + dict(labels)["queue"] + "_" + dict(labels)["reason"]
        drops[key] = drops.get(key, 0.0) + v
    for labels, v in samples(metrics, "edge_outbox_dropped_total").items():
        key = "outbox_" + dict(labels)["reason"]
        drops[key] = drops.get(key, 0.0) + v
    return {
        "t": time.monotonic(),
        "processed": total(metrics, "edge_frames_processed_total"),
        "captured": total(metrics, "edge_frames_captured_total"),
        "drops": drops,
        "infer_sum": total(metrics, "edge_inference_seconds_sum"),
        "infer_count": total(metrics, "edge_inference_seconds_count"),
        "batch_sum": total(metrics, "edge_inference_batch_size_sum"),
        "events": total(metrics, "edge_events_published_total"),
        "reconnects": total(metrics, "edge_capture_reconnects_total"),
        "cpu": cpu.sample(),
    }


# ----------------------------------------------------------------------------------------------------
# the daemon


def write_config(
    path: Path,
    *,
    urls: list[str],
    model: Path,
    batch: int,
    providers: str,
    threads: int | None,
    node: str,
    mqtt_host: str,
    mqtt_port: int,
    state_dir: Path,
    backend: str = "auto",
    precision: str = "auto",
    snapshots: bool = True,
) -> None:
    """The daemon's YAML: N uncapped RTSP cameras, one counting line each (the demo's road line, so the
    analytics and MQTT stages do their real work), metrics server off (not part of the frame path)."""
    threads_line = f"  intra_op_threads: {threads}\n" if threads is not None else ""
    cams = "".join(
        f"  - name: cam{i}\n"
        f"    source: {url}\n"
        f"    transport: tcp\n"
        f"    lines:\n"
        f"      - name: road\n"
        f"        points: [[0.3, 0.65], [1.0, 0.65]]\n"
        f"        classes: [car, truck, bus, motorcycle]\n"
        f"    coordinates: normalized\n"
        f"    snapshots: {{enabled: {'true' if snapshots else 'false'}}}\n"
        for i, url in enumerate(urls)
    )
    path.write_text(
        f"node: {node}\n"
        f"state_dir: {state_dir}\n"
        f"model:\n"
        f"  path: {model}\n"
        f"  providers: {providers}\n"
        f"  backend: {backend}\n"
        f"  precision: {precision}\n"
        f"  classes: [person, car, truck, bus, motorcycle, bicycle]\n"
        f"  batch_size: {batch}\n"
        f"{threads_line}"
        f"mqtt:\n"
        f"  host: {mqtt_host}\n"
        f"  port: {mqtt_port}\n"
        f"  topic_prefix: edge-bench\n"
        f"metrics:\n"
        f"  enabled: false\n"
        f"logging:\n"
        f"  level: WARNING\n"
        f"cameras:\n{cams}",
        encoding="utf-8",
    )


