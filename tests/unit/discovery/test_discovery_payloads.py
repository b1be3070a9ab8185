"""Home Assistant discovery: documented keys per component, displayed values, names, removal bookkeeping.

Values are checked the way Home Assistant computes them: each ``value_template`` is rendered with Jinja2
against the state payload edge publishes (:func:`edge.discovery.line_state_payload` /
``zone_state_payload``), and the result must be the true count.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from helpers.ha_discovery import component_of, load_schema, render, validate_discovery

from edge.config import COCO_CLASSES, load_settings
from edge.discovery import (
    EMPTY_ZONE_STATE,
    CameraSpec,
    DiscoveryLedger,
    LineSpec,
    ZoneSpec,
    debug_view_url,
    discovery_configs,
    ha_cameras,
    ha_id,
    line_state_payload,
    zone_state_payload,
)
from edge.events.model import LineCrossing, ZoneExit
from edge.publisher import Topics

DEMO = Path(__file__).resolve().parents[3] / "config" / "demo.yaml"
NAMES = list(COCO_CLASSES)  # person=0, bicycle=1, car=2, motorcycle=3, bus=5, truck=7
TOPICS = Topics("edge", "n1")

CAMERAS = [
    CameraSpec(
        "gate",
        lines=(LineSpec("door", ("person", "car"), ("inside", "outside")), LineSpec("all")),
        zones=(ZoneSpec("desk", ("person",), loitering=True), ZoneSpec("yard")),
        snapshots=True,
        url="http://box:9108/cameras/gate",
    ),
    CameraSpec("Back Yard", zones=(ZoneSpec("lawn", ("dog",)),)),
]


def by_unique_id(cameras: list[CameraSpec]) -> dict[str, dict[str, object]]:
    return {str(p["unique_id"]): p for _, p in discovery_configs(TOPICS, cameras)}


def full_names(configs: list[tuple[str, dict[str, object]]]) -> list[str]:
    """What Home Assistant displays: the device name, then the entity name (has_entity_name)."""
    return [f"{p['device']['name']} {p['name']}" for _, p in configs]  # type: ignore[index]


# -- schema --------------------------------------------------------------------------------------------


def test_every_payload_passes_the_documented_schema_of_its_component() -> None:
    schema = load_schema()
    configs = discovery_configs(TOPICS, CAMERAS)
    seen = Counter(component_of(t) for t, _ in configs)
    assert set(seen) == {"sensor", "binary_sensor", "button", "event", "image"}
    for topic, payload in configs:
        assert validate_discovery(topic, payload, schema) == [], topic
        assert topic.startswith("homeassistant/")
        assert topic.endswith("/config")
    unique = [p["unique_id"] for _, p in configs]
    assert len(set(unique)) == len(unique)
    assert len({t for t, _ in configs}) == len(configs)


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("homeassistant/sensor/a b/config", {}, ["topic"]),
        (
            "homeassistant/sensor/n/x/config",
            {"state_class": "sometimes", "device": {"name": "x"}, "qos": True, "bogus": 1},
            ["state_topic", "unique_id", "state_class", "identifiers", "qos", "bogus"],
        ),
        ("homeassistant/sensor/n/x/config", {"state_topic": "t", "device_class": "enum"}, ["options"]),
        (
            "homeassistant/binary_sensor/n/x/config",
            {"state_topic": "t", "device_class": "people"},
            ["people"],
        ),
        ("homeassistant/button/n/x/config", {"state_topic": "t"}, ["command_topic", "state_topic"]),
        ("homeassistant/event/n/x/config", {"state_topic": "t"}, ["event_types"]),
        ("homeassistant/image/n/x/config", {"qos": 1}, ["image_topic", "qos"]),
        (
            "homeassistant/image/n/x/config",
            {
                "image_topic": "a",
                "url_topic": "b",
                "device": {"identifiers": ["x"], "configuration_url": "box"},
            },
            ["must not be used together", "configuration_url"],
        ),
    ],
)
def test_schema_validator_catches_mistakes(
    topic: str, payload: dict[str, object], expected: list[str]
) -> None:
    text = "\n".join(validate_discovery(topic, payload, load_schema()))
    for word in expected:
        assert word in text


def test_devices_one_per_camera_under_the_node() -> None:
    configs = discovery_configs(TOPICS, CAMERAS)
    devices = {json.dumps(p["device"], sort_keys=True) for _, p in configs}
    assert len(devices) == 1 + len(CAMERAS)
    for _, p in configs:
        device = p["device"]
        if device["identifiers"] == ["edge_n1"]:
            assert device["name"] == "edge n1"
        else:
            assert device["via_device"] == "edge_n1"
            assert device["name"] in {"gate", "Back Yard"}
        if device["name"] == "gate":
            assert device["configuration_url"] == "http://box:9108/cameras/gate"
        if device["name"] == "Back Yard":
            assert "configuration_url" not in device


def test_units_icons_and_state_classes() -> None:
    ids = by_unique_id(CAMERAS)
    door = ids["edge_n1_gate_line_door_in_person"]
    assert (door["state_class"], door["unit_of_measurement"], door["icon"]) == (
        "total_increasing",
        "crossings",
        "mdi:counter",
    )
    desk = ids["edge_n1_gate_zone_desk_person"]
    assert (desk["state_class"], desk["unit_of_measurement"], desk["icon"]) == (
        "measurement",
        "people",
        "mdi:account-multiple",
    )
    status = ids["edge_n1_gate_status"]
    assert status["device_class"] == "enum"
    assert "online" in status["options"]
    assert "stalled" in status["options"]
    assert status["state_topic"] == "edge/n1/gate/status"
    occupied = ids["edge_n1_gate_zone_desk_occupied"]
    assert occupied["device_class"] == "occupancy"
    image = ids["edge_n1_gate_snapshot"]
    assert (image["image_topic"], image["content_type"]) == ("edge/n1/gate/snapshot", "image/jpeg")
    assert "edge_n1_back_yard_snapshot" not in ids  # snapshots off for that camera
    connectivity = ids.pop("edge_n1_node_connectivity")
    assert (connectivity["state_topic"], connectivity["device_class"]) == (
        "edge/n1/availability",
        "connectivity",
    )
    for p in ids.values():  # every other entity follows the node's availability
        assert p["availability_topic"] == "edge/n1/availability"


def test_reset_button_publishes_a_fresh_reset_command() -> None:
    button = by_unique_id(CAMERAS)["edge_n1_gate_line_door_reset"]
    assert button["command_topic"] == "edge/n1/gate/lines/door/reset"
    assert TOPICS.parse_reset(str(button["command_topic"])) == ("gate", "door")
    assert button["retain"] is False  # a retained reset would fire again at every restart


# -- displayed values ------------------------------------------------------------------------------------

# (line classes, counts by class id per direction): the true count of each class, and of all classes.
LINE_CASES = [
    ((), {"in": {0: 11}, "out": {}}),
    ((), {"in": {0: 3, 2: 4}, "out": {7: 1}}),
    (("person",), {"in": {0: 11}, "out": {0: 2}}),
    (("car", "truck", "bus"), {"in": {2: 5, 5: 1}, "out": {7: 2, 2: 1}}),
    (("car", "truck"), {}),
]


@pytest.mark.parametrize(("classes", "counts"), LINE_CASES)
def test_line_templates_show_the_true_count(
    classes: tuple[str, ...], counts: dict[str, dict[int, int]]
) -> None:
    payload = json.dumps(line_state_payload(counts, NAMES))
    cam = CameraSpec("cam0", lines=(LineSpec("road", classes),))
    sensors = [p for t, p in discovery_configs(TOPICS, [cam]) if "/sensor/" in t and "_line_" in t]
    assert sensors
    for p in sensors:
        *_, direction, what = str(p["unique_id"]).split("_")
        true = counts.get(direction, {})
        expected = sum(true.values()) if what == "total" else true.get(NAMES.index(what), 0)
        assert render(str(p["value_template"]), payload) == str(expected), p["name"]


ZONE_CASES = [
    ((), {0: 1}),  # the "one person displays as occupancy 2"
    ((), {0: 2, 2: 1}),
    (("person",), {0: 1}),
    (("person", "dog"), {16: 2}),
    (("person",), {}),
]


@pytest.mark.parametrize(("classes", "occupancy"), ZONE_CASES)
def test_zone_templates_show_the_true_occupancy(classes: tuple[str, ...], occupancy: dict[int, int]) -> None:
    payload = json.dumps(zone_state_payload(occupancy, NAMES))
    cam = CameraSpec("cam0", zones=(ZoneSpec("yard", classes),))
    configs = discovery_configs(TOPICS, [cam])
    sensors = [p for t, p in configs if "/sensor/" in t and "_zone_" in t]
    assert sensors
    for p in sensors:
        what = str(p["unique_id"]).rsplit("_", 1)[1]
        expected = sum(occupancy.values()) if what == "total" else occupancy.get(NAMES.index(what), 0)
        assert render(str(p["value_template"]), payload) == str(expected), p["name"]
    (occupied,) = [p for t, p in configs if "/binary_sensor/" in t and "_zone_" in t]
    assert render(str(occupied["value_template"]), payload) == ("ON" if occupancy else "OFF")
    assert render(str(occupied["value_template"]), json.dumps(EMPTY_ZONE_STATE)) == "OFF"


def test_templates_read_a_state_without_total_as_zero() -> None:
    cam = CameraSpec("cam0", lines=(LineSpec("road"),), zones=(ZoneSpec("yard"),))
    for topic, p in discovery_configs(TOPICS, [cam]):
        if "value_template" in p and "/event/" not in topic:
            assert render(str(p["value_template"]), "{}") in {"0", "OFF"}, topic


def _crossing() -> LineCrossing:
    return LineCrossing(
        event_id="r-cam0-7", run_id="r", seq=7, camera="cam0", ts="2026-01-01T00:00:00.000Z", ts_ms=0,
        frame=1, track_id=3, class_id=2, class_name="car", confidence=0.9, bbox=(1.0, 2.0, 3.0, 4.0),
        anchor_xy=(2.0, 4.0), line="road", direction="in", label="towards camera",
        counts={"in": 1, "out": 0}, counts_all={"in": 1, "out": 0},
    )  # fmt: skip


def test_event_entities_turn_edge_events_into_typed_events_with_attributes() -> None:
    cam = CameraSpec("cam0", lines=(LineSpec("road"), LineSpec("path")), zones=(ZoneSpec("yard"),))
    ids = by_unique_id([cam])
    crossing = ids["edge_n1_cam0_events_line_crossing"]
    assert crossing["state_topic"] == "edge/n1/cam0/events/line_crossing"
    rendered = json.loads(render(str(crossing["value_template"]), _crossing().to_json()))
    assert rendered["event_type"] in crossing["event_types"]  # type: ignore[operator]
    assert rendered["event_type"] == "road_in"
    assert (rendered["class"], rendered["direction"], rendered["direction_label"]) == (
        "car",
        "in",
        "towards camera",
    )
    exit_entity = ids["edge_n1_cam0_events_zone_exit"]
    ev = ZoneExit(
        event_id="r-cam0-8", run_id="r", seq=8, camera="cam0", ts="2026-01-01T00:00:00.000Z", ts_ms=0,
        frame=2, track_id=3, class_id=0, class_name="person", confidence=0.8, bbox=(1.0, 2.0, 3.0, 4.0),
        anchor_xy=(2.0, 4.0), zone="yard", occupancy=0, occupancy_all=0, entries=1, reason="left",
        dwell_s=2.0,
    )  # fmt: skip
    rendered = json.loads(render(str(exit_entity["value_template"]), ev.to_json()))
    assert rendered["event_type"] == "yard_zone_exit"
    assert rendered["event_type"] in exit_entity["event_types"]  # type: ignore[operator]
    assert rendered["class"] == "person"
    assert "edge_n1_cam0_events_zone_loitering" not in ids  # no zone has loiter_seconds


# -- names ---------------------------------------------------------------------------------------------


def test_demo_names_are_readable_and_unique() -> None:
    settings = load_settings(DEMO)
    configs = discovery_configs(Topics("edge", settings.node), ha_cameras(settings.cameras, NAMES))
    names = full_names(configs)
    assert len(set(names)) == len(names)
    for expected in (
        "plaza walkway eastbound (person)",
        "plaza walkway westbound (person)",
        "road road towards camera (car)",
        "road road away",  # the direction's total over the line's four classes
        "room table occupancy (person)",
        "room table occupied",
        "room status",
        "plaza reset walkway counters",
        "edge demo connectivity",
    ):
        assert expected in names
    for name in names:
        assert "/" not in name
        assert "_" not in name


def test_default_labels_give_readable_unique_names() -> None:
    cam = CameraSpec("cam0", lines=(LineSpec("road", ("car",)), LineSpec("side_walk")))
    names = full_names(discovery_configs(TOPICS, [cam]))
    assert len(set(names)) == len(names)
    assert {"cam0 road in (car)", "cam0 road out (car)", "cam0 side walk in", "cam0 side walk out"} <= set(
        names
    )


def test_names_that_would_collide_are_made_unique() -> None:
    # A zone "door in" reads like line "door" labelled "in" (occupancy sensors are suffixed, the
    # occupied sensor is not); names stay unique per device whatever the labels say.
    cam = CameraSpec("c", lines=(LineSpec("door", (), ("occupied", "x")),), zones=(ZoneSpec("door"),))
    names = full_names(discovery_configs(TOPICS, [cam]))
    assert len(set(names)) == len(names)


# -- config to specs -----------------------------------------------------------------------------------


def test_ha_cameras_from_config_resolves_class_ids_and_skips_disabled(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "cameras:\n"
        "  - name: a\n    source: x.mp4\n    snapshots: {enabled: false}\n"
        "    lines: [{name: l, points: [[0, 0], [1, 1]], classes: [2, person],"
        " labels: {in: up, out: down}}]\n"
        "    zones: [{name: z, polygon: [[0, 0], [9, 0], [9, 9]], loiter_seconds: 3}]\n"
        "  - name: b\n    source: y.mp4\n    enabled: false\n"
    )
    (cam,) = ha_cameras(load_settings(cfg).cameras, NAMES, "http://box:9108")
    assert cam.lines == (LineSpec("l", ("car", "person"), ("up", "down")),)
    assert cam.zones == (ZoneSpec("z", (), loitering=True),)
    assert (cam.snapshots, cam.url) == (False, "http://box:9108/cameras/a")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", None),
        ("localhost", None),
        ("::1", None),
        ("192.168.1.20", "http://192.168.1.20:9108"),
        ("fd00::2", "http://[fd00::2]:9108"),
    ],
)
def test_debug_view_url_only_when_reachable(host: str, expected: str | None) -> None:
    assert debug_view_url(host, 9108) == expected


def test_debug_view_url_of_a_wildcard_bind_names_the_host() -> None:
    url = debug_view_url("0.0.0.0", 9108)  # noqa: S104 - a bind address, as configured
    assert url is not None
    assert url.startswith("http://")
    assert "0.0.0.0" not in url  # noqa: S104


def test_ha_id_is_safe() -> None:
    assert ha_id("Front Door", "in", "person") == "front_door_in_person"
    assert ha_id("ü/ö") == "x"


# -- removal bookkeeping -----------------------------------------------------------------------------


def test_ledger_clears_what_a_reload_removed() -> None:
    ledger = DiscoveryLedger(TOPICS)
    before = [(t, b"{}") for t, _ in discovery_configs(TOPICS, CAMERAS)]
    assert ledger.declare(before) == before
    after = [(t, b"{}") for t, _ in discovery_configs(TOPICS, CAMERAS[:1])]
    out = ledger.declare(after)
    cleared = {t for t, p in out if p == b""}
    assert cleared == {t for t, _ in before} - {t for t, _ in after}
    assert cleared
    assert all("back_yard" in t for t in cleared)
    assert ledger.declare(after) == after  # cleared once


def test_ledger_clears_what_an_earlier_run_left_on_the_broker() -> None:
    ledger = DiscoveryLedger(TOPICS)
    old = "homeassistant/sensor/edge_n1/gate_line_gone_in_total/config"
    keep = "homeassistant/sensor/edge_n1/gate_status/config"
    assert ledger.filter == "homeassistant/+/edge_n1/+/config"
    # Retained configs arrive before the first declare: remembered, decided by it.
    assert ledger.seen(old, b"{}") is False
    assert ledger.seen(keep, b"{}") is False
    assert ledger.declare([(keep, b"{}")]) == [(keep, b"{}"), (old, b"")]
    # After it, an unwanted retained config is cleared at once; wanted ones, empties, others' are not.
    assert ledger.seen(old, b"{}") is True
    assert ledger.seen(keep, b"{}") is False
    assert ledger.seen(old, b"") is False
    assert ledger.seen("homeassistant/sensor/edge_n2/x/config", b"{}") is False
