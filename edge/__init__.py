"""edge: camera analytics daemon (RTSP -> YOLO on ONNX Runtime -> ByteTrack -> lines/zones -> MQTT)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-analytics")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
