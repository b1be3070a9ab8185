"""What the HTTP thread shows of the running daemon: camera health, annotated frames, configured geometry.

Frames are drawn from each pipeline's :class:`~edge.pipeline.ViewSnapshot`, made on the pipeline thread
only while somebody watches, so encoding a JPEG (about 12 ms at 1080p) never holds anything the
pipeline needs; the only lock is the view's own, because a camera's :class:`~edge.draw.Scene` reuses its
buffers between renders.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from edge.web import CameraInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from edge.clock import Clock
    from edge.config import CameraConfig
    from edge.pipeline import CameraPipeline


class _Stateful(Protocol):
    @property
    def state(self) -> str: ...


class DebugView:
    """The debug view's sources for one daemon.

    Args:
        clock: monotonic clock (fps decay, view requests).
        pipelines: camera name -> pipeline (filled while the daemon starts; read at each request).
        captures: camera name -> capture, for its health state.
        cameras: the current camera configs (they change on reload).
    """

    def __init__(
        self,
        clock: Clock,
        pipelines: Mapping[str, CameraPipeline],
        captures: Mapping[str, _Stateful],
        cameras: Callable[[], Sequence[CameraConfig]],
    ) -> None:
        self._clock = clock
        self._pipelines = pipelines
        self._captures = captures
        self._cameras = cameras
        self._lock = threading.Lock()
        self._render_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[object, bytes]] = {}

    def camera_infos(self) -> list[CameraInfo]:
        now = self._clock.monotonic()
        return [
            CameraInfo(name, capture.state, self._pipelines[name].fps.current(now), True)
            for name, capture in self._captures.items()
        ]

    def jpeg(self, camera: str) -> bytes | None:
        """The newest processed frame of ``camera``, annotated, as JPEG (HTTP thread, only while watched).

        The same snapshot is encoded once: asking again before a new one returns the same bytes object,
        which the MJPEG stream takes as "nothing new".
        """
        pipeline = self._pipelines.get(camera)
        if pipeline is None:
            return None
        pipeline.request_view(self._clock.monotonic())
        snap = pipeline.view()
        if snap is None:
            return None
        with self._lock:
            render_lock = self._render_locks.setdefault(camera, threading.Lock())
        with render_lock:
            cached = self._cache.get(camera)
            if cached is not None and cached[0] is snap:
                return cached[1]
            data = snap.scene.render_jpeg(snap.image, snap.tracked, snap.state, snap.trails)
            self._cache[camera] = (snap, data)
            return data

    def geometry(self, camera: str) -> dict[str, Any] | None:
        """The camera's lines and zones as configured (the debug page draws them over the stream)."""
        cfg = next((c for c in self._cameras() if c.name == camera), None)
        if cfg is None:
            return None
        return {
            "normalized": cfg.coordinates == "normalized",
            "lines": [{"name": ln.name, "points": [list(p) for p in ln.points]} for ln in cfg.lines],
            "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in cfg.zones],
        }
