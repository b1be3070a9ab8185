"""The committed JSON Schema of events is the one generated from the models."""

from __future__ import annotations

import json
from pathlib import Path

from edge.events.model import json_schema_text

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "events.schema.json"


def test_committed_schema_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == json_schema_text(), (
        "docs/events.schema.json is stale: regenerate it, see edge/events/model.py"
    )


def test_schema_requires_identity_fields() -> None:
    defs = json.loads(SCHEMA.read_text(encoding="utf-8"))["$defs"]
    for name in ("LineCrossing", "ZoneEnter", "ZoneExit", "ZoneLoitering"):
        required = set(defs[name]["required"])
        assert {"event_id", "run_id", "seq", "camera", "ts", "ts_ms", "frame", "track_id"} <= required
