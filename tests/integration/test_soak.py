"""The 3-minute soak (``scripts/soak.py``): the real daemon, real RTSP cameras and a private broker, with an
RTSP kill, a broker restart, SIGHUPs and a SIGKILL of edge. Nothing may be lost, counted twice or left behind.

The 30-minute run of the same script is in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO_ROOT, data_dir, models_dir, require, require_tool
from helpers.rtsp import require_rtsp

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_three_minute_soak_loses_nothing_and_recovers_from_every_fault(tmp_path: Path) -> None:
    require_tool("mosquitto")
    require_tool("ffmpeg")
    require_rtsp()
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    video = require(data_dir() / "video" / "pedestrians.mp4", "pedestrians.mp4")
    report_path = tmp_path / "soak.json"
    proc = subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "scripts" / "soak.py"), "--minutes", "3", "--workdir",
            str(tmp_path / "work"), "--json", str(report_path), "--model", str(model), "--video", str(video),
            "--sample-s", "5",
        ],
        capture_output=True, text=True, timeout=480, check=False,
    )  # fmt: skip
    stderr_tail = (tmp_path / "work" / "edge.stderr").read_text(errors="replace")[-3000:]
    assert report_path.exists(), proc.stdout + proc.stderr + stderr_tail
    report = json.loads(report_path.read_text())
    context = json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1) + stderr_tail
    assert {f["kind"] for f in report["faults"]} >= {"rtsp_kill", "broker_restart", "sighup", "sigkill"}
    assert report["events_received"] > 0, context
    assert report["gaps"] == 0, context
    assert report["count_mismatches"] == 0, context
    assert report["totals_carried_twice"] == 0, context
    assert report["unrecovered_faults"] == 0, context
    assert report["left_in_outbox"] == 0, context
    assert report["final_exit_code"] == 0, context
    assert "Traceback" not in (tmp_path / "work" / "edge.stderr").read_text(errors="replace")
    assert proc.returncode == 0, context
