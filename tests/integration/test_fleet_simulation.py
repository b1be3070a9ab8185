"""The scale-out simulation of docs/deploy.md, shortened: 3 daemons (3 nodes, different configs) publish to
one private mosquitto, and one subscriber's fleet-wide count equals the sum of what the nodes counted.

Each node's own count is read from the counter files the daemon saved in its state directory on SIGTERM,
independently of MQTT; the script also checks, per node, retained state == saved counters == line-crossing
events received (de-duplicated on ``event_id``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.paths import REPO_ROOT, data_dir, models_dir, require, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_fleet_aggregate_equals_sum_of_nodes(tmp_path) -> None:
    require_tool("mosquitto")
    model = require(models_dir() / "yolo11n_320.onnx", "yolo11n_320.onnx")
    require(data_dir() / "video" / "pedestrians.mp4", "shared videos")
    require(data_dir() / "video" / "vehicle_counting_input_video.mp4", "shared videos")

    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "simulate_fleet.py"), "--seconds", "20",
         "--model", str(model), "--work-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=55, check=False,
    )
    assert out.stdout.strip(), out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    nodes = result["nodes"]
    assert set(nodes) == {"store-a", "store-b", "store-c"}
    assert result["exit_codes"] == {"store-a": 0, "store-b": 0, "store-c": 0}, result["problems"]
    for name, counts in nodes.items():
        assert counts["retained"] == counts["saved"] == counts["events"], (name, counts)
    assert result["sum_of_nodes"] == sum(c["saved"] for c in nodes.values())
    assert result["aggregated"] == result["sum_of_nodes"]
    assert result["aggregated"] > 0
    # Every node counted something: the simulation shows aggregation across nodes, not one busy node.
    assert all(c["saved"] > 0 for c in nodes.values()), nodes
    assert out.returncode == 0, result["problems"]
