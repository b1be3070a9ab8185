"""The detector's view of the cameras: the newest frame of each, handed out fairly.

:class:`CameraSet` is the frame source of :class:`~edge.detector.BatchingDetector` (its ``take``). Each
camera keeps only its newest frame (the capture's latest-frame slot drops, and counts, superseded frames);
a batch takes at most one frame per camera, and the camera asked first rotates from batch to batch so no
camera is starved when the batch is smaller than the number of cameras.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge.capture import FrameNotifier
    from edge.types import Frame


class FrameSource(Protocol):
    """What the camera set reads of a capture: its latest-frame slot."""

    def poll(self) -> Frame | None:
        """The newest frame not handed out yet, or ``None``."""
        ...


class CameraSet:
    """Cameras whose newest frames are gathered into batches.

    Args:
        notifier: woken by every capture when a frame arrives (so waiting costs no polling).
        idle_wait_s: how long :meth:`take` waits for a first frame before returning empty. Longer idles
            more cheaply; shorter lets the detector thread notice a stop sooner.
    """

    def __init__(self, notifier: FrameNotifier, *, idle_wait_s: float = 0.1) -> None:
        self.notifier = notifier
        self.idle_wait_s = idle_wait_s
        self._sources: dict[str, FrameSource] = {}
        self._rr = 0  # round-robin start for fair batching across cameras

    def add(self, name: str, source: FrameSource) -> None:
        """Add a camera (before the detector starts taking)."""
        self._sources[name] = source

    def __len__(self) -> int:
        return len(self._sources)

    def take(self, max_n: int, timeout_s: float) -> list[Frame]:
        """Up to ``max_n`` newest frames across cameras (at most one per camera), for one batch.

        Waits up to ``idle_wait_s`` for the first frame, then at most ``timeout_s`` more to fill the batch
        from other cameras.
        """
        sources = list(self._sources.items())
        if not sources:
            time.sleep(self.idle_wait_s)
            return []
        frames: list[Frame] = []
        taken: set[str] = set()
        n = len(sources)
        idle_deadline = time.monotonic() + max(timeout_s, self.idle_wait_s)
        fill_deadline: float | None = None
        while True:
            version = self.notifier.version
            for i in range(n):
                name, source = sources[(self._rr + i) % n]
                if name in taken:
                    continue
                frame = source.poll()
                if frame is not None:
                    frames.append(frame)
                    taken.add(name)
                    if len(frames) >= max_n:
                        break
            if len(frames) >= max_n or len(taken) == n:
                break
            now = time.monotonic()
            if frames:
                if fill_deadline is None:  # the batch window opens with its first frame
                    fill_deadline = now + timeout_s
                remaining = fill_deadline - now
            else:
                remaining = idle_deadline - now
            if remaining <= 0:
                break
            self.notifier.wait(version, remaining)
        self._rr = (self._rr + 1) % n
        return frames
