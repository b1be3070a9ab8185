"""``edge replay``: run recorded detections (or a video) through the real tracker and analytics offline.

Users tune lines and zones with it before going live: it writes every event as one JSON line (the
exact bytes the daemon would publish) and prints the count table::

    edge replay --detections MOT17-04/det.txt --config cfg.yaml --camera door --events-out ev.jsonl
    edge replay --video clip.mp4 --config cfg.yaml --camera door --events-out ev.jsonl

MOT ``det.txt`` rows are ``frame,id,x,y,w,h,score[,...]`` with 1-based frames; every frame number from 1
to the last (or the ``seqLength`` of a ``seqinfo.ini`` next to the file) is fed, empty or not, so the
tracker ages lost tracks as it would live. Events carry the MOT frame numbers.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.errors import EdgeError
from edge.events import new_run_id
from edge.pipeline import CameraPipeline, Sink
from edge.tools import report_errors
from edge.tools.specs import build_detector
from edge.types import Detections

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from edge.config import Settings, TrackerConfig
    from edge.events import CameraAnalytics, Event, LineSpec, ZoneSpec

WALL_EPOCH = 1_700_000_000.0
"""Wall-clock time given to frame 1 of a replay, so runs are reproducible byte for byte."""


class Progress:
    """A one-line progress bar on stderr, drawn only on a terminal and only when the percentage changes."""

    def __init__(
        self, total: int, label: str, stream: IO[str] | None = None, *, enabled: bool = True
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._total = max(total, 1)
        self._label = label
        self._shown = -1
        self._enabled = enabled and self._stream.isatty()

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        pct = min(100, done * 100 // self._total)
        if pct != self._shown:
            self._shown = pct
            bar = "#" * (pct // 4)
            self._stream.write(f"\r{self._label} [{bar:<25}] {pct:3d}% ({done}/{self._total} frames)")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._shown >= 0:
            self._stream.write("\n")
            self._stream.flush()


def mot_frames(
    det_path: Path, *, class_id: int = 0, min_score: float = 0.0, last_frame: int | None = None
) -> tuple[int, Iterator[tuple[int, Detections]]]:
    """(number of frames, iterator of (MOT frame number, Detections)) over every frame of a det.txt."""
    from edge.tracking.motio import read_mot_detections  # noqa: PLC0415

    dets = read_mot_detections(det_path, min_score=min_score)
    last = dets.last_frame if last_frame is None else max(last_frame, dets.last_frame)

    def frames() -> Iterator[tuple[int, Detections]]:
        for f in range(1, last + 1):
            xyxy, scores = dets.frame(f)
            n = xyxy.shape[0]
            yield (
                f,
                Detections(
                    xyxy=np.ascontiguousarray(xyxy),
                    confidence=np.ascontiguousarray(scores),
                    class_id=np.full(n, class_id, np.int32),
                    track_id=np.full(n, -1, np.int64),
                ),
            )

    return last, frames()


def run(
    frames: Iterator[tuple[int, Detections]],
    total: int,
    *,
    camera: str,
    lines: Sequence[LineSpec],
    zones: Sequence[ZoneSpec],
    fps: float,
    tracker: TrackerConfig,
    class_names: Sequence[str] = (),
    run_id: str = "replay",
    on_event: Callable[[Event], None] | None = None,
    progress: bool = False,
    size: tuple[int, int] = (0, 0),
) -> CameraAnalytics:
    """Feed frames through the daemon's :class:`~edge.pipeline.CameraPipeline` (a fresh tracker and
    analytics); return the analytics at the end. Frame ``n`` is stamped ``(n - 1) / fps`` seconds after
    :data:`WALL_EPOCH`."""
    pipeline = CameraPipeline(
        camera,
        lambda _w, _h: (lines, zones),
        tracker=tracker,
        class_names=class_names,
        run_id=run_id,
        sink=_EventCallback(on_event),
        frame_rate=fps,
    )
    analytics = pipeline.prepare(size)
    bar = Progress(total, camera, enabled=progress)
    for i, (frame_no, dets) in enumerate(frames):
        t = (frame_no - 1) / fps
        pipeline.step(dets, frame_no=frame_no, ts_wall=WALL_EPOCH + t, ts_mono=t, size=size)
        bar.update(i + 1)
    bar.close()
    return analytics


class _EventCallback(Sink):
    def __init__(self, on_event: Callable[[Event], None] | None) -> None:
        self._on_event = on_event

    def event(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)


def count_table(analytics: CameraAnalytics, class_names: Sequence[str] = ()) -> str:
    """The counts as a plain-text table (one row per line/direction/class and zone/class)."""

    def name(c: int) -> str:
        return class_names[c] if 0 <= c < len(class_names) else str(c)

    rows = [("kind", "name", "direction", "class", "count")]
    for line_name, counter in analytics.lines.items():
        counts = counter.counts()
        for key in ("in", "out"):
            label = counter.spec.labels.get(key, key)
            per_class = counts[key] or {}
            if not per_class:
                rows.append(("line", line_name, f"{key} ({label})", "-", "0"))
            rows.extend(
                ("line", line_name, f"{key} ({label})", name(c), str(n)) for c, n in per_class.items()
            )
    occupancy = analytics.occupancy()
    for zone_name, zone in analytics.zones.items():
        entries = zone.entries()
        if not entries:
            rows.append(("zone", zone_name, "entries", "-", "0"))
        rows.extend(("zone", zone_name, "entries", name(c), str(n)) for c, n in entries.items())
        rows.extend(
            ("zone", zone_name, "inside at end", name(c), str(n)) for c, n in occupancy[zone_name].items()
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _frame_size(args: argparse.Namespace, det_path: Path | None) -> tuple[int, int, float | None]:
    """(width, height, fps or None) from --size or a seqinfo.ini beside the det.txt (or its parent)."""
    width = height = 0
    fps: float | None = None
    if det_path is not None:
        from edge.tracking.motio import read_seqinfo  # noqa: PLC0415

        for cand in (det_path.parent / "seqinfo.ini", det_path.parent.parent / "seqinfo.ini"):
            if cand.is_file():
                info = read_seqinfo(cand)
                width, height, fps = info.width, info.height, info.frame_rate
                break
    if args.size:
        try:
            w, h = args.size.lower().split("x")
            width, height = int(w), int(h)
        except ValueError:
            raise EdgeError(f"--size must look like 1920x1080, got {args.size!r}") from None
    return width, height, fps


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge replay",
        description="Run MOT detections or a video through the tracker and analytics; write events as JSONL.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--detections", type=Path, help="MOT det.txt: frame,id,x,y,w,h,score[,...]")
    src.add_argument("--video", type=Path, help="a video file, run through the configured detector")
    p.add_argument(
        "--config", type=Path, required=True, help="edge YAML config with the camera's lines/zones"
    )
    p.add_argument("--camera", help="camera whose lines and zones to use (default: the only one)")
    p.add_argument("--fps", type=float, help="frame rate (default: seqinfo.ini, the video, the camera, 30)")
    p.add_argument("--size", help="frame size WxH for normalized coordinates (default: seqinfo.ini)")
    p.add_argument("--class", dest="class_name", default="person", help="class of MOT detections")
    p.add_argument("--min-score", type=float, default=0.0, help="drop MOT detections scoring below this")
    p.add_argument("--events-out", type=Path, help="write one event per line here ('-' = stdout)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames (a quick look at a video)")
    p.add_argument("--run-id", help="run_id of the events (default: a new random one); fix it to diff runs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge replay``; returns the exit status."""
    args = parser().parse_args(argv)
    return report_errors("replay", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from edge.config import COCO_CLASSES, load_settings  # noqa: PLC0415
    from edge.tools.specs import camera_specs, find_camera  # noqa: PLC0415

    settings = load_settings(args.config, check_model_classes=args.video is not None)
    try:
        camera = find_camera(settings, args.camera)
    except KeyError as err:
        raise EdgeError(str(err.args[0])) from None
    class_names: Sequence[str] = COCO_CLASSES
    out: IO[bytes] | None = None
    to_stdout = args.events_out is not None and str(args.events_out) == "-"
    if args.events_out is not None:
        out = sys.stdout.buffer if to_stdout else args.events_out.open("wb")
    n_events = 0

    def write(e: Event) -> None:
        nonlocal n_events
        n_events += 1
        if out is not None:
            out.write(e.to_json() + b"\n")

    try:
        if args.video is not None:
            analytics, class_names = _replay_video(args, settings, camera, write)
        else:
            if not args.detections.is_file():
                raise EdgeError(f"{args.detections}: no such file")
            width, height, seq_fps = _frame_size(args, args.detections)
            if camera.coordinates == "normalized" and not (width and height):
                raise EdgeError("normalized coordinates need the frame size: pass --size WxH")
            fps = args.fps or seq_fps or camera.fps or 30.0
            lines, zones = camera_specs(camera, width, height, class_names)
            try:
                cls = list(class_names).index(args.class_name)
            except ValueError:
                cls = int(args.class_name) if args.class_name.isdigit() else -1
            if cls < 0:
                raise EdgeError(f"--class {args.class_name!r} is not a class of the model")
            total, frames = mot_frames(args.detections, class_id=cls, min_score=args.min_score)
            if args.max_frames is not None:
                total = min(total, args.max_frames)
                frames = itertools.islice(frames, args.max_frames)
            analytics = run(
                frames,
                total,
                camera=camera.name,
                lines=lines,
                zones=zones,
                fps=fps,
                tracker=settings.tracker,
                class_names=class_names,
                run_id=args.run_id or new_run_id(),
                on_event=write,
                progress=not args.quiet,
            )
    finally:
        if out is not None and not to_stdout:
            out.close()
    print(count_table(analytics, class_names))
    print(f"{n_events} events")
    return 0


def _replay_video(
    args: argparse.Namespace, settings: Settings, camera: Any, write: Callable[[Event], None]
) -> tuple[CameraAnalytics, Sequence[str]]:
    import cv2  # noqa: PLC0415

    from edge.config import resolve_model_path  # noqa: PLC0415
    from edge.tools.specs import camera_specs  # noqa: PLC0415

    if not args.video.is_file():
        raise EdgeError(f"{args.video}: no such file")
    cap = cv2.VideoCapture(str(args.video))
    if not cap.isOpened():
        raise EdgeError(f"{args.video}: cannot be opened as a video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total else args.max_frames
    fps = args.fps or float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or camera.fps or 30.0
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    m = settings.model
    batch = max(1, m.batch_size)
    config_dir = args.config.parent
    detector = build_detector(m, resolve_model_path(m.path, config_dir), config_dir=config_dir)
    class_names = detector.class_names
    lines, zones = camera_specs(camera, width, height, class_names)

    def frames() -> Iterator[tuple[int, Detections]]:
        n = 0
        while True:
            images: list[npt.NDArray[np.uint8]] = []
            for _ in range(batch if args.max_frames is None else min(batch, args.max_frames - n)):
                ok, image = cap.read()
                if not ok:
                    break
                images.append(np.asarray(image, np.uint8))
            if not images:
                return
            for dets in detector.infer(images):
                n += 1
                yield n, dets

    try:
        analytics = run(
            frames(),
            total,
            camera=camera.name,
            lines=lines,
            zones=zones,
            fps=fps,
            tracker=settings.tracker,
            class_names=class_names,
            run_id=args.run_id or new_run_id(),
            on_event=write,
            progress=not args.quiet,
        )
    finally:
        cap.release()
    return analytics, class_names
