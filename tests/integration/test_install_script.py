"""scripts/install.sh into a scratch prefix: venv with edge, config, credential file, unit; idempotent.

systemctl is skipped (EDGE_SYSTEMCTL=0: CI containers have no systemd as PID 1) and pip installs edge
without its dependencies (--no-deps) so the test does not download onnxruntime; what is checked is the
script's own work and that a second run keeps the operator's files.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from helpers.paths import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = REPO_ROOT / "scripts" / "install.sh"


def run_install(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EDGE_PREFIX": str(tmp_path / "opt"),
        "EDGE_CONF_DIR": str(tmp_path / "etc"),
        "EDGE_UNIT_DIR": str(tmp_path / "units"),
        "EDGE_SYSTEMCTL": "0",
        "EDGE_PIP_ARGS": "--no-deps",
        "PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_install_is_complete_and_idempotent(tmp_path: Path) -> None:
    first = run_install(tmp_path)
    venv_edge = tmp_path / "opt/venv/bin/edge"
    assert os.access(venv_edge, os.X_OK)
    assert (tmp_path / "opt/models").is_dir()
    config = tmp_path / "etc/config.yaml"
    assert config.read_text() == (REPO_ROOT / "config/example.yaml").read_text()
    password = tmp_path / "etc/mqtt_password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    unit = (tmp_path / "units/edge.service").read_text()
    assert f"ExecStart={venv_edge} run --config {config}" in unit
    # Only the install paths differ from the shipped unit.
    shipped = (REPO_ROOT / "systemd/edge.service").read_text()
    assert unit.replace(str(tmp_path / "opt"), "/opt/edge").replace(
        str(tmp_path / "etc") + "/", "/etc/edge/"
    ) == (shipped)
    assert "created" in first.stdout

    # The operator edits the config and sets a password; an upgrade (second run) keeps both.
    config.write_text("# mine\n")
    password.write_text("s3cret")
    second = run_install(tmp_path)
    assert config.read_text() == "# mine\n"
    assert password.read_text() == "s3cret"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert (tmp_path / "etc/config.yaml.example").read_text() == (
        REPO_ROOT / "config/example.yaml"
    ).read_text()
    assert "kept existing" in second.stdout
    assert "is up to date" in second.stdout
    assert os.access(venv_edge, os.X_OK)
