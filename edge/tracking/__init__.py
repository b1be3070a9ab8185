"""Multi-object tracking: ByteTrack on struct-of-arrays state with Numba kernels (see docs/tracking.md)."""

from edge.tracking.bytetrack import ByteTracker, warmup

__all__ = ["ByteTracker", "warmup"]
