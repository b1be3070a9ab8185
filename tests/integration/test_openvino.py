"""OpenVINO against ONNX Runtime on the shared videos: the same boxes, the same events (issue 17).

Both runtimes run for real on this machine's CPU. The full-length figures are in docs/benchmarks.md; these
tests check a sample of frames of every shared video, so a regression (a bf16 default, a wrong input
layout, a broken split across streams) fails the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers.paths import REPO_ROOT, data_dir, in_ci, models_dir, require

from edge.benchmarks.detector import agreement_rows

pytestmark = pytest.mark.slow

try:
    import openvino  # noqa: F401
except ImportError:
    if in_ci():
        raise
    pytest.skip("openvino is not installed (pip install 'edge-analytics[openvino]')", allow_module_level=True)


def test_f32_boxes_agree_with_onnxruntime_on_the_four_shared_videos() -> None:
    model = require(models_dir() / "yolov8n.onnx", "yolov8n.onnx")
    videos = sorted(require(data_dir() / "video", "shared videos").glob("*.mp4"))
    assert len(videos) == 4
    rows = agreement_rows(
        model, videos, variants=[("onnxruntime", "auto"), ("openvino", "f32")], every=60, batch=4
    )
    total = rows[-1]
    assert (total["video"], total["backend"], total["precision"]) == ("all", "openvino", "f32")
    assert total["frames"] >= 50
    assert total["ref_boxes"] >= 100  # the sample really has objects in it
    assert total["ref_matched"] >= 0.99, total
    assert total["cand_matched"] >= 0.99, total
    assert total["conf_diff_max"] <= 0.01, total


def test_replay_gives_the_same_line_counts_and_events_on_both_backends() -> None:
    require(models_dir() / "yolov8n.onnx", "yolov8n.onnx")
    require(data_dir() / "video" / "pedestrians.mp4", "pedestrians.mp4")
    env = dict(os.environ, EDGE_SHARED_DIR=str(data_dir().parent), EDGE_MODELS_DIR=str(models_dir()))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "replay_backends.py"), "--max-frames", "100",
         "--video", "pedestrians"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["events_onnxruntime"] >= 1  # the walkway line really counts someone in these frames
    assert row["count_tables_equal"], row
    assert row["events_equal"], row
