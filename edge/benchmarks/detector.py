"""``edge bench detector``: the detector stage against bare ONNX Runtime, in one process.

For each model and batch size, frames decoded from a video are pushed through

(a) bare ``session.run`` on input tensors prepared beforehand (the cost nobody can avoid), and
(b) the whole stage, :meth:`edge.detector.Detector.infer`, from BGR frames to ``Detections``,

on the *same* ORT session. The two are interleaved batch by batch (alternating which goes first) so that
noise from other processes on a shared machine hits both alike. Each run reports frames/s of (a) and (b);
the result is the median over ``--runs`` runs, and ``ratio`` is the median of the per-run ratios (b)/(a).
Two cross-checks that noise from other processes hardly touches: ``overhead_ms_per_frame`` is the
stage's wall time minus the time of its own ``session.run`` calls (pre-processing, decode, NMS and
Python glue, measured in place, caches as cold as they really are), giving ``ratio_from_overhead`` =
infer / (infer + overhead); and ``pre_ms`` / ``post_ms`` time letterbox and decode on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from edge.detector import Detector
from edge.errors import EdgeError
from edge.metrics import Metrics
from edge.preprocess import Letterbox

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def default_video() -> Path:
    """``pedestrians.mp4`` in the shared data (``EDGE_DATA_DIR``, ``EDGE_SHARED_DIR``/data, or
    ``../shared/data`` next to a source checkout), as the tests find it."""
    shared = Path(os.environ.get("EDGE_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
    return Path(os.environ.get("EDGE_DATA_DIR", shared / "data")) / "video" / "pedestrians.mp4"


def read_frames(video: Path, count: int) -> list[npt.NDArray[np.uint8]]:
    """The first ``count`` frames of ``video`` (looping over it if it is shorter)."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise EdgeError(f"video {video}: cannot be opened")
    frames: list[npt.NDArray[np.uint8]] = []
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                if not frames:
                    raise EdgeError(f"video {video}: no frames could be decoded")
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            frames.append(frame.astype("uint8", copy=False))
    finally:
        cap.release()
    return frames


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def bench_one(
    model: Path,
    frames: list[npt.NDArray[np.uint8]],
    *,
    batch: int,
    runs: int,
    providers: str | list[str],
    threads: int | None,
) -> dict[str, Any]:
    """Measure one model at one batch size; see the module docstring."""
    metrics = Metrics()  # the stage times its own session.run: what remains is its overhead in context
    det = Detector(model, providers=providers, intra_op_threads=threads, max_batch=batch, metrics=metrics)
    batch = det.max_batch  # a fixed-batch model runs one frame per run() whatever was asked
    n = len(frames) - len(frames) % batch
    chunks = [frames[i : i + batch] for i in range(0, n, batch)]
    session, in_name, out_name = det.session, det.input_name, det.output_name

    # Ready tensors for the bare baseline, made by the same letterbox (copied out of its reusable buffer).
    lb = Letterbox(det.input_size[0], det.input_size[1], max_batch=batch)
    tensors = [lb.fill(chunk)[0].copy() for chunk in chunks]

    det.warmup(batch)
    for tensor, chunk in zip(tensors[:2], chunks[:2], strict=False):
        session.run([out_name], {in_name: tensor})
        det.infer(chunk)

    perf = time.perf_counter

    def run_seconds() -> float:
        return metrics.registry.get_sample_value("edge_inference_seconds_sum") or 0.0

    stage_total_s = 0.0
    stage_run_s = -run_seconds()
    bare_fps: list[float] = []
    stage_fps: list[float] = []
    ratios: list[float] = []
    paired: list[float] = []
    for r in range(runs):
        bare_s = 0.0
        stage_s = 0.0
        pairs: list[float] = []
        for k, (tensor, chunk) in enumerate(zip(tensors, chunks, strict=True)):
            bare_k = stage_k = 0.0
            for bare_turn in (True, False) if (k + r) % 2 == 0 else (False, True):
                t0 = perf()
                if bare_turn:
                    session.run([out_name], {in_name: tensor})
                    bare_k = perf() - t0
                else:
                    det.infer(chunk)
                    stage_k = perf() - t0
            bare_s += bare_k
            stage_s += stage_k
            pairs.append(bare_k / stage_k)
        bare_fps.append(n / bare_s)
        stage_fps.append(n / stage_s)
        ratios.append(bare_s / stage_s)
        stage_total_s += stage_s
        # Median of back-to-back pairs: a burst of load from another process lands in one pair and is
        # outvoted, where it would skew a run's totals.
        paired.append(statistics.median(pairs))

    stage_run_s += run_seconds()
    overhead_ms = (stage_total_s - stage_run_s) / (n * runs) * 1000
    infer_ms = 1000 / statistics.median(bare_fps)

    # Pre/post-processing alone: letterbox of every chunk, decode of one real output per chunk.
    t0 = perf()
    for chunk in chunks:
        lb.fill(chunk)
    pre_s = perf() - t0
    out = session.run([out_name], {in_name: tensors[0]})[0]
    decoder = det._decoder  # the benchmark times the stage's own decoder
    lb.fill(chunks[0])
    params = lb.params(batch)
    t0 = perf()
    for _ in chunks:
        decoder.decode_batch(out, params)
    post_s = perf() - t0

    return {
        "model": model.name,
        "provider": det.provider,
        "batch": batch,
        "dynamic_batch": det.dynamic_batch,
        "input": f"{det.input_size[0]}x{det.input_size[1]}",
        "frames": n,
        "runs": runs,
        "intra_op_threads": threads,
        "bare_fps": round(statistics.median(bare_fps), 2),
        "stage_fps": round(statistics.median(stage_fps), 2),
        "ratio": round(statistics.median(ratios), 4),
        "ratio_runs": [round(x, 4) for x in ratios],
        "ratio_paired": round(statistics.median(paired), 4),
        "ratio_paired_runs": [round(x, 4) for x in paired],
        "pre_ms_per_frame": round(pre_s / n * 1000, 4),
        "post_ms_per_frame": round(post_s / n * 1000, 4),
        "infer_ms_per_frame": round(infer_ms, 3),
        "overhead_ms_per_frame": round(overhead_ms, 4),
        "ratio_from_overhead": round(infer_ms / (infer_ms + overhead_ms), 4),
        "machine": machine(),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | provider | batch | bare ORT fps | stage fps | ratio | ratio (paired) | overhead ms/frame "
        "| ratio from overhead |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['model']} | {r['provider']} | {r['batch']} | {r['bare_fps']:.1f} | {r['stage_fps']:.1f} | "
        f"{r['ratio']:.3f} | {r['ratio_paired']:.3f} | {r['overhead_ms_per_frame']:.3f} | "
        f"{r['ratio_from_overhead']:.3f} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge bench detector",
        description="Detector stage throughput vs bare ONNX Runtime session.run, same session, same process.",
    )
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="ONNX model(s)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch size(s) (default 1)")
    parser.add_argument("--video", type=Path, default=None, help="video to decode frames from")
    parser.add_argument("--frames", type=int, default=32, help="frames per run (default 32)")
    parser.add_argument("--runs", type=int, default=5, help="runs; medians are reported (default 5)")
    parser.add_argument("--providers", default="auto", help="'auto' or a comma list, e.g. cuda,cpu")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per model x batch, one a line")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.runs < 1 or any(b < 1 for b in args.batch):
        parser.error("--frames, --runs and --batch must be >= 1")
    providers: str | list[str] = (
        "auto" if args.providers == "auto" else [p.strip() for p in args.providers.split(",")]
    )
    video: Path = args.video if args.video is not None else default_video()
    try:
        frames = read_frames(video, args.frames)
        rows = []
        for model in args.model:
            for batch in args.batch:
                if args.frames < batch:
                    parser.error(f"--frames {args.frames} is smaller than --batch {batch}")
                row = bench_one(
                    model, frames, batch=batch, runs=args.runs, providers=providers, threads=args.threads
                )
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
    except EdgeError as exc:
        print(f"edge bench detector: {exc}", file=sys.stderr)
        return exc.exit_code
    if not args.json:
        print(f"machine: {rows[0]['machine']}; {args.frames} frames of {video.name}, {args.runs} runs")
        print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
