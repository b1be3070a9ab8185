"""Line crossing and zone analytics, and the typed events they produce.

Public API: :class:`LineSpec`, :class:`ZoneSpec` (the geometry, in frame pixels),
:class:`CameraAnalytics` (one camera's lines and zones, one ``update()`` per frame), the event models
of :mod:`edge.events.model`, and :class:`CounterStore` (counters that survive restarts).
"""

from edge.events.analytics import CameraAnalytics, Counts
from edge.events.lines import LineSpec
from edge.events.model import (
    SCHEMA_VERSION,
    Event,
    LineCrossing,
    ZoneEnter,
    ZoneExit,
    ZoneLoitering,
    json_schema,
    new_run_id,
    parse_event,
)
from edge.events.store import CounterStore
from edge.events.zones import ZoneSpec

__all__ = [
    "SCHEMA_VERSION",
    "CameraAnalytics",
    "CounterStore",
    "Counts",
    "Event",
    "LineCrossing",
    "LineSpec",
    "ZoneEnter",
    "ZoneExit",
    "ZoneLoitering",
    "ZoneSpec",
    "json_schema",
    "new_run_id",
    "parse_event",
]
