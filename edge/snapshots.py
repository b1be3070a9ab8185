"""Event snapshots: a JPEG of the frame an event happened in, with the object's box, off the pipeline thread.

The pipeline thread only hands over a reference to the frame (capture never reuses the buffer of a frame
it handed out) and the boxes of that frame's events: :meth:`SnapshotEncoder.submit` takes a lock, appends,
and signals. Scaling, drawing and JPEG encoding run in one named thread (``edge-snapshots``), which
publishes each JPEG (retained, ``edge/<node>/<camera>/snapshot``) and keeps the newest per camera for the
debug view's ``/cameras/<camera>/event.jpg``.

Hand-off (principle 1): a bounded queue of ``capacity`` frames. When encoding falls behind, the *oldest*
waiting request is dropped (the newest event is the one a notification wants to show) and counted in
``edge_queue_dropped_total{queue="snapshots", reason="behind"}``; requests after :meth:`stop` are counted
with ``reason="stopped"``. The queue holds frame references, so its memory bound is ``capacity`` frames.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import cv2
import numpy as np

from edge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy.typing as npt

    from edge.metrics import Metrics

log = logging.getLogger(__name__)

BOX_COLOR = (0, 255, 0)  # BGR green: stands out on most street scenes, and is what people expect
_MIN_CROP = 96  # pixels: a crop narrower than this shows too little context to recognise anything


class SnapshotOptions(Protocol):
    """How one camera's snapshots look (:class:`edge.config.SnapshotConfig` has these fields)."""

    @property
    def mode(self) -> Literal["full", "crop"]: ...
    @property
    def max_width(self) -> int: ...
    @property
    def quality(self) -> int: ...
    @property
    def crop_margin(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Options:
    """Plain :class:`SnapshotOptions` (tests, tools)."""

    mode: Literal["full", "crop"] = "full"
    max_width: int = 640
    quality: int = 80
    crop_margin: float = 0.5


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """One frame with the boxes of the events it produced.

    ``boxes``: ``(x1, y1, x2, y2)`` in frame pixels, one per event; ``labels``: text drawn at each box
    (class names); ``captured_mono``: the frame's capture time, for the latency metric; ``event_ids``:
    written into the JPEG's comment, so a consumer can tell which events a snapshot shows.
    """

    camera: str
    image: npt.NDArray[np.uint8]
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[str, ...]
    options: SnapshotOptions
    captured_mono: float = 0.0
    event_ids: tuple[str, ...] = ()


def _crop_region(
    box: tuple[float, float, float, float], margin: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """The box grown by ``margin`` of its size on each side (at least ``_MIN_CROP`` wide and high),
    clipped to the frame."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    w = max((x2 - x1) * (1.0 + 2.0 * margin), _MIN_CROP)
    h = max((y2 - y1) * (1.0 + 2.0 * margin), _MIN_CROP)
    left, top = max(0, int(cx - w / 2.0)), max(0, int(cy - h / 2.0))
    right, bottom = min(width, int(np.ceil(cx + w / 2.0))), min(height, int(np.ceil(cy + h / 2.0)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def with_comment(jpeg: bytes, text: str) -> bytes:
    """``jpeg`` with a COM segment holding ``text`` (ASCII, cut to fit one segment) right after SOI."""
    data = text.encode("ascii", "replace")[:65000]
    return jpeg[:2] + b"\xff\xfe" + (len(data) + 2).to_bytes(2, "big") + data + jpeg[2:]


def jpeg_comment(jpeg: bytes) -> str | None:
    """The text of the COM segment :func:`with_comment` wrote, if ``jpeg`` starts with one."""
    if jpeg[2:4] != b"\xff\xfe":
        return None
    size = int.from_bytes(jpeg[4:6], "big")
    return jpeg[6 : 4 + size].decode("ascii", "replace")


def render_snapshot(
    image: npt.NDArray[np.uint8],
    boxes: Sequence[tuple[float, float, float, float]],
    labels: Sequence[str],
    options: SnapshotOptions,
) -> bytes:
    """JPEG bytes of ``image`` (never modified) with ``boxes`` drawn, scaled to ``options.max_width``.

    ``crop`` mode cuts out the region around the union of the boxes (plus ``crop_margin``); ``full``
    keeps the whole frame.
    """
    height, width = image.shape[:2]
    left, top = 0, 0
    view = image
    if options.mode == "crop" and boxes:
        union = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        left, top, right, bottom = _crop_region(union, options.crop_margin, width, height)
        view = image[top:bottom, left:right]
    scale = min(1.0, options.max_width / view.shape[1])
    if scale < 1.0:
        size = (max(1, round(view.shape[1] * scale)), max(1, round(view.shape[0] * scale)))
        out = cv2.resize(view, size, interpolation=cv2.INTER_AREA)  # a new array: the frame stays as is
    else:
        out = view.copy()
    thickness = max(2, round(out.shape[1] / 320))
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        # Drawn just outside the box, so the lines cover none of the object (small ones are a few pixels).
        pad = thickness // 2 + 2
        p1 = (round((x1 - left) * scale) - pad, round((y1 - top) * scale) - pad)
        p2 = (round((x2 - left) * scale) + pad, round((y2 - top) * scale) + pad)
        cv2.rectangle(out, p1, p2, BOX_COLOR, thickness, cv2.LINE_8)
        if label:
            at = (p1[0] + 2, max(p1[1] - 4, 12))
            cv2.putText(out, label, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOR, 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(options.quality)])
    if not ok:  # pragma: no cover - OpenCV fails only on empty or odd-typed input, which callers never pass
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class SnapshotEncoder:
    """Encodes :class:`SnapshotRequest` s in a named thread and hands each JPEG to ``publish``.

    Args:
        publish: called in the encoder thread with ``(camera, jpeg)``; must not block for long (the MQTT
            publisher only stores the bytes and wakes its thread).
        capacity: frames waiting at most. More rides out a burst of events, costs a frame's memory each;
            4 is 2 s of events at the rate a busy line produces them.
        metrics: ``edge_snapshots_total``, ``edge_snapshot_latency_seconds`` and the drop counter.
        clock: monotonic time for the latency metric.
    """

    def __init__(
        self,
        publish: Callable[[str, bytes], None] | None = None,
        *,
        capacity: int = 4,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        name: str = "edge-snapshots",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.publish = publish
        self.capacity = capacity
        self._metrics = metrics
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._name = name
        self._queue: collections.deque[SnapshotRequest] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._latest: dict[str, bytes] = {}
        self.encoded = 0
        self.dropped = 0

    def start(self) -> None:
        """Start the encoder thread."""
        if self._thread is not None:
            raise RuntimeError("SnapshotEncoder.start() called twice")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Encode what is queued within ``timeout`` s, then end the thread; later requests are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("snapshot encoder did not stop within %.1f s", timeout)

    def submit(self, request: SnapshotRequest) -> bool:
        """Queue ``request`` (pipeline thread; never blocks). ``False`` if it was dropped at once."""
        dropped: SnapshotRequest | None = None
        with self._cond:
            if self._stopping:
                self._count_drop(request.camera, "stopped")
                return False
            if len(self._queue) >= self.capacity:
                dropped = self._queue.popleft()
            self._queue.append(request)
            self._cond.notify()
        if dropped is not None:
            self._count_drop(dropped.camera, "behind")
        return True

    def latest(self, camera: str) -> bytes | None:
        """The newest snapshot of ``camera`` (any thread), ``None`` before its first event."""
        return self._latest.get(camera)

    @property
    def pending(self) -> int:
        """Requests waiting to be encoded."""
        return len(self._queue)

    def _count_drop(self, camera: str, reason: str) -> None:
        self.dropped += 1
        if self._metrics is not None:
            self._metrics.queue_dropped.labels(queue="snapshots", reason=reason).inc()
        log.debug("snapshot of camera=%s dropped: %s", camera, reason)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return  # stopping, and everything queued is done
                request = self._queue.popleft()
            data = render_snapshot(request.image, request.boxes, request.labels, request.options)
            if request.event_ids:
                data = with_comment(data, "edge events: " + " ".join(request.event_ids))
            self._latest[request.camera] = data  # one bytes object per camera: a dict store is atomic
            if self.publish is not None:
                self.publish(request.camera, data)
            self.encoded += 1
            if self._metrics is not None:
                self._metrics.snapshots.labels(camera=request.camera).inc()
                age = self._clock.monotonic() - request.captured_mono
                self._metrics.snapshot_latency.labels(camera=request.camera).observe(age)
