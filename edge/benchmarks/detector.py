"""``edge bench detector``: the detector stage against the bare runtime call, in one process.

For each model and batch size, frames decoded from a video are pushed through

(a) the bare runtime call on input tensors prepared beforehand (the cost nobody can avoid): ONNX Runtime's
    ``session.run``, or an OpenVINO infer request of the same compiled model with zero-copy input and
    output, and
(b) the whole stage, :meth:`edge.detector.Detector.infer`, from BGR frames to ``Detections``,

on the *same* session / compiled model. The two are interleaved batch by batch (rotating which goes first)
so that noise from other processes on a shared machine hits both alike. Each run reports frames/s of (a)
and (b); the result is the median over ``--runs`` runs, and ``ratio`` is the median of the per-run ratios
(b)/(a). Two cross-checks that noise from other processes hardly touches: ``overhead_ms_per_frame`` is
the stage's wall time minus the time of its own backend ``run`` calls (pre-processing, decode, NMS and
Python glue, measured in place), giving ``ratio_from_overhead`` = infer / (infer + overhead); and
``pre_ms`` / ``post_ms`` time letterbox and decode on their own.

Side by side: ``--backend onnxruntime openvino --precision f32 bf16`` builds one detector per variant
(ONNX Runtime at f32, OpenVINO at each precision) and interleaves all of them, bare and stage, batch by
batch in the same run. Each row then also carries ``speedup``: its stage fps over the first variant's
(the ONNX Runtime row), as the median of per-run ratios, and ``speedup_paired``, the median over
back-to-back batches.
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
import numpy as np

from edge.benchmarks import data_dir
from edge.benchmarks.agreement import Agreement
from edge.detector import Detector
from edge.errors import EdgeError
from edge.metrics import Metrics
from edge.preprocess import Letterbox

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt


def default_video() -> Path:
    """``pedestrians.mp4`` in the shared data (``EDGE_DATA_DIR``, ``EDGE_SHARED_DIR``/data, or
    ``../shared/data`` next to a source checkout), as the tests find it."""
    return data_dir() / "video" / "pedestrians.mp4"


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


def bare_call(det: Detector) -> Callable[[npt.NDArray[np.float32]], object]:
    """The bare runtime call for ``det``'s backend, on the same session or compiled model."""
    backend = det.backend
    if backend.name == "onnxruntime":
        session, in_name, out_name = det.session, det.input_name, det.output_name

        def run_ort(tensor: npt.NDArray[np.float32]) -> object:
            return session.run([out_name], {in_name: tensor})[0]

        return run_ort
    # OpenVINO: infer requests of the backend's own compilations, zero-copy in and out.
    # A split batch: one request per frame on the static batch-1 compilation, all in flight.
    request = backend.compiled.create_infer_request()  # type: ignore[attr-defined]
    split = backend.split_compiled  # type: ignore[attr-defined]
    max_batch: int = backend.max_batch  # type: ignore[attr-defined]
    requests = [split.create_infer_request() for _ in range(max_batch)] if split is not None else []

    def run_ov(tensor: npt.NDArray[np.float32]) -> object:
        n = len(tensor)
        if n <= 1 or not requests:
            return request.infer({0: tensor}, share_inputs=True, share_outputs=True)
        for i, req in enumerate(requests[:n]):
            req.start_async({0: tensor[i : i + 1]}, share_inputs=True)
        for req in requests[:n]:
            req.wait()
        return None

    return run_ov


class _Variant:
    """One detector under test and its timings."""

    def __init__(self, det: Detector, metrics: Metrics, init_s: float) -> None:
        self.det = det
        self.metrics = metrics
        self.init_s = init_s
        self.bare = bare_call(det)
        self.bare_fps: list[float] = []
        self.stage_fps: list[float] = []
        self.ratios: list[float] = []
        self.paired: list[float] = []
        self.speedup: list[float] = []
        self.speedup_paired: list[float] = []
        self.stage_total_s = 0.0
        self.run_s0 = 0.0

    def run_seconds(self) -> float:
        return self.metrics.registry.get_sample_value("edge_inference_seconds_sum") or 0.0


def bench_variants(
    model: Path,
    frames: list[npt.NDArray[np.uint8]],
    *,
    batch: int,
    runs: int,
    variants: list[tuple[str, str]],
    device: str = "CPU",
    providers: str | list[str] = "auto",
    threads: int | None = None,
    openvino_cache_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Measure ``(backend, precision)`` variants of one model at one batch size, interleaved; one row
    each. See the module docstring."""
    built: list[_Variant] = []
    for backend, precision in variants:
        metrics = Metrics()  # the stage times its own run(): what remains is its overhead in context
        t0 = time.perf_counter()
        det = Detector(
            model,
            providers=providers,
            intra_op_threads=threads,
            max_batch=batch,
            metrics=metrics,
            backend=backend,
            device=device,
            precision=precision,
            openvino_cache_dir=openvino_cache_dir,
        )
        built.append(_Variant(det, metrics, time.perf_counter() - t0))
    first = built[0].det
    batch = first.max_batch  # a fixed-batch model runs one frame per run() whatever was asked
    n = len(frames) - len(frames) % batch
    chunks = [frames[i : i + batch] for i in range(0, n, batch)]

    # Ready tensors for the bare baselines, made by the same letterbox (copied out of its reusable buffer).
    lb = Letterbox(first.input_size[0], first.input_size[1], max_batch=batch)
    tensors = [lb.fill(chunk)[0].copy() for chunk in chunks]

    for v in built:
        v.det.warmup(batch)
        for tensor, chunk in zip(tensors[:2], chunks[:2], strict=False):
            v.bare(tensor)
            v.det.infer(chunk)
        v.run_s0 = v.run_seconds()

    perf = time.perf_counter
    for r in range(runs):
        bare_s = [0.0] * len(built)
        stage_s = [0.0] * len(built)
        pairs: list[list[float]] = [[] for _ in built]
        vs_first: list[list[float]] = [[] for _ in built]
        for k, (tensor, chunk) in enumerate(zip(tensors, chunks, strict=True)):
            # Each detector's bare call and stage run back to back, first one then the other; detectors
            # take turns, the turn order rotating (and, for three or more, reversing every full rotation),
            # so no operation always follows the same one: ONNX Runtime's threads spin on after a run and
            # tax whatever comes next (an OpenVINO yolov8n call right after one took 1.75x as long on the
            # 2-core VM). Two detectors simply alternate who goes first, so each one's first call follows
            # the other in every second batch, bare call and stage equally often. (Reversing on odd
            # k + r, as before, undid the rotation for two: the first detector always went first.)
            n_det = len(built)
            shift = (k + r) % n_det
            turns = list(range(shift, n_det)) + list(range(shift))
            if n_det > 2 and ((k + r) // n_det) % 2:
                turns.reverse()
            pair = (True, False) if ((k + r) // 2) % 2 == 0 else (False, True)
            order = [(i, bare) for i in turns for bare in pair]
            bare_k = [0.0] * len(built)
            stage_k = [0.0] * len(built)
            for i, bare_turn in order:
                v = built[i]
                t0 = perf()
                if bare_turn:
                    v.bare(tensor)
                    bare_k[i] = perf() - t0
                else:
                    v.det.infer(chunk)
                    stage_k[i] = perf() - t0
            for i in range(len(built)):
                bare_s[i] += bare_k[i]
                stage_s[i] += stage_k[i]
                pairs[i].append(bare_k[i] / stage_k[i])
                vs_first[i].append(stage_k[0] / stage_k[i])
        for i, v in enumerate(built):
            v.bare_fps.append(n / bare_s[i])
            v.stage_fps.append(n / stage_s[i])
            v.ratios.append(bare_s[i] / stage_s[i])
            v.stage_total_s += stage_s[i]
            # Median of back-to-back pairs: a burst of load from another process lands in one pair and is
            # outvoted, where it would skew a run's totals.
            v.paired.append(statistics.median(pairs[i]))
            v.speedup.append(stage_s[0] / stage_s[i])
            v.speedup_paired.append(statistics.median(vs_first[i]))

    # Pre/post-processing alone: letterbox of every chunk, decode of one real output per chunk.
    t0 = perf()
    for chunk in chunks:
        lb.fill(chunk)
    pre_s = perf() - t0
    out = first.backend.run(tensors[0])
    decoder = first._decoder  # the benchmark times the stage's own decoder
    lb.fill(chunks[0])
    params = lb.params(batch)
    t0 = perf()
    for _ in chunks:
        decoder.decode_batch(out, params)
    post_s = perf() - t0

    rows = []
    base = built[0].det.backend
    for v in built:
        det = v.det
        overhead_ms = (v.stage_total_s - (v.run_seconds() - v.run_s0)) / (n * runs) * 1000
        infer_ms = 1000 / statistics.median(v.bare_fps)
        row: dict[str, Any] = {
            "model": model.name,
            "backend": det.backend.name,
            "device": det.backend.device,
            "precision": det.backend.precision,
            "provider": det.provider,
            "batch": batch,
            "dynamic_batch": det.dynamic_batch,
            "input": f"{det.input_size[0]}x{det.input_size[1]}",
            "frames": n,
            "runs": runs,
            "intra_op_threads": threads,
            "init_s": round(v.init_s, 3),
            "bare_fps": round(statistics.median(v.bare_fps), 2),
            "stage_fps": round(statistics.median(v.stage_fps), 2),
            "ratio": round(statistics.median(v.ratios), 4),
            "ratio_runs": [round(x, 4) for x in v.ratios],
            "ratio_paired": round(statistics.median(v.paired), 4),
            "ratio_paired_runs": [round(x, 4) for x in v.paired],
            "pre_ms_per_frame": round(pre_s / n * 1000, 4),
            "post_ms_per_frame": round(post_s / n * 1000, 4),
            "infer_ms_per_frame": round(infer_ms, 3),
            "overhead_ms_per_frame": round(overhead_ms, 4),
            "ratio_from_overhead": round(infer_ms / (infer_ms + overhead_ms), 4),
            "machine": machine(),
        }
        if len(built) > 1:
            row["baseline"] = f"{base.name}/{base.device}/{base.precision}"
            row["speedup"] = round(statistics.median(v.speedup), 4)
            row["speedup_runs"] = [round(x, 4) for x in v.speedup]
            row["speedup_paired"] = round(statistics.median(v.speedup_paired), 4)
        rows.append(row)
    for v in built:
        v.det.backend.close()
    return rows


def bench_one(
    model: Path,
    frames: list[npt.NDArray[np.uint8]],
    *,
    batch: int,
    runs: int,
    providers: str | list[str],
    threads: int | None,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "CPU",
) -> dict[str, Any]:
    """Measure one model at one batch size on one backend; see the module docstring."""
    return bench_variants(
        model,
        frames,
        batch=batch,
        runs=runs,
        variants=[(backend, precision)],
        device=device,
        providers=providers,
        threads=threads,
    )[0]


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | backend | device | precision | batch | bare fps | stage fps | ratio | ratio (paired) "
        "| overhead ms/frame | ratio from overhead | speedup (paired) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['model']} | {r['backend']} | {r['device']} | {r['precision']} | {r['batch']} | "
        f"{r['bare_fps']:.1f} | {r['stage_fps']:.1f} | {r['ratio']:.3f} | {r['ratio_paired']:.3f} | "
        f"{r['overhead_ms_per_frame']:.3f} | {r['ratio_from_overhead']:.3f} | "
        + (f"{r['speedup']:.3f} ({r['speedup_paired']:.3f})" if "speedup" in r else "-")
        + " |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def shared_videos() -> list[Path]:
    """The four shared videos (``*.mp4`` next to :func:`default_video`)."""
    return sorted(default_video().parent.glob("*.mp4"))


def _compare(
    dets: list[Detector], frames: list[npt.NDArray[np.uint8]], tallies: list[list[Agreement]]
) -> None:
    """Run ``frames`` through every detector, add each one's boxes against the first's to ``tallies``
    (one :class:`Agreement` per detector after the first, in each list), and empty ``frames``."""
    reference = dets[0].infer(frames)
    for i, det in enumerate(dets[1:]):
        for r, c in zip(reference, det.infer(frames), strict=True):
            for tally in tallies:
                tally[i].add(r, c)
    frames.clear()


def agreement_rows(
    model: Path,
    videos: list[Path],
    *,
    variants: list[tuple[str, str]],
    every: int = 1,
    max_frames: int | None = None,
    batch: int = 4,
    device: str = "CPU",
    providers: str | list[str] = "auto",
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Detections of each variant against the first (the reference), on every ``every``-th frame of each
    video (see :mod:`edge.benchmarks.agreement`); one row per video and variant, then one per variant
    over all videos."""
    dets = [
        Detector(
            model,
            providers=providers,
            intra_op_threads=threads,
            max_batch=batch,
            backend=backend,
            device=device,
            precision=precision,
        )
        for backend, precision in variants
    ]
    ref = dets[0].backend
    totals = [Agreement() for _ in dets[1:]]
    rows: list[dict[str, Any]] = []

    def row(det: Detector, video: str, agreement: Agreement) -> dict[str, Any]:
        b = det.backend
        return {
            "model": model.name,
            "video": video,
            "reference": f"{ref.name}/{ref.device}/{ref.precision}",
            "backend": b.name,
            "device": b.device,
            "precision": b.precision,
            "every": every,
            **agreement.summary(),
        }

    for video in videos:
        per_video = [Agreement() for _ in dets[1:]]
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise EdgeError(f"video {video}: cannot be opened")
        index = taken = 0
        pending: list[npt.NDArray[np.uint8]] = []
        try:
            while max_frames is None or taken < max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % every == 0:
                    pending.append(frame.astype("uint8", copy=False))
                    taken += 1
                    if len(pending) == batch:
                        _compare(dets, pending, [per_video, totals])
                index += 1
            if pending:
                _compare(dets, pending, [per_video, totals])
        finally:
            cap.release()
        rows += [row(det, video.name, a) for det, a in zip(dets[1:], per_video, strict=True)]
    rows += [row(det, "all", a) for det, a in zip(dets[1:], totals, strict=True)]
    for det in dets:
        det.backend.close()
    return rows


def variants_of(backends: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """``(backend, precision)`` pairs to measure: ONNX Runtime once (it runs f32), every other backend
    at each precision, in the order given."""
    out: list[tuple[str, str]] = []
    for backend in backends:
        for precision in ["auto"] if backend == "onnxruntime" else precisions:
            if (backend, precision) not in out:
                out.append((backend, precision))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge bench detector",
        description="Detector stage throughput vs the bare runtime call, same session, same process; "
        "several backends side by side, interleaved.",
    )
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="ONNX model(s)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch size(s) (default 1)")
    parser.add_argument("--video", type=Path, default=None, help="video to decode frames from")
    parser.add_argument("--frames", type=int, default=32, help="frames per run (default 32)")
    parser.add_argument("--runs", type=int, default=5, help="runs; medians are reported (default 5)")
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["auto"],
        choices=["auto", "onnxruntime", "openvino"],
        help="backend(s); several are measured side by side, interleaved, the first as the baseline",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["auto"],
        choices=["auto", "f32", "bf16", "f16"],
        help="OpenVINO precision(s) (default auto = f32); ONNX Runtime always runs f32",
    )
    parser.add_argument("--device", default="CPU", help="OpenVINO device: CPU, GPU, NPU, AUTO (default CPU)")
    parser.add_argument("--providers", default="auto", help="'auto' or a comma list, e.g. cuda,cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: all cores)")
    parser.add_argument(
        "--openvino-cache",
        type=Path,
        default=None,
        help="OpenVINO compiled-model cache (default $XDG_CACHE_HOME/edge/openvino); a fresh folder "
        "measures the first start in init_s, a second run on it the cached start",
    )
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="instead of speed: detections of each backend/precision against the first, on the frames of "
        "--video (default: the four shared videos)",
    )
    parser.add_argument("--every", type=int, default=1, help="--agreement: every N-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="--agreement: frames per video")
    parser.add_argument("--json", action="store_true", help="one JSON object per row, one a line")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.runs < 1 or any(b < 1 for b in args.batch):
        parser.error("--frames, --runs and --batch must be >= 1")
    providers: str | list[str] = (
        "auto" if args.providers == "auto" else [p.strip() for p in args.providers.split(",")]
    )
    variants = variants_of(args.backend, args.precision)
    if args.agreement:
        if len(variants) < 2 or args.every < 1:
            parser.error("--agreement needs two or more backend/precision variants and --every >= 1")
        videos = [args.video] if args.video is not None else shared_videos()
        try:
            for model in args.model:
                for r in agreement_rows(
                    model,
                    videos,
                    variants=variants,
                    every=args.every,
                    max_frames=args.max_frames,
                    batch=max(args.batch),
                    device=args.device,
                    providers=providers,
                    threads=args.threads,
                ):
                    print(json.dumps(r), flush=True)
        except EdgeError as exc:
            print(f"edge bench detector: {exc}", file=sys.stderr)
            return exc.exit_code
        return 0
    video: Path = args.video if args.video is not None else default_video()
    try:
        frames = read_frames(video, args.frames)
        rows = []
        for model in args.model:
            for batch in args.batch:
                if args.frames < batch:
                    parser.error(f"--frames {args.frames} is smaller than --batch {batch}")
                got = bench_variants(
                    model,
                    frames,
                    batch=batch,
                    runs=args.runs,
                    variants=variants,
                    device=args.device,
                    providers=providers,
                    threads=args.threads,
                    openvino_cache_dir=args.openvino_cache,
                )
                rows += got
                if args.json:
                    for row in got:
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
