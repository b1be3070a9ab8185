"""The model's class names, found one way for config validation, ``edge check-config`` and the detector.

The rule: the ``labels_file`` when the config names one (relative paths from the config file's folder),
else the model's ``names`` metadata.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import resolve_model_path

if TYPE_CHECKING:
    from edge.config import ModelConfig


def resolve_labels_path(labels_file: str, config_dir: Path | None = None) -> Path:
    """Where a configured ``labels_file`` is: relative to the config file's folder, else as given."""
    p = Path(labels_file).expanduser()
    if p.is_absolute() or config_dir is None or not (config_dir / p).exists():
        return p
    return config_dir / p


def read_labels_file(path: Path) -> list[str]:
    """Class names, one per non-empty line (index = class id); ``OSError`` when it cannot be read."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def model_class_names(model: ModelConfig, config_dir: Path | None = None) -> tuple[list[str] | None, str]:
    """The class names the detector will use, and where they come from (for messages).

    The one rule, shared by config validation, ``edge check-config``'s lint and the daemon: the
    ``labels_file`` when one is set, else the model's ``names`` metadata. ``None`` when they cannot be
    read (the detector then reports why, with the model's path).
    """
    if model.labels_file:
        path = resolve_labels_path(model.labels_file, config_dir)
        try:
            return read_labels_file(path) or None, f"labels_file {path}"
        except OSError:
            return None, f"labels_file {path}"
    path = resolve_model_path(model.path, config_dir)
    return read_model_class_names(path), f"model {path}"


def parse_names_metadata(text: str) -> list[str] | None:
    """Class names from an Ultralytics ``names`` metadata string (``"{0: 'person', 1: 'bicycle'}"``)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, Mapping) and all(isinstance(k, int) for k in value):
        return [str(value[k]) for k in sorted(value)]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


def read_model_class_names(path: Path) -> list[str] | None:
    """The model's own class names from its ONNX metadata, or ``None`` if it cannot be read."""
    if not path.is_file():
        return None
    try:
        import onnxruntime as ort  # noqa: PLC0415 - heavy import, only when a model must be read

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        names = session.get_modelmeta().custom_metadata_map.get("names")
    except Exception:  # a corrupt model is the detector's error to report, not config's
        return None
    return parse_names_metadata(names) if names else None
