"""Check Home Assistant MQTT discovery payloads against the hand-written schema in tests/data/mqtt."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "data" / "mqtt" / "ha_sensor_discovery_schema.json"

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "string_or_null": (str, type(None)),
    "string_or_list": (str, list),
    "list": (list,),
    "map": (dict,),
    "boolean": (bool,),
    "integer": (int,),
}


def load_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_PATH.read_text()))


def _check_fields(where: str, payload: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    problems = []
    fields: dict[str, str] = spec["fields"]
    for key, value in payload.items():
        if key not in fields:
            problems.append(f"{where}: unknown field {key!r}")
            continue
        expected = _TYPES[fields[key]]
        # bool is an int in Python; HA's integers are not booleans.
        if not isinstance(value, expected) or (fields[key] == "integer" and isinstance(value, bool)):
            problems.append(f"{where}: {key!r} should be {fields[key]}, got {type(value).__name__}")
    problems += [
        f"{where}: missing required {key!r}" for key in spec.get("required", []) if key not in payload
    ]
    for key, allowed in spec.get("enums", {}).items():
        if key in payload and payload[key] not in allowed:
            problems.append(f"{where}: {key}={payload[key]!r} not one of {allowed}")
    for group in spec.get("mutually_exclusive", []):
        if sum(k in payload for k in group) > 1:
            problems.append(f"{where}: {group} must not be used together")
    return problems


def validate_sensor_discovery(topic: str, payload: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every way ``payload`` published on ``topic`` breaks the documented schema (empty when valid)."""
    problems = []
    if not re.fullmatch(schema["discovery_topic"]["pattern"], topic):
        problems.append(f"topic {topic!r} does not match {schema['discovery_topic']['format']}")
    sensor = schema["sensor"]
    problems += _check_fields("sensor", payload, sensor)
    problems += [
        f"sensor: missing {key!r} (needed for device grouping)"
        for key in sensor["required_for_device_grouping"]
        if key not in payload
    ]
    device = payload.get("device")
    if isinstance(device, dict):
        problems += _check_fields("device", device, schema["device"])
        if not any(device.get(k) for k in schema["device"]["required_one_of"]):
            problems.append(f"device: needs one of {schema['device']['required_one_of']}")
    origin = payload.get("origin")
    if isinstance(origin, dict):
        problems += _check_fields("origin", origin, schema["origin"])
    return problems
