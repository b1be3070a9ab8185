"""Stage objects built from :class:`~edge.config.Settings` for the daemon (kept out of :mod:`edge.app`,
which only sequences them)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, cast

from edge.capture import Capture
from edge.config import load_settings, resolve_model_path
from edge.discovery import CameraSpec, debug_view_url, ha_cameras
from edge.draw import TrailBuffer
from edge.errors import ConfigError
from edge.outbox import Outbox
from edge.pipeline import CameraPipeline, config_geometry
from edge.publisher import Publisher
from edge.sinks import SnapshotSink
from edge.snapshots import SnapshotEncoder
from edge.web import WebServer, health_from_cameras

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edge.capture import CaptureLauncher, FrameNotifier
    from edge.clock import Clock
    from edge.config import CameraConfig, Settings
    from edge.detector import BatchingDetector, Detector
    from edge.events.store import CounterStore
    from edge.lifecycle import WarmupGuard
    from edge.metrics import Metrics
    from edge.pipeline import Sink
    from edge.types import Detections, Frame
    from edge.view import DebugView


log = logging.getLogger(__name__)


def build_capture(
    cam: CameraConfig,
    *,
    clock: Clock,
    metrics: Metrics,
    notifier: FrameNotifier,
    on_state: Callable[[str, str], None],
    launcher: CaptureLauncher | None = None,
) -> Capture:
    """One camera's capture (its reader process is not started). ``launcher`` forks the capture
    processes of all cameras from one pre-imported process, so a camera starts in milliseconds."""
    return Capture(
        cam.name,
        cam.source,
        fps=cam.fps,
        transport=cam.transport,
        loop=cam.loop,
        realtime=cam.realtime,
        stall_timeout=cam.stall_timeout,
        clock=clock,
        metrics=metrics,
        on_state=on_state,
        notify=notifier,
        launcher=launcher,
    )


def build_outbox(settings: Settings, *, metrics: Metrics, clock: Clock) -> Outbox:
    """The durable event outbox in the state directory."""
    q = settings.mqtt
    return Outbox(
        Path(settings.state_dir) / "outbox.sqlite3",
        max_events=q.outbox_max_events,
        max_age_s=q.outbox_max_age_s,
        metrics=metrics,
        clock=clock,
    )


def build_publisher(
    settings: Settings,
    outbox: Outbox,
    *,
    on_line_reset: Callable[[str, str], None],
    metrics: Metrics,
    clock: Clock,
) -> Publisher:
    """The MQTT publisher the ``mqtt`` section describes."""
    return Publisher.from_config(
        settings.node, settings.mqtt, outbox=outbox, on_line_reset=on_line_reset, metrics=metrics, clock=clock
    )


def build_snapshots(
    settings: Settings, publisher: Publisher | None, *, metrics: Metrics, clock: Clock
) -> tuple[SnapshotEncoder, SnapshotSink] | None:
    """The event snapshot encoder (not started) and the sink that feeds it; ``None`` when no enabled
    camera has snapshots on. Each JPEG goes to the publisher (retained ``<camera>/snapshot``) if any."""
    options = {c.name: c.snapshots for c in settings.cameras if c.enabled and c.snapshots.enabled}
    if not options:
        return None
    publish = publisher.set_snapshot if publisher is not None else None
    encoder = SnapshotEncoder(publish, metrics=metrics, clock=clock)
    return encoder, SnapshotSink(encoder, options)


def discovery_specs(settings: Settings, class_names: Sequence[str]) -> list[CameraSpec]:
    """What Home Assistant discovery announces: each enabled camera's lines and zones, classes by name."""
    m = settings.metrics
    url = debug_view_url(m.host, m.port) if m.enabled and m.port else None
    return ha_cameras(settings.cameras, class_names, url)


def build_model(settings: Settings, config_path: Path | None, *, metrics: Metrics) -> Detector:
    """The configured model (blocking: loads and compiles it); caches live in the state directory."""
    from edge.tools.specs import build_detector  # noqa: PLC0415 - loads onnxruntime

    config_dir = config_path.parent if config_path else None
    state = Path(settings.state_dir)
    return build_detector(
        settings.model,
        resolve_model_path(settings.model.path, config_dir),
        metrics=metrics,
        trt_cache_dir=state / "tensorrt",
        openvino_cache_dir=state / "openvino",
        config_dir=config_dir,
        cache_dir=state / "models",
    )


def build_pipeline(
    cam: CameraConfig,
    capture: Capture,
    settings: Settings,
    *,
    class_names: Sequence[str],
    run_id: str,
    sink: Sink,
    store: CounterStore,
    metrics: Metrics,
) -> CameraPipeline:
    """One camera's pipeline, with trails for the debug view."""

    def frame_rate() -> float:
        # Asked at the first frame, when the source's rate is known: the tracker's buffer is in frames,
        # so it is scaled by the rate frames really arrive at.
        return cam.fps or capture.source_fps or 30.0

    return CameraPipeline(
        cam.name,
        config_geometry(cam, class_names),
        tracker=settings.tracker,
        class_names=class_names,
        run_id=run_id,
        sink=sink,
        store=store,
        metrics=metrics,
        frame_rate=frame_rate,
        trails=TrailBuffer(),
    )


def build_batcher(
    model: Detector | WarmupGuard,
    take: Callable[[int, float], list[Frame]],
    deliver: Callable[[Frame, Detections], None],
    settings: Settings,
    *,
    metrics: Metrics,
    clock: Clock,
    on_status: Callable[[str], None] | None = None,
) -> BatchingDetector:
    """The detector thread (not started), taking from ``take`` and delivering to ``deliver``;
    ``on_status`` gets one line per warm-up step, from the thread."""
    from edge.detector import BatchingDetector  # noqa: PLC0415 - loads onnxruntime

    m = settings.model
    return BatchingDetector(
        cast("Detector", model),  # the guard has the two methods the thread calls
        take,
        deliver,
        batch_size=m.batch_size,
        max_batch_wait_ms=m.max_batch_wait_ms,
        metrics=metrics,
        clock=clock,
        name="edge-detector",
        on_status=on_status,
    )


def build_web(
    settings: Settings,
    view: DebugView,
    *,
    metrics: Metrics,
    event_snapshot: Callable[[str], bytes | None],
) -> WebServer:
    """The HTTP endpoint (not started): metrics, health, the debug view."""
    m = settings.metrics
    return WebServer(
        m.host,
        m.port,
        registry=metrics.registry,
        health=lambda: health_from_cameras(view.camera_infos()),
        cameras_info=view.camera_infos,
        jpeg_source=view.jpeg,
        geometry=view.geometry,
        event_snapshot=event_snapshot,
        allowed_hosts=m.allowed_hosts,
    )


def reload_warnings(old: Settings, new: Settings) -> list[str]:
    """What a reload cannot apply (it needs a restart)."""
    warnings = []
    if [c.name for c in new.cameras] != [c.name for c in old.cameras] or any(
        a.source != b.source for a, b in zip(new.cameras, old.cameras, strict=True)
    ):
        warnings.append("camera list or sources changed; restart edge to apply those")
    if new.tracker != old.tracker or new.model.path != old.model.path:
        warnings.append("tracker and model changes need a restart; lines, zones, thresholds applied")
    return warnings


def reread_settings(path: Path, current: Settings) -> Settings | None:
    """The config file read again for a reload, or ``None`` when it is rejected.

    A rejected file is a user error, not a crash: one log line per problem, no traceback, and the running
    configuration stays. What a reload cannot apply is logged as a warning.
    """
    try:
        new = load_settings(path)
    except ConfigError as err:
        for line in err.lines():
            log.error("reload rejected: %s", line)  # noqa: TRY400
        log.error("reload rejected: keeping the running configuration")  # noqa: TRY400
        return None
    for warning in reload_warnings(current, new):
        log.warning("reload: %s", warning)
    return new
