"""Stage objects built from :class:`~edge.config.Settings` for the daemon (kept out of :mod:`edge.app`,
which only sequences them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge.capture import Capture
from edge.discovery import CameraSpec, debug_view_url, ha_cameras
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.sinks import SnapshotSink
from edge.snapshots import SnapshotEncoder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edge.capture import FrameNotifier
    from edge.clock import Clock
    from edge.config import CameraConfig, Settings
    from edge.metrics import Metrics


def build_capture(
    cam: CameraConfig,
    *,
    clock: Clock,
    metrics: Metrics,
    notifier: FrameNotifier,
    on_state: Callable[[str, str], None],
) -> Capture:
    """One camera's reader thread (not started)."""
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
    q = settings.mqtt
    return Publisher(
        settings.node,
        host=q.host,
        port=q.port,
        username=q.username,
        password=q.password,
        tls_ca=Path(q.tls_ca) if q.tls_ca else None,
        tls_cert=Path(q.tls_cert) if q.tls_cert else None,
        tls_key=Path(q.tls_key) if q.tls_key else None,
        tls_insecure=q.tls_insecure,
        protocol=q.protocol,
        client_id=q.client_id,
        keepalive=q.keepalive,
        topic_prefix=q.topic_prefix,
        qos=q.qos,
        outbox=outbox,
        ha_discovery=q.ha_discovery,
        ha_prefix=q.ha_prefix,
        on_line_reset=on_line_reset,
        metrics=metrics,
        clock=clock,
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
