"""edge: camera analytics daemon (RTSP -> YOLO on ONNX Runtime -> ByteTrack -> lines/zones -> MQTT)."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata costs ~0.1 s, and `edge run` must install its signal
    # handlers within a fraction of a second of launch (edge.early_signals), before anything that slow.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("edge-analytics")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
