"""The model's class names, found one way for config validation, ``edge check-config`` and the detector.

The rule: the ``labels_file`` when the config names one (relative paths from the config file's folder),
else the model's ``names`` metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import read_model_class_names, resolve_model_path

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
