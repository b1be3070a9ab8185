"""`edge replay` and `edge evaluate` over every MOT17 sequence, on the real tracker and data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge.tools import evaluate, replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEQS = ["MOT17-02", "MOT17-04", "MOT17-05", "MOT17-09", "MOT17-10", "MOT17-11", "MOT17-13"]

CONFIG = """\
cameras:
  - name: {name}
    source: {source}
    coordinates: normalized
    lines:
      - name: h
        points: [[0, 0.5], [1, 0.5]]
        labels: {{in: down, out: up}}
      - name: v
        points: [[0.5, 0], [0.5, 1]]
    zones:
      - name: centre
        polygon: [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]
        loiter_seconds: 10
"""


@pytest.fixture(scope="module")
def results(mot17_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out: dict[str, tuple[Path, Path]] = {}
    tmp = tmp_path_factory.mktemp("replay")
    for seq in SEQS:
        folder = mot17_dir / seq
        cfg = tmp / f"{seq}.yaml"
        cfg.write_text(CONFIG.format(name=seq, source=folder / "det.txt"), encoding="utf-8")
        events = tmp / f"{seq}.jsonl"
        rc = replay.main(
            [
                "--detections",
                str(folder / "det.txt"),
                "--config",
                str(cfg),
                "--events-out",
                str(events),
                "--quiet",
            ]
        )
        assert rc == 0, seq
        out[seq] = (cfg, events)
    return out


def test_replay_writes_valid_events_with_mot_frame_numbers(
    results: dict[str, tuple[Path, Path]], mot17_dir: Path
) -> None:
    for seq, (_cfg, events) in results.items():
        found = re.search(r"seqLength=(\d+)", (mot17_dir / seq / "seqinfo.ini").read_text())
        assert found is not None
        length = int(found[1])
        lines = events.read_bytes().splitlines()
        assert lines, seq
        docs = [json.loads(raw) for raw in lines]
        assert {d["type"] for d in docs} >= {"line_crossing", "zone_enter", "zone_exit"}, seq
        assert [d["seq"] for d in docs] == list(range(len(docs)))
        for d in docs:
            assert d["camera"] == seq
            assert 1 <= d["frame"] <= length
            assert d["track_id"] >= 1
            if d["type"] == "line_crossing":
                assert d["line"] in {"h", "v"}
                assert d["direction"] in {"in", "out"}
                if d["line"] == "h":
                    assert d["label"] == {"in": "down", "out": "up"}[d["direction"]]
            else:
                assert d["zone"] == "centre"


def test_evaluate_reports_error_per_line_and_total(
    results: dict[str, tuple[Path, Path]], mot17_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors, truths = 0, 0
    capsys.readouterr()
    for seq, (cfg, events) in results.items():
        rc = evaluate.main(
            ["--gt", str(mot17_dir / seq / "gt.txt"), "--config", str(cfg), "--events", str(events)]
        )
        assert rc == 0
        text = capsys.readouterr().out
        rows = re.findall(r"^(h|v)\s+(in|out)\s+(\d+)\s+(\d+)\s+([+-]\d+)$", text, re.MULTILINE)
        assert len(rows) == 4, text
        for _line, _d, gt, pred, err in rows:
            assert int(pred) - int(gt) == int(err)
            errors += abs(int(err))
            truths += int(gt)
        assert re.search(r"total relative error: \d+/\d+ = \d\.\d{4}", text)
    assert truths > 200
    # Regression guard: 108/274 = 0.394 when this was written (supervision's LineZone + ByteTrack: 0.763,
    # see docs/benchmarks.md "Counting accuracy"); a change in tracker or counter that makes counting
    # much worse must show up here.
    assert errors / truths < 0.5


def test_evaluate_can_replay_detections_itself(
    results: dict[str, tuple[Path, Path]], mot17_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, events = results["MOT17-09"]
    folder = mot17_dir / "MOT17-09"
    capsys.readouterr()
    assert evaluate.main(["--gt", str(folder / "gt.txt"), "--config", str(cfg), "--events", str(events)]) == 0
    from_events = capsys.readouterr().out
    assert (
        evaluate.main(
            ["--gt", str(folder / "gt.txt"), "--config", str(cfg), "--detections", str(folder / "det.txt")]
        )
        == 0
    )
    assert capsys.readouterr().out == from_events


def test_replay_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(name="cam", source="x"), encoding="utf-8")
    assert replay.main(["--detections", str(tmp_path / "missing.txt"), "--config", str(cfg)]) != 0
    assert "no such file" in capsys.readouterr().err
    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,10,20,40,0.9\n", encoding="utf-8")
    # normalized coordinates, and no seqinfo.ini to tell the frame size
    assert replay.main(["--detections", str(det), "--config", str(cfg)]) != 0
    assert "--size" in capsys.readouterr().err
    assert replay.main(["--detections", str(det), "--config", str(cfg), "--size", "640x480"]) == 0
    assert replay.main(["--detections", str(det), "--config", str(cfg), "--camera", "nope"]) != 0
    assert "no camera 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cameras:\n  - name: a\n    source: x\n    lines:\n"
        "      - name: l\n        points: [[0, 0], [0, 0]]\n",
        encoding="utf-8",
    )
    assert replay.main(["--detections", str(det), "--config", str(bad)]) == 78  # EX_CONFIG
    assert "bad.yaml:6: cameras.0.lines.0.points: line has zero length" in capsys.readouterr().err


def test_replay_video_runs_the_real_detector(
    tmp_path: Path, video_dir: Path, yolo11n_320_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"model:\n  path: {yolo11n_320_path}\n  providers: [cpu]\n  classes: [person]\n"
        + CONFIG.format(name="walk", source="video.mp4").replace("loiter_seconds: 10", "inertia: 2"),
        encoding="utf-8",
    )
    events = tmp_path / "events.jsonl"
    args = ["--video", str(video_dir / "pedestrians.mp4"), "--config", str(cfg), "--events-out", str(events)]
    assert replay.main([*args, "--max-frames", "90", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^zone\s+centre\s+entries\s+person\s+[1-9]", table, re.MULTILINE), table
    docs = [json.loads(raw) for raw in events.read_bytes().splitlines()]
    assert docs
    assert all(d["camera"] == "walk" and d["class_name"] == "person" and 1 <= d["frame"] <= 90 for d in docs)


def test_replay_is_reproducible_with_a_fixed_run_id(
    results: dict[str, tuple[Path, Path]], mot17_dir: Path, tmp_path: Path
) -> None:
    cfg, _events = results["MOT17-09"]
    outputs = []
    for n in range(2):
        out = tmp_path / f"run{n}.jsonl"
        args = ["--detections", str(mot17_dir / "MOT17-09" / "det.txt"), "--config", str(cfg)]
        assert replay.main([*args, "--events-out", str(out), "--run-id", "fixed", "--quiet"]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert b'"run_id":"fixed"' in outputs[0]
