"""Typed, frozen, versioned events and their one JSON encoding.

Every event carries what a consumer needs to de-duplicate and order it: ``event_id`` (unique),
``run_id`` (new per process start, because track ids restart with the process), ``seq`` (per camera,
strictly increasing within a run). ``to_json()`` is the only encoder: compact, UTF-8, keys in the
declared field order, floats rounded at construction, so the same event always gives the same bytes.
``docs/events.schema.json`` is generated from these models by :func:`json_schema_text` (a test checks
the committed file is current)::

    python -c "from edge.events.model import json_schema_text as s; print(s(), end='')" \
        > docs/events.schema.json
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Literal[1] = 1

BBox = tuple[float, float, float, float]
XY = tuple[float, float]


def new_run_id() -> str:
    """A fresh ``run_id`` (12 hex digits of a random UUID); call once per process start."""
    return uuid.uuid4().hex[:12]


def iso_ms(ts: float) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z`` suffix, e.g. ``2026-01-31T12:00:00.123Z``."""
    ms = round(ts * 1000.0)
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


class _Event(BaseModel):
    # Every field is always present in the JSON we emit, so the (serialization) schema marks all required.
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)

    type: str = Field(description="The event type; decides which fields follow.")
    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Bumped on incompatible changes.")
    event_id: str = Field(description="Unique id: '<run_id>-<camera>-<seq>'.")
    run_id: str = Field(description="New on every process start; track ids are only unique within one run.")
    seq: int = Field(ge=0, description="Per camera, strictly increasing within a run.")
    camera: str
    ts: str = Field(description="Capture time of the frame, UTC ISO-8601 with milliseconds.")
    ts_ms: int = Field(description="The same instant in milliseconds since the Unix epoch.")
    frame: int = Field(description="Frame number (the source's, e.g. the MOT frame number in replay).")
    track_id: int = Field(ge=0)
    class_id: int = Field(ge=0)
    class_name: str
    confidence: float = Field(description="Detector score of the box, 4 decimals.")
    bbox: BBox = Field(description="x1, y1, x2, y2 in frame pixels, 1 decimal.")
    anchor_xy: XY = Field(description="The anchor point tested, in frame pixels, 1 decimal.")

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, keys in field order; stable for equal events."""
        return self.__pydantic_serializer__.to_json(self)


class LineCrossing(_Event):
    """A committed crossing of a counting line."""

    type: Literal["line_crossing"] = "line_crossing"
    line: str
    direction: Literal["in", "out"] = Field(description="'in' = to the right-hand side of A->B on screen.")
    label: str = Field(description="The configured display label of the direction.")
    counts: dict[str, int] = Field(
        description="Counts of this line for the event's class after this event, keyed by 'in' and 'out'."
    )
    counts_all: dict[str, int] = Field(description="The same, summed over all classes.")


class _ZoneEvent(_Event):
    zone: str
    occupancy: int = Field(ge=0, description="Tracks of the event's class inside the zone after this event.")
    occupancy_all: int = Field(ge=0, description="Tracks of any class inside the zone after this event.")
    entries: int = Field(ge=0, description="Visits of the event's class that entered the zone so far.")


class ZoneEnter(_ZoneEvent):
    """A track has been inside the zone for ``inertia`` frames."""

    type: Literal["zone_enter"] = "zone_enter"
    dwell_s: float = Field(0.0, description="Always 0 for enter.")
    visit_start: str | None = Field(
        None,
        description=(
            "When the visit began: the capture time of the first inside sighting of the run that entered "
            "(the enter itself fires `inertia` sightings later), UTC ISO-8601 with milliseconds. Dwell and "
            "loitering are measured from this instant. Absent in events written before it existed."
        ),
    )
    visit_start_ms: int | None = Field(
        None, description="The same instant in milliseconds since the Unix epoch."
    )


class ZoneExit(_ZoneEvent):
    """A track left the zone (``left``) or was removed by the tracker while inside (``lost``)."""

    type: Literal["zone_exit"] = "zone_exit"
    reason: Literal["left", "lost"]
    dwell_s: float = Field(ge=0, description="Seconds from entering to leaving, 3 decimals.")


class ZoneLoitering(_ZoneEvent):
    """A track's dwell exceeded ``loiter_seconds``; fires once per visit."""

    type: Literal["zone_loitering"] = "zone_loitering"
    dwell_s: float = Field(ge=0, description="Dwell so far, seconds, 3 decimals.")


Event = Annotated[LineCrossing | ZoneEnter | ZoneExit | ZoneLoitering, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: bytes | str) -> Event:
    """Decode and validate one event from its JSON."""
    return EVENT_ADAPTER.validate_json(data)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of all events (what ``docs/events.schema.json`` holds)."""
    schema = EVENT_ADAPTER.json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edge event"
    schema["description"] = f"Events published by edge, schema_version {SCHEMA_VERSION}."
    return schema


def json_schema_text() -> str:
    """:func:`json_schema` as the exact text of the committed file."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
