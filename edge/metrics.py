"""Every Prometheus metric edge exports, on one injected registry.

Stages receive the :class:`Metrics` object (or ``None`` in unit tests that do not care) through their
constructor; nothing registers on prometheus-client's global default registry, so tests can build as many
independent instances as they like.

Labels are bounded: camera, line, zone, direction, class name, reason, provider. Never a track id.
Rates (fps, crossings per hour) are left to Prometheus' ``rate()``; only counters are kept here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from edge import __version__

# Frame age and latency: sub-frame resolution at the low end, seconds at the high end, where a stuck
# pipeline shows up.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
INFERENCE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)
TRACKER_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)

CAMERA_STATES = ("connecting", "online", "stalled", "offline", "stopped")


class Metrics:
    """The daemon's metrics. One instance per process (or per test), registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info("edge_build", "Version of the running edge.", registry=r)
        self.build_info.info({"version": __version__})

        # Capture
        self.frames_captured = Counter(
            "edge_frames_captured", "Frames decoded from the source.", ["camera"], registry=r
        )
        self.frames_processed = Counter(
            "edge_frames_processed",
            "Frames that went through detection, tracking and analytics.",
            ["camera"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "edge_frames_dropped",
            "Frames skipped on purpose, by reason: fps_cap (evenly thinned to the configured fps), "
            "superseded (a newer frame replaced it before the detector took it), shutdown.",
            ["camera", "reason"],
            registry=r,
        )
        self.capture_reconnects = Counter(
            "edge_capture_reconnects", "Times a source was closed and opened again.", ["camera"], registry=r
        )
        self.camera_state = Gauge(
            "edge_camera_state",
            "1 for the camera's current capture state, 0 for the others.",
            ["camera", "state"],
            registry=r,
        )
        self.camera_up = Gauge(
            "edge_camera_up", "1 while the camera delivers frames (state online).", ["camera"], registry=r
        )
        self.frame_age = Histogram(
            "edge_frame_age_seconds",
            "Age of a frame (now - capture time) when the detector takes it.",
            ["camera"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.latency = Histogram(
            "edge_capture_to_publish_seconds",
            "End-to-end latency from frame capture to its events being handed to the publisher.",
            ["camera"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )

        # Detector
        self.inference_seconds = Histogram(
            "edge_inference_seconds",
            "Wall time of one batched model run (ORT session.run).",
            buckets=INFERENCE_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "edge_inference_batch_size", "Frames per model run.", buckets=BATCH_BUCKETS, registry=r
        )
        self.detector_provider = Info(
            "edge_detector_provider",
            "What really runs the model: backend (onnxruntime|openvino), provider/device, precision.",
            registry=r,
        )

        # Tracker
        self.tracker_seconds = Histogram(
            "edge_tracker_seconds",
            "Tracker update time per frame.",
            ["camera"],
            buckets=TRACKER_BUCKETS_S,
            registry=r,
        )
        self.active_tracks = Gauge(
            "edge_active_tracks", "Tracks currently confirmed and tracked.", ["camera"], registry=r
        )
        self.tracks_dropped = Counter(
            "edge_tracks_dropped",
            "New tracks not started because the tracker was at max_tracks.",
            ["camera"],
            registry=r,
        )

        # Analytics
        self.line_crossings = Counter(
            "edge_line_crossings",
            "Committed line crossings.",
            ["camera", "line", "direction", "class_name"],
            registry=r,
        )
        self.zone_occupancy = Gauge(
            "edge_zone_occupancy",
            "Objects currently inside a zone.",
            ["camera", "zone", "class_name"],
            registry=r,
        )
        self.zone_events = Counter(
            "edge_zone_events", "Zone enter/exit/loitering events.", ["camera", "zone", "type"], registry=r
        )

        # Publishing
        self.events_published = Counter(
            "edge_events_published", "Events acknowledged by the broker (PUBACK).", ["camera"], registry=r
        )
        self.events_failed = Counter(
            "edge_events_failed",
            "Publish attempts that failed and will be retried from the outbox.",
            ["reason"],
            registry=r,
        )
        self.outbox_depth = Gauge("edge_outbox_depth", "Events waiting in the outbox.", registry=r)
        self.outbox_degraded = Gauge(
            "edge_outbox_degraded",
            "1 while the outbox file cannot be written and events are held in memory.",
            registry=r,
        )
        self.outbox_dropped = Counter(
            "edge_outbox_dropped",
            "Events dropped from the outbox because it hit its count or age bound.",
            ["reason"],
            registry=r,
        )
        self.mqtt_connected = Gauge("edge_mqtt_connected", "1 while connected to the broker.", registry=r)

        self.snapshots = Counter(
            "edge_snapshots", "Event snapshots encoded and handed to the publisher.", ["camera"], registry=r
        )
        self.snapshot_latency = Histogram(
            "edge_snapshot_latency_seconds",
            "From the capture of an event's frame to its snapshot being handed to the publisher.",
            ["camera"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )

        # Internal queues (principle 1: every drop is counted)
        self.queue_dropped = Counter(
            "edge_queue_dropped", "Items dropped by a bounded hand-off.", ["queue", "reason"], registry=r
        )

    def set_camera_state(self, camera: str, state: str) -> None:
        """Set the one-hot ``edge_camera_state`` gauge and ``edge_camera_up``."""
        for s in CAMERA_STATES:
            self.camera_state.labels(camera=camera, state=s).set(1.0 if s == state else 0.0)
        self.camera_up.labels(camera=camera).set(1.0 if state == "online" else 0.0)
