"""``edge annotate``: run a video through the real detector, tracker and analytics and draw the result.

The output is the check users want before going live: every box with ``id class conf``, trails of the
point that lines and zones test, the configured lines with their in/out counts, zones with occupancy and
a frame counter, written as an MP4 with the input's frame rate and frame count::

    edge annotate clip.mp4 --config cfg.yaml --camera door --out door.mp4

The video is read as fast as the machine allows (no real-time pacing): a reader thread decodes ahead of
the model through a small bounded queue. Offline nothing may be lost, so that queue blocks instead of
dropping: decoding simply waits for the model.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.config import load_settings, resolve_model_path
from edge.draw import TrailBuffer
from edge.errors import EdgeError, SourceError
from edge.pipeline import CameraPipeline, scene_for, scene_state
from edge.tools import report_errors
from edge.tools.specs import build_detector, camera_specs, find_camera

if TYPE_CHECKING:
    import numpy.typing as npt

    from edge.config import CameraConfig, Settings

__all__ = ["Progress", "annotate", "main", "parser", "scene_for", "scene_state"]  # scene_*: pipeline's

WALL_EPOCH = 1_700_000_000.0
"""Wall-clock time given to frame 1, so annotations of the same video are reproducible."""

READ_AHEAD_BATCHES = 2
"""Batches the reader thread decodes ahead of the model; more smooths decode jitter, costs a frame each."""


class Progress:
    """A one-line progress bar with speed and ETA on a terminal's stderr (silent when not a terminal)."""

    def __init__(self, total: int, stream: IO[str] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._total = total
        self._enabled = enabled and self._stream.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        # Redraw at most 10 times a second: a terminal write per frame would cost more than drawing.
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        fps = done / max(now - self._start, 1e-9)
        if self._total > 0:
            frac = min(done / self._total, 1.0)
            bar = "#" * int(frac * 30)
            eta = (self._total - done) / fps if fps > 0 else 0.0
            line = (
                f"\r[{bar:<30}] {frac * 100:5.1f}% {done}/{self._total} frames {fps:5.1f} fps ETA {eta:4.0f}s"
            )
        else:
            line = f"\r{done} frames {fps:5.1f} fps"
        self._stream.write(line)
        self._stream.flush()

    def close(self, done: int) -> None:
        if self._enabled:
            self.update(done, force=True)
            self._stream.write("\n")
            self._stream.flush()


class _Reader:
    """Decodes the video in a named thread into a bounded, blocking queue (offline: lossless)."""

    _END = None

    def __init__(self, capture: Any, max_frames: int | None, depth: int) -> None:
        self._cap = capture
        self._max = max_frames
        self.frames: queue.Queue[npt.NDArray[np.uint8] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="annotate-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set() and (self._max is None or n < self._max):
                ok, image = self._cap.read()
                if not ok:
                    break
                n += 1
                self._put(image)
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.error = exc
        finally:
            self._put(self._END)

    def _put(self, item: npt.NDArray[np.uint8] | None) -> None:
        while not self._stop.is_set():
            try:
                self.frames.put(item, timeout=0.1)
            except queue.Full:
                continue
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge annotate",
        description="Draw detections, tracks, lines and zones on a video and write it as MP4.",
    )
    p.add_argument("video", type=Path, help="input video file")
    p.add_argument("--config", type=Path, required=True, help="edge YAML config with the camera's geometry")
    p.add_argument("--camera", help="camera whose lines and zones to draw (default: the only one)")
    p.add_argument("--out", type=Path, required=True, help="output MP4 file")
    p.add_argument("--model", type=Path, help="ONNX model to use instead of the config's model.path")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge annotate``; returns the exit status."""
    args = parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        print("edge annotate: --max-frames must be >= 1", file=sys.stderr)
        return 2

    def body() -> int:
        frames = annotate(args)
        print(f"{args.out}: {frames} frames written", file=sys.stderr)
        return 0

    return report_errors("annotate", body)


def annotate(args: argparse.Namespace) -> int:
    """Run the whole annotation; returns the number of frames written."""
    # With --model the config's model may be absent; class names then come from the given model.
    settings = load_settings(args.config, check_model_classes=args.model is None)
    try:
        camera = find_camera(settings, args.camera)
    except KeyError as err:
        raise EdgeError(str(err.args[0])) from None
    if not args.video.is_file():
        raise SourceError(f"{args.video}: no such file")
    cap = cv2.VideoCapture(str(args.video))
    if not cap.isOpened():
        raise SourceError(f"{args.video}: cannot be opened as a video")
    try:
        return _annotate(args, settings, camera, cap)
    finally:
        cap.release()


def _annotate(args: argparse.Namespace, settings: Settings, camera: CameraConfig, cap: Any) -> int:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or camera.fps or 30.0
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total > 0 else args.max_frames

    m = settings.model
    model_path = args.model if args.model is not None else resolve_model_path(m.path, args.config.parent)
    batch = max(1, m.batch_size)
    detector = build_detector(m, model_path, config_dir=args.config.parent)
    class_names = detector.class_names
    t = settings.tracker
    lines, zones = camera_specs(camera, width, height, class_names)
    pipeline = CameraPipeline(
        camera.name,
        lambda _w, _h: (lines, zones),
        tracker=t,
        class_names=class_names,
        run_id="annotate",
        frame_rate=fps,
        trails=TrailBuffer(max_tracks=min(t.max_tracks, 512)),
    )
    analytics = pipeline.prepare((width, height))
    scene, trails = pipeline.scene, pipeline.trails
    assert scene is not None
    assert trails is not None

    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise EdgeError(f"{args.out}: cannot write an MP4 there (OpenCV's mp4v writer did not open)")

    reader = _Reader(cap, args.max_frames, depth=READ_AHEAD_BATCHES * batch)
    bar = Progress(total, enabled=not args.quiet)
    written = 0
    try:
        ended = False
        while not ended:
            images: list[npt.NDArray[np.uint8]] = []
            while len(images) < batch:
                item = reader.frames.get()
                if item is None:
                    ended = True
                    break
                images.append(item)
            if reader.error is not None:
                raise reader.error
            if not images:
                break
            for image, dets in zip(images, detector.infer(images), strict=True):
                ts = written / fps
                step = pipeline.step(
                    dets, frame_no=written + 1, ts_wall=WALL_EPOCH + ts, ts_mono=ts, size=(width, height)
                )
                scene.draw(image, step.tracked, scene_state(analytics, written + 1, fps), trails)
                writer.write(image)
                written += 1
                bar.update(written)
    finally:
        reader.stop()
        writer.release()
        bar.close(written)
    if written == 0:
        raise SourceError(f"{args.video}: no frame could be decoded")
    return written
