"""Custom class names through ``model.labels_file``: one rule (labels file, else the model's metadata) for
config validation, ``edge check-config`` and the daemon; messages name the real classes, no made-up flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO_ROOT, models_dir, require

from edge.class_names import model_class_names
from edge.config import COCO_CLASSES, load_settings
from edge.errors import ConfigError

CUSTOM = ["worker", *COCO_CLASSES[1:]]  # 80 names, so the COCO model's output fits; class 0 renamed


def _write(tmp_path: Path, classes: str, labels: str | None = "labels.txt") -> Path:
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    (tmp_path / "labels.txt").write_text("\n".join(CUSTOM) + "\n", encoding="utf-8")
    labels_line = f", labels_file: {labels}" if labels else ""
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        f"""
model: {{path: {model}, classes: {classes}{labels_line}}}
mqtt: {{enabled: false}}
metrics: {{enabled: false}}
cameras:
  - name: site
    source: /dev/null
    lines:
      - {{name: gate, points: [[0, 0], [10, 10]], classes: {classes}}}
""",
        encoding="utf-8",
    )
    return cfg


def test_custom_names_from_the_labels_file_validate(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, "[worker]"))
    names, source = model_class_names(settings.model, tmp_path)
    assert names == CUSTOM
    assert source == f"labels_file {tmp_path / 'labels.txt'}"


def test_labels_file_is_found_next_to_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(tmp_path, "[worker]")
    monkeypatch.chdir(REPO_ROOT)  # not where the labels file is
    assert load_settings(cfg).model.labels_file == "labels.txt"


def test_without_labels_file_a_custom_name_is_rejected_with_the_real_classes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "[worker]", labels=None))
    text = "\n".join(err.value.lines())
    assert "model.classes.0" in text
    assert "unknown class name; the classes of model" in text
    assert "person, bicycle, car" in text
    assert "--classes" not in text


def test_an_unreadable_labels_file_is_one_config_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "[worker]", labels="missing.txt"))
    assert [p.path for p in err.value.problems] == ["model.labels_file"]


def test_check_config_accepts_the_custom_names(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[worker]")
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "check-config", str(cfg)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stderr


def test_the_detector_uses_the_same_names(tmp_path: Path) -> None:
    from edge.config import resolve_model_path
    from edge.tools.specs import build_detector

    settings = load_settings(_write(tmp_path, "[worker]"))
    m = settings.model
    detector = build_detector(m, resolve_model_path(m.path, tmp_path), config_dir=tmp_path)
    assert detector.class_names == CUSTOM
