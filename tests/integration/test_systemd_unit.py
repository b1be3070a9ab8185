"""The shipped systemd unit: `systemd-analyze verify` is clean and the offline security exposure is <= 2.0.

`verify` checks that ExecStart's program exists and is executable, and the shipped unit names the real
install location (/opt/edge/venv/bin/edge), which a development machine or CI runner does not have.
Rather than verifying an edited copy, the test builds a throw-away root directory (`--root=`) laid out
like an installed machine: the unmodified unit in /etc/systemd/system, systemd's own units (the targets
the unit orders against), /bin/kill for ExecReload, and a stub executable at /opt/edge/venv/bin/edge.
So the file that ships is the file that is verified, byte for byte, and a typo in ExecStart's path still
fails (the stub is only at the documented path).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.paths import REPO_ROOT, require, require_tool

UNIT = REPO_ROOT / "systemd" / "edge.service"
EXEC_START = "/opt/edge/venv/bin/edge"
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.integration


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    units.parent.mkdir(parents=True)
    system_units = require(Path("/usr/lib/systemd/system"), "systemd's unit directory")
    shutil.copytree(system_units, units, symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(require(Path("/usr/bin/kill"), "/usr/bin/kill"), root / "usr/bin/kill")
    (root / "bin").symlink_to("usr/bin")  # merged /usr, as on Debian 12
    stub = root / EXEC_START.lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    shutil.copy2(UNIT, etc / UNIT.name)
    return root


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_unit_ships_the_documented_exec_start() -> None:
    text = UNIT.read_text()
    assert f"ExecStart={EXEC_START} run --config /etc/edge/config.yaml" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    for line in ["Type=notify", "Restart=on-failure", "RestartPreventExitStatus=78", "StateDirectory=edge"]:
        assert line in text.splitlines(), line
    assert "LoadCredential=mqtt_password:/etc/edge/mqtt_password" in text


def test_timeout_stop_exceeds_edges_shutdown_timeout() -> None:
    from edge.config import Settings

    default_shutdown = Settings.model_fields["shutdown_timeout"].default
    match = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.MULTILINE)
    assert match is not None
    assert float(match.group(1)) > default_shutdown


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    root = _fake_root(tmp_path)
    installed = root / "etc/systemd/system" / UNIT.name
    assert installed.read_bytes() == UNIT.read_bytes()
    result = _run(tool, "verify", "--man=no", f"--root={root}", str(installed))
    # verify exits 0 on warnings such as unknown keys; "clean" means no output at all.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_catches_a_wrong_exec_start(tmp_path: Path) -> None:
    # Guards the method above: the fake root must not make every unit pass.
    tool = require_tool("systemd-analyze")
    root = _fake_root(tmp_path)
    installed = root / "etc/systemd/system" / UNIT.name
    installed.write_text(UNIT.read_text().replace(EXEC_START, "/opt/edge/venv/bin/egde"))
    result = _run(tool, "verify", "--man=no", f"--root={root}", str(installed))
    assert result.returncode != 0
    assert "egde" in result.stderr


def test_security_exposure_is_at_most_2(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    result = _run(
        tool,
        "security",
        "--offline=yes",
        f"--threshold={round(MAX_EXPOSURE * 10)}",  # the threshold is on the 0..100 scale
        "--no-pager",
        str(UNIT),
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for edge\.service: (\d+\.\d+)", output)
    assert match is not None, output
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, output
    assert result.returncode == 0, output
