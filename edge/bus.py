"""Tracks bus: every processed frame's tracks on a local ZeroMQ PUB socket, for other programs.

Recorders, UIs and custom logic on the same box subscribe to it instead of decoding the video again. One
message per processed frame, multipart ``[topic, payload]`` with the camera name as topic, so a
subscriber filters cameras with ``SUBSCRIBE`` prefixes. The payload is compact JSON (or msgpack)::

    {"camera": "door", "seq": 1234, "ts": 1700000000.123,
     "boxes": [[x1, y1, x2, y2], ...], "ids": [7, ...], "classes": [0, ...], "scores": [0.91, ...]}

``ids`` are tracker ids (``-1`` for a detection without a confirmed track), the same ids the MQTT events
carry; ``ts`` is the frame's capture wall time in seconds. Boxes are rounded to 0.1 px and scores to
0.001 to keep messages small.

Hand-off policy (principle 1): publishing never waits. When a subscriber's queue reaches ``hwm`` messages
the frame is dropped for every subscriber and counted in ``edge_queue_dropped{queue="tracks_bus",
reason="hwm"}``. A slow subscriber therefore costs everyone frames, never the pipeline latency; subscribers
that need every frame should read promptly or raise ``hwm``.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import zmq

from edge.errors import PublishError

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge.metrics import Metrics
    from edge.types import Detections

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("json", "msgpack")
QUEUE_NAME = "tracks_bus"


def _json_encoder() -> Callable[[dict[str, Any]], bytes]:
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def encode(message: dict[str, Any]) -> bytes:
        return dumps(message).encode()

    return encode


def _msgpack_encoder() -> Callable[[dict[str, Any]], bytes]:
    try:
        # Optional dependency, only needed for fmt="msgpack"; it ships no type information.
        import msgpack  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(
            "tracks bus format 'msgpack' needs the msgpack package (pip install 'edge-analytics[msgpack]')"
        ) from exc
    packer = msgpack.Packer()

    def encode(message: dict[str, Any]) -> bytes:
        return bytes(packer.pack(message))

    return encode


def encode_tracks(camera: str, seq: int, ts: float, dets: Detections) -> dict[str, Any]:
    """The message for one frame, built from whole arrays (no Python object per detection)."""
    return {
        "camera": camera,
        "seq": seq,
        "ts": round(ts, 3),
        # Round in float64: a float32 0.1 step prints as 220.3000030517578, defeating the rounding.
        "boxes": np.round(dets.xyxy.astype(np.float64), 1).tolist(),
        "ids": dets.track_id.tolist(),
        "classes": dets.class_id.tolist(),
        "scores": np.round(dets.confidence.astype(np.float64), 3).tolist(),
    }


class TracksBus:
    """A bound ZeroMQ PUB socket publishing tracks; one per process, shared by all cameras.

    Args:
        endpoint: where to bind, ``tcp://127.0.0.1:PORT`` (keep it on loopback: there is no
            authentication) or ``ipc:///run/edge/tracks.sock``.
        fmt: ``json`` (readable from any language) or ``msgpack`` (about half the size and faster to
            parse; needs the ``msgpack`` package).
        hwm: messages queued per subscriber before frames are dropped. Higher rides out longer subscriber
            stalls at the cost of memory (each message is ~0.1-5 kB) and staleness; lower drops sooner.
        metrics: where drops are counted (``None`` in tests that do not care).
        context: the ZeroMQ context; ``None`` uses the process-wide ``zmq.Context.instance()``.

    Raises:
        ValueError: unknown ``fmt`` or ``hwm < 1``.
        PublishError: the endpoint cannot be bound (port in use, missing directory, bad address).

    ``publish`` may be called from several camera threads: a lock serialises the (non-blocking) send,
    because ZeroMQ sockets are not thread-safe.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        fmt: str = "json",
        hwm: int = 100,
        metrics: Metrics | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"tracks bus format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if hwm < 1:
            raise ValueError(f"tracks bus hwm must be >= 1, got {hwm}")
        self.endpoint = endpoint
        self.fmt = fmt
        self._encode = _json_encoder() if fmt == "json" else _msgpack_encoder()
        self._metrics = metrics
        self._lock = threading.Lock()
        self.sent = 0
        """Frames handed to ZeroMQ."""
        self.dropped = 0
        """Frames dropped because a subscriber's queue was full (also in the metric)."""
        ctx = context if context is not None else zmq.Context.instance()
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, hwm)
        # Without XPUB_NODROP a PUB socket drops silently at the HWM; with it, send raises zmq.Again, so
        # every drop can be counted (libzmq applies this option to PUB as well as XPUB sockets).
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        # Do not hold process exit for undelivered frames: they are stale by then anyway.
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            # A user-facing problem (port taken, directory missing), reported as a line, not a traceback.
            raise PublishError(f"tracks bus: cannot bind {endpoint} ({exc})") from exc
        self._sock: zmq.Socket[Any] | None = sock
        self.bound_endpoint: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        """The endpoint really bound (``tcp://127.0.0.1:*`` resolves to the chosen port)."""
        log.info("tracks bus publishing on %s (%s)", self.bound_endpoint, fmt)

    def publish(self, camera: str, seq: int, ts: float, dets: Detections) -> bool:
        """Send one frame's tracks without waiting; ``False`` if it was dropped (or the bus is closed)."""
        payload = self._encode(encode_tracks(camera, seq, ts, dets))
        topic = camera.encode()
        with self._lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.send_multipart((topic, payload), flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1
                if self._metrics is not None:
                    self._metrics.queue_dropped.labels(queue=QUEUE_NAME, reason="hwm").inc()
                return False
            self.sent += 1
            return True

    def close(self) -> None:
        """Unbind and close the socket; later ``publish`` calls return ``False``. Idempotent."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(linger=0)
            log.info("tracks bus closed (%d sent, %d dropped)", self.sent, self.dropped)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
