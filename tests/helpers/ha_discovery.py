"""Check Home Assistant MQTT discovery payloads, and render their templates as Home Assistant does.

The schema (tests/data/mqtt/ha_discovery_schema.json) lists, per component, the keys Home Assistant's MQTT
documentation gives; :func:`validate_discovery` reports every key it does not know, wrong types, missing
required keys and values outside the documented enums. :func:`render` evaluates a ``value_template`` with
Jinja2's immutable sandbox and the ``value`` / ``value_json`` variables, which is how Home Assistant's MQTT
integration renders it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "data" / "mqtt" / "ha_discovery_schema.json"

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "string_or_null": (str, type(None)),
    "string_or_list": (str, list),
    "list": (list,),
    "map": (dict,),
    "boolean": (bool,),
    "integer": (int,),
}

_ENV = ImmutableSandboxedEnvironment()


def load_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_PATH.read_text()))


def component_of(topic: str) -> str:
    """``sensor`` of ``homeassistant/sensor/edge_n1/x/config``."""
    parts = topic.split("/")
    return parts[-4] if len(parts) >= 5 else parts[-3]


def _check_fields(where: str, payload: dict[str, Any], fields: dict[str, str]) -> list[str]:
    problems = []
    for key, value in payload.items():
        if key not in fields:
            problems.append(f"{where}: unknown field {key!r}")
            continue
        expected = _TYPES[fields[key]]
        # bool is an int in Python; HA's integers are not booleans.
        if not isinstance(value, expected) or (fields[key] == "integer" and isinstance(value, bool)):
            problems.append(f"{where}: {key!r} should be {fields[key]}, got {type(value).__name__}")
    return problems


def _check_rules(where: str, payload: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    problems = [
        f"{where}: missing required {key!r}" for key in spec.get("required", []) if key not in payload
    ]
    one_of = spec.get("required_one_of")
    if one_of and not any(payload.get(k) for k in one_of):
        problems.append(f"{where}: needs one of {one_of}")
    for key, allowed in spec.get("enums", {}).items():
        if key in payload and payload[key] not in allowed:
            problems.append(f"{where}: {key}={payload[key]!r} not one of {allowed}")
    problems += [
        f"{where}: {group} must not be used together"
        for group in spec.get("mutually_exclusive", [])
        if sum(k in payload for k in group) > 1
    ]
    return problems


def validate_discovery(topic: str, payload: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every way ``payload`` published on ``topic`` breaks the documented schema (empty when valid)."""
    problems = []
    if not re.fullmatch(schema["discovery_topic"]["pattern"], topic):
        problems.append(f"topic {topic!r} does not match {schema['discovery_topic']['format']}")
        return problems
    component = component_of(topic)
    spec = schema["components"][component]
    common = schema["common"]
    problems += _check_fields(component, payload, {**common["fields"], **spec["fields"]})
    problems += _check_rules(component, payload, common)
    problems += _check_rules(component, payload, spec)
    problems += [
        f"{component}: missing {key!r} (needed for device grouping)"
        for key in common["required_for_device_grouping"]
        if key not in payload
    ]
    if component == "sensor" and payload.get("device_class") == "enum":
        # An enum sensor has options and neither a unit nor a state class (HA sensor documentation).
        if not payload.get("options"):
            problems.append("sensor: device_class enum needs options")
        problems += [
            f"sensor: device_class enum cannot have {k!r}"
            for k in ("unit_of_measurement", "state_class")
            if k in payload
        ]
    device = payload.get("device")
    if isinstance(device, dict):
        problems += _check_fields("device", device, schema["device"]["fields"])
        if not any(device.get(k) for k in schema["device"]["required_one_of"]):
            problems.append(f"device: needs one of {schema['device']['required_one_of']}")
        url = device.get("configuration_url")
        if url is not None and not re.match(r"^(https?|homeassistant)://", url):
            problems.append(f"device: configuration_url {url!r} is not an http(s) URL")
    origin = payload.get("origin")
    if isinstance(origin, dict):
        problems += _check_fields("origin", origin, schema["origin"]["fields"])
        problems += _check_rules("origin", origin, schema["origin"])
    return problems


def render(template: str, payload: bytes | str) -> str:
    """``template`` rendered against one MQTT payload, with ``value`` and ``value_json`` set."""
    value = payload.decode() if isinstance(payload, bytes) else payload
    try:
        value_json: Any = json.loads(value)
    except ValueError:
        value_json = None
    return _ENV.from_string(template).render(value=value, value_json=value_json).strip()
