"""Loading the real example config, environment overrides, credentials and the effective-config print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.__main__ import main
from edge.config import (
    COCO_CLASSES,
    Settings,
    class_ids,
    json_schema,
    load_settings,
    polygon_self_intersects,
    resolve_model_path,
    to_pixels,
)
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "example.yaml"


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.node == "edge-1"
    cam = settings.camera("plaza")
    assert cam.lines[0].labels.in_ == "enter"
    assert cam.zones[0].loiter_seconds == 60
    assert main(["check-config", str(EXAMPLE)]) == 0


def test_settings_are_frozen() -> None:
    settings = load_settings(EXAMPLE)
    with pytest.raises(ValueError, match="frozen"):
        settings.mqtt.host = "x"  # type: ignore[misc]


def test_env_override_wins_over_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MQTT__HOST", "broker.example")
    monkeypatch.setenv("EDGE_MODEL__CONFIDENCE", "0.4")
    settings = load_settings(EXAMPLE)
    assert settings.mqtt.host == "broker.example"
    assert settings.mqtt.port == 1883  # untouched siblings stay
    assert settings.model.confidence == pytest.approx(0.4)


def test_bad_env_override_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MQTT__PORT", "huge")
    with pytest.raises(ConfigError) as info:
        load_settings(EXAMPLE)
    assert any(p.path == "mqtt.port" and "environment" in p.reason for p in info.value.problems)


def test_print_shows_override_and_masks_secrets(tmp_path: Path) -> None:
    env = {**os.environ, "EDGE_MQTT__HOST": "broker.example", "EDGE_MQTT__PASSWORD": "hunter2-secret"}
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "check-config", "--print", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "host: broker.example" in proc.stdout
    assert "hunter2-secret" not in proc.stdout + proc.stderr
    assert "rtsp://user:***@10.0.0.5" in proc.stdout
    assert "user:pass@" not in proc.stdout


def test_password_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt_password").write_text("from-systemd\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load_settings(EXAMPLE)
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "from-systemd"


def test_model_lookup_prefers_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.onnx").write_bytes(b"x")
    monkeypatch.setenv("EDGE_MODELS", str(tmp_path))
    assert resolve_model_path("mine.onnx") == tmp_path / "mine.onnx"
    assert resolve_model_path("sub/mine.onnx") == Path("sub/mine.onnx")  # a path with a folder is kept


def test_normalized_coordinates_to_pixels() -> None:
    assert to_pixels([(0.5, 0.25)], "normalized", 640, 480) == [(320.0, 120.0)]
    assert to_pixels([(5, 6)], "pixels", 640, 480) == [(5.0, 6.0)]


def test_class_ids_from_names_and_ids() -> None:
    assert class_ids(["person", 2], COCO_CLASSES) == frozenset({0, 2})
    assert class_ids(None, COCO_CLASSES) is None


@pytest.mark.parametrize(
    ("polygon", "crosses"),
    [
        ([(0, 0), (10, 0), (10, 10), (0, 10)], False),
        ([(0, 0), (10, 10), (10, 0), (0, 10)], True),  # bow tie
        ([(0, 0), (10, 0), (5, 5), (10, 10), (0, 10)], False),  # concave is fine
        ([(0, 0), (10, 0), (10, 10), (5, 0), (0, 10)], True),  # edge touches another edge
    ],
)
def test_polygon_self_intersection(polygon: list[tuple[float, float]], crosses: bool) -> None:
    assert polygon_self_intersects(polygon) is crosses


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "edge configuration"
    assert "cameras" in schema["properties"]
    assert schema == json.loads(json.dumps(json_schema()))


def test_settings_class_is_the_one_tree() -> None:
    assert Settings.model_config.get("extra") == "forbid"
    assert Settings.model_config.get("frozen") is True


def test_empty_credential_file_means_no_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt_password").write_text("", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_settings(EXAMPLE).mqtt.password is None
