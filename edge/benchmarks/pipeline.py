"""``edge bench pipeline``: the whole daemon on N live RTSP streams, against the limit of this machine.

One run of this command does all of the following, in one process:

1. serves ``--streams N`` looped copies of one video over real RTSP (``scripts/rtsp_serve.py``, the same
   GStreamer server the tests use; H.264 without B-frames is passed through, so the server costs little);
2. measures the *limit*: the serial sum of the decode-only cost of one frame (OpenCV decoding the same file
   as fast as it can) and the bare ONNX Runtime cost of one frame (``session.run`` on ready tensors at the
   batch size the daemon uses, same session options), ``limit_fps = 1 / (t_decode + t_infer)``;
3. runs the real daemon (:class:`edge.app.App`: capture threads, batching detector, tracker, analytics,
   durable outbox, MQTT to a real broker) with N cameras for ``--seconds`` after a warm-up, cut into
   ``--window`` windows, and reads its own metrics: processed frames/s, drops by reason, and every
   capture -> publish latency it observes;
4. between windows (default) pauses the RTSP server (SIGSTOP; the daemon idles) and measures the limit
   again, so each window is compared with the mean of the limits measured just before and just after it:
   load from other processes on a shared machine then hits both sides alike. ``--continuous`` instead
   measures the limit only before and after one unbroken run (for the latency-flatness check, where a
   pause could drain a growing backlog).

``ratio = fps / limit_fps``. The cameras are *not* capped (no ``fps:``), and the served video is re-timed
(every frame kept) to 30 frames/s, a camera's rate, or to 1.5 x limit / N when that is more (measured
first): the cameras then offer more frames than the pipeline can take, so the pipeline, not the cameras,
sets the pace (at the video's native 24 frames/s one stream would be below yolov8n's CPU limit of ~35-40
frames/s on 2 cores, and the ratio would measure the camera). The latest-frame slot drops what the
detector cannot take (``superseded``, counted, by design). Decoding those superseded frames is real work
that the limit does not include: it is part of what the ratio measures, as it is on any site whose cameras
run faster than the model.

The machine may be shared: every window and every limit measurement records how many cores *other*
processes used (``/proc``); ``ratio_quiet`` uses only the windows where they used at most
``--quiet-cores`` during the window and while its limits were measured.

Latency is reported over the whole measured interval and per ``--window`` seconds, so a queue that grows
(latency rising window after window) is visible; ``latency_p95_growth`` is the last window's p95 over the
first window's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.benchmarks.detector import machine
from edge.benchmarks.pipeline_parts import (
    BenchMetrics,
    CpuMeter,
    measure_limit,
    retime,
    samples,
    snapshot,
    total,
    total_where,
    write_config,
)
from edge.benchmarks.rtsp import RtspServer
from edge.discovery import forget_node
from edge.errors import EdgeError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from edge.app import App

__all__ = ["BenchMetrics", "CpuMeter", "main", "run_bench", "write_config"]

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[2]
_SHARED = Path(os.environ.get("EDGE_SHARED_DIR", _REPO.parent / "shared"))

DEFAULT_VIDEO = "vehicle_counting_input_video.mp4"
"""640x352 H.264 at 24 frames/s without B-frames: served as is (no re-encoding load on the machine), and
faster than yolov8n's CPU limit, so the pipeline, not the stream, sets the pace."""
DEFAULT_MODEL = "yolov8n.onnx"


def _default_video() -> Path:
    return Path(os.environ.get("EDGE_DATA_DIR", _SHARED / "data")) / "video" / DEFAULT_VIDEO


def _default_model() -> Path:
    return Path(os.environ.get("EDGE_MODELS_DIR", _SHARED / "models")) / DEFAULT_MODEL


def request_stop(app: App) -> None:
    """Stop the in-process daemon as SIGTERM would (it shuts down in order and returns its exit code)."""
    app.request_stop()


@dataclass
class _Window:
    a: dict[str, Any]
    b: dict[str, Any]
    limit_before: dict[str, float | str]
    limit_after: dict[str, float | str] | None = None


async def _drive(
    app: App,
    metrics: BenchMetrics,
    cpu: CpuMeter,
    streams: RtspServer,
    measure: Callable[[], dict[str, float | str]],
    *,
    cameras: int,
    warmup_s: float,
    seconds: float,
    window_s: float,
    interleave: bool,
    settle_s: float = 2.0,
) -> tuple[int, list[_Window], str | None]:
    """Run the daemon for ``seconds`` cut into windows; snapshot its counters around each window.

    ``interleave``: before each window (and after the last) the RTSP server is paused (SIGSTOP), so the
    daemon idles, and the limit is measured; the window starts ``settle_s`` after the streams resume.
    Each window is then compared with limits measured seconds away from it, under about the same load
    from other processes. Otherwise the daemon runs without a break and the caller measures the limit
    before and after the whole run (what the latency-flatness check needs: no pause drains anything).
    """
    task = asyncio.create_task(app.run(), name="bench-daemon")
    windows: list[_Window] = []
    problem: str | None = None

    async def limit_now() -> dict[str, float | str]:
        streams.pause()
        try:
            await asyncio.sleep(0.5)  # frames in flight finish
            return await asyncio.to_thread(measure)
        finally:
            streams.resume()
            await asyncio.sleep(settle_s)

    try:
        # Every camera must have delivered frames before the warm-up starts (connect, first key frame).
        deadline = time.monotonic() + 120.0
        while True:
            per_cam = samples(metrics, "edge_frames_processed_total")
            if len([v for v in per_cam.values() if v > 0]) >= cameras:
                break
            if task.done() or time.monotonic() > deadline:
                problem = "not every camera delivered frames within 120 s"
                break
            await asyncio.sleep(0.2)
        if problem is None:
            await asyncio.sleep(warmup_s)
            measured = 0.0
            empty: dict[str, float | str] = {}
            limit = await limit_now() if interleave else empty
            a = snapshot(metrics, cpu)
            while measured < seconds - 1e-6 and not task.done():
                await asyncio.sleep(min(window_s, seconds - measured))
                b = snapshot(metrics, cpu)
                measured += b["t"] - a["t"]
                windows.append(_Window(a, b, limit))
                if interleave:
                    limit = await limit_now()
                    windows[-1].limit_after = limit
                    a = snapshot(metrics, cpu)
                else:
                    a = b
    finally:
        if not task.done():
            request_stop(app)
        code = await task
    return code, windows, problem


def _pct(values: npt.NDArray[np.float64], q: float) -> float | None:
    return float(np.percentile(values, q) * 1000) if values.size else None


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _limit_fps(limits: list[dict[str, float | str]]) -> tuple[float, float, float]:
    decode_ms = statistics.mean(float(x["decode_ms"]) for x in limits)
    infer_ms = statistics.mean(float(x["infer_ms"]) for x in limits)
    return 1000.0 / (decode_ms + infer_ms), decode_ms, infer_ms


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from edge.app import App  # noqa: PLC0415 - heavy; only when running
    from edge.config import load_settings  # noqa: PLC0415

    video: Path = args.video or _default_video()
    model: Path = args.model or _default_model()
    for p, what in ((video, "video"), (model, "model")):
        if not p.exists():
            raise EdgeError(f"{what} {p} not found (set EDGE_SHARED_DIR or pass --{what})")
    video_name = video.name
    n = args.streams
    batch = args.batch if args.batch is not None else n
    providers: str | list[str] = "auto" if args.providers == "auto" else args.providers.split(",")
    provider_yaml = "auto" if args.providers == "auto" else "[" + args.providers + "]"
    interleave = not args.continuous
    limits: list[dict[str, float | str]] = []

    with tempfile.TemporaryDirectory(prefix="edge-bench-pipeline-") as tmp_name:
        tmp = Path(tmp_name)
        if args.stream_fps is None:
            pre = measure_limit(
                model, video, batch=batch, iterations=args.iterations, providers=providers,
                threads=args.threads, cpu=CpuMeter(None), backend=args.backend, precision=args.precision,
            )
            args.stream_fps = float(max(30, math.ceil(1.5 * float(pre["limit_fps"]) / n)))
        if args.stream_fps > 0:
            video = retime(video, args.stream_fps, tmp / f"stream-{args.stream_fps:g}fps.mp4")
        paths = [f"/cam{i}" for i in range(n)]
        streams = RtspServer([video] * n, paths=paths, ready_timeout=60.0, log_dir=tmp)
        try:
            streams.start()
        except RuntimeError as err:
            raise EdgeError(str(err)) from None
        cpu = CpuMeter(streams.proc.pid if streams.proc is not None else None)

        def measure() -> dict[str, float | str]:
            # Measured while the RTSP server process exists, as the daemon runs: in interleaved mode it is
            # paused, otherwise its (small: passthrough) CPU weighs on both sides of the ratio alike.
            return measure_limit(
                model, video, batch=batch, iterations=args.iterations, providers=providers,
                threads=args.threads, cpu=cpu, backend=args.backend, precision=args.precision,
            )

        node = f"bench-{os.getpid()}"
        try:
            if not interleave:
                limits.append(measure())
            cfg = tmp / "bench.yaml"
            write_config(
                cfg, urls=streams.urls(), model=model.resolve(), batch=batch, providers=provider_yaml,
                threads=args.threads, node=node, mqtt_host=args.mqtt_host,
                mqtt_port=args.mqtt_port, state_dir=tmp / "state", backend=args.backend,
                precision=args.precision, snapshots=args.snapshots == "on",
            )
            settings = load_settings(cfg)
            metrics = BenchMetrics()
            app = App(settings, cfg, metrics=metrics)
            code, wins, problem = asyncio.run(
                _drive(
                    app, metrics, cpu, streams, measure, cameras=n, warmup_s=args.warmup,
                    seconds=args.seconds, window_s=args.window, interleave=interleave,
                )
            )
            if not interleave:
                limits.append(measure())
        finally:
            streams.stop(crash=False)
            # The broker may be a user's Home Assistant's: leave no retained state or discovery behind.
            with contextlib.suppress(OSError):
                forget_node(args.mqtt_host, args.mqtt_port, node=node, topic_prefix="edge-bench")

    if problem is not None or not wins:
        raise EdgeError(f"the daemon did not run as expected: {problem or 'no measurement'} (exit {code})")
    if interleave:
        limits = [wins[0].limit_before] + [w.limit_after for w in wins if w.limit_after is not None]

    def delta(key: str) -> float:
        return float(sum(w.b[key] - w.a[key] for w in wins))

    elapsed = delta("t")
    processed = delta("processed")
    fps = processed / elapsed
    allowed = 0.0  # frames the limit allows in the measured windows
    quiet_frames = quiet_allowed = 0.0
    rec = metrics.recorder
    when, value = rec.when[: rec.n], rec.value[: rec.n]
    in_run = np.zeros(when.shape, bool)
    windows = []
    t0 = wins[0].a["t"]
    for w in wins:
        dt = w.b["t"] - w.a["t"]
        near = [w.limit_before, w.limit_after] if w.limit_after is not None else limits
        lim, _, _ = _limit_fps(near)
        allowed += lim * dt
        other = CpuMeter.other_cores(w.a["cpu"], w.b["cpu"])
        other_limit = max(float(x["other_cores"]) for x in near)
        if max(other, other_limit) <= args.quiet_cores:
            quiet_frames += w.b["processed"] - w.a["processed"]
            quiet_allowed += lim * dt
        mask = (when >= w.a["t"]) & (when < w.b["t"])
        in_run |= mask
        w_fps = (w.b["processed"] - w.a["processed"]) / dt
        windows.append({
            "start_s": round(w.a["t"] - t0, 1),
            "seconds": round(dt, 1),
            "fps": round(w_fps, 2),
            "limit_fps": round(lim, 2),
            "ratio": round(w_fps / lim, 3),
            "latency_p50_ms": _round(_pct(value[mask], 50), 1),
            "latency_p95_ms": _round(_pct(value[mask], 95), 1),
            "other_cores": round(other, 2),
            "other_cores_limit": round(other_limit, 2),
        })
    limit_fps = allowed / elapsed
    _, decode_ms, infer_ms = _limit_fps(limits)
    drops: dict[str, int] = {}
    for w in wins:
        for k, v in w.b["drops"].items():
            drops[k] = drops.get(k, 0) + int(v - w.a["drops"].get(k, 0.0))
    drops = {k: v for k, v in drops.items() if v}
    full = [w for w in windows if w["seconds"] >= 0.9 * args.window]  # a short last window is noisier
    growth = None
    if len(full) >= 2 and full[0]["latency_p95_ms"] and full[-1]["latency_p95_ms"] is not None:
        growth = round(full[-1]["latency_p95_ms"] / full[0]["latency_p95_ms"], 3)
    infer_runs = delta("infer_count")
    frames_run = delta("batch_sum")
    busy = sum(
        CpuMeter.cores(w.a["cpu"], w.b["cpu"], i) * (w.b["t"] - w.a["t"]) for w in wins for i in (2, 3)
    )
    infer_ms_daemon = delta("infer_sum") / frames_run * 1000 if frames_run else None
    others = sum(CpuMeter.other_cores(w.a["cpu"], w.b["cpu"]) * (w.b["t"] - w.a["t"]) for w in wins)
    return {
        "streams": n,
        "stream_fps": args.stream_fps or None,
        "mode": "interleaved" if interleave else "continuous",
        "seconds": round(elapsed, 1),
        "model": model.name,
        "video": video_name,
        "backend": app.detector.backend.name if app.detector is not None else args.backend,
        "provider": limits[0]["provider"],
        "precision": app.detector.backend.precision if app.detector is not None else args.precision,
        "batch_size": batch,
        "mean_batch": round(frames_run / infer_runs, 2) if infer_runs else None,
        "fps": round(fps, 2),
        "fps_per_stream": round(fps / n, 2),
        "limit_fps": round(limit_fps, 2),
        "ratio": round(fps / limit_fps, 3),
        "ratio_median_window": round(statistics.median(w["ratio"] for w in windows), 3),
        "ratio_quiet": round(quiet_frames / quiet_allowed, 3) if quiet_allowed else None,
        "quiet_windows": sum(
            1 for w in windows if max(w["other_cores"], w["other_cores_limit"]) <= args.quiet_cores
        ),
        "decode_ms": round(decode_ms, 2),
        "infer_ms": round(infer_ms, 2),
        "limit_runs": [
            {
                "decode_ms": round(float(x["decode_ms"]), 2),
                "infer_ms": round(float(x["infer_ms"]), 2),
                "other_cores": round(float(x["other_cores"]), 2),
            }
            for x in limits
        ],
        "other_cores_during_run": round(others / elapsed, 2),
        "daemon_and_server_cores": round(busy / elapsed, 2),
        "infer_in_daemon_ms_per_frame": _round(infer_ms_daemon),
        "captured_fps": round(delta("captured") / elapsed, 2),
        # Nearly every captured frame processed: the cameras, not the pipeline, set the pace, and the
        # ratio says nothing about the pipeline (raise --stream-fps).
        "stream_bound": processed >= 0.95 * delta("captured"),
        "latency_p50_ms": _round(_pct(value[in_run], 50), 1),
        "latency_p95_ms": _round(_pct(value[in_run], 95), 1),
        "latency_p95_growth": growth,
        "windows": windows,
        "drops": drops,
        "events_published": int(delta("events")),
        "snapshots": args.snapshots,
        "snapshots_encoded": int(total(metrics, "edge_snapshots_total")),
        "snapshots_dropped": int(total_where(metrics, "edge_queue_dropped_total", ("queue", "snapshots"))),
        "reconnects": int(delta("reconnects")),
        "latency_samples_overflow": rec.overflow,
        "daemon_exit_code": code,
        "machine": machine(),
    }


def _report(r: dict[str, Any]) -> str:
    lines = [
        f"machine: {r['machine']}",
        (
            f"{r['streams']} stream(s) of {r['video']} over RTSP, {r['model']} on {r['provider']}, batch "
            f"{r['batch_size']} (mean {r['mean_batch']}), {r['seconds']} s measured"
        ),
        (
            f"processed {r['fps']:.2f} frames/s ({r['fps_per_stream']:.2f} per stream); captured "
            f"{r['captured_fps']:.2f} frames/s"
        ),
        (
            f"limit {r['limit_fps']:.2f} frames/s = 1 / (decode {r['decode_ms']:.2f} ms + bare ORT "
            f"{r['infer_ms']:.2f} ms per frame); ORT inside the daemon {r['infer_in_daemon_ms_per_frame']} ms"
        ),
        (
            ("STREAM-BOUND (raise --stream-fps): " if r["stream_bound"] else "")
            + f"ratio {r['ratio']:.3f} ({r['mode']}; median of windows {r['ratio_median_window']:.3f}; "
            f"{r['quiet_windows']} quiet window(s): {r['ratio_quiet']})"
        ),
        (
            f"CPU cores used by other processes: {r['other_cores_during_run']} during the run, "
            + ", ".join(str(x["other_cores"]) for x in r["limit_runs"])
            + f" while measuring the limit; daemon + RTSP server {r['daemon_and_server_cores']} cores"
        ),
        (
            f"latency capture->publish p50 {r['latency_p50_ms']} ms, p95 {r['latency_p95_ms']} ms, "
            f"p95 growth last/first window {r['latency_p95_growth']}"
        ),
        "drops: " + (", ".join(f"{k}={v}" for k, v in sorted(r["drops"].items())) or "none"),
        "windows (start s, fps, limit fps, ratio, p50 ms, p95 ms, other cores):",
    ]
    lines += [
        f"  {w['start_s']:>6} {w['fps']:>7.2f} {w['limit_fps']:>7.2f} {w['ratio']:>6.3f} "
        f"{w['latency_p50_ms']!s:>7} {w['latency_p95_ms']!s:>7} {w['other_cores']:>5}"
        for w in r["windows"]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge bench pipeline",
        description="The whole daemon on N live RTSP streams vs decode-only + bare ORT, in one run.",
    )
    parser.add_argument("--streams", type=int, default=1, help="cameras (copies of the video), default 1")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (default 10)")
    parser.add_argument("--window", type=float, default=15.0, help="latency window in seconds (default 15)")
    parser.add_argument("--model", type=Path, default=None, help=f"ONNX model (default {DEFAULT_MODEL})")
    parser.add_argument("--video", type=Path, default=None, help=f"video to serve (default {DEFAULT_VIDEO})")
    parser.add_argument(
        "--stream-fps",
        type=float,
        default=None,
        help="serve the video re-timed to this rate, every frame kept; 0 = as it is; default: 30 (a "
        "camera's rate), raised to 1.5 x limit / streams when that is more, so the cameras offer more "
        "frames than the pipeline can take and the pipeline, not the cameras, sets the pace",
    )
    parser.add_argument("--batch", type=int, default=None, help="daemon batch size (default: --streams)")
    parser.add_argument("--providers", default="auto", help="'auto' or a comma list, e.g. cpu")
    parser.add_argument(
        "--backend", default="auto", choices=["auto", "onnxruntime", "openvino"], help="model.backend"
    )
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "f32", "bf16", "f16"], help="model.precision"
    )
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: all cores)")
    parser.add_argument("--iterations", type=int, default=40, help="bare ORT runs per limit measurement")
    parser.add_argument(
        "--snapshots",
        choices=["on", "off"],
        default="on",
        help="event snapshots on every camera (on, the daemon's default) or off, to measure their cost",
    )
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument(
        "--continuous",
        action="store_true",
        help="measure the limit only before and after one unbroken run (for the latency-flatness check); "
        "default: pause the streams and measure it between windows, so each window has a near baseline",
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="a window is 'quiet' when other processes used at most this many cores during it and while "
        "its limit was measured; ratio_quiet uses only those (default 0.25)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.seconds <= 0 or args.window <= 0 or args.iterations < 1:
        parser.error("--streams, --seconds, --window and --iterations must be positive")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_bench(args)
    except EdgeError as exc:
        print(f"edge bench pipeline: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(_report(result))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
