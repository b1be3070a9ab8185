"""scripts/make_counting_devsets.py: the MOT15, panned, zoomed, shaken and walked development sets read
like MOT17."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers.paths import REPO_ROOT, data_dir, require

from edge.benchmarks import counting

SCRIPT = REPO_ROOT / "scripts" / "make_counting_devsets.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_counting_devsets", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_devsets_are_mot17_shaped(tmp_path: Path) -> None:
    data = require(data_dir() / "mot15", "MOT15 data").parent
    require(data / "mot17", "MOT17 data")
    assert load_script().main([str(tmp_path), "--data", str(data)]) == 0
    groups = ("mot15", "pans", "zooms", "shakes", "walks")
    seqs = [seq for group in groups for seq in counting.load(tmp_path / group, None)]
    assert len(seqs) == 19
    for seq in seqs:
        det = np.loadtxt(seq.path / "det.txt", delimiter=",", ndmin=2)
        assert det.shape[1] == 7
        assert det[:, 6].min() > 0.0  # scores in (0, 1], as FRCNN's
        assert det[:, 6].max() <= 1.0
        assert np.all(np.diff(det[:, 0]) >= 0)  # sorted by frame
        if seq.name in ("MOT17-04s", "MOT17-04w"):
            continue  # 108 000 ground-truth rows each (9 s): their siblings check the same transform
        # The ground truth has crossings on the protocol's grid.
        assert sum(counting.ground_truth(seq, counting.grid_lines(seq.width, seq.height)).values()) > 0


def test_pan_is_a_sway_and_one_turn() -> None:
    shift = load_script().pan_shift(30.0, 600, 1920)
    assert shift.shape == (600,)
    step = np.abs(np.diff(shift))
    assert 20.0 < step.max() < 30.0  # the turn: up to ~27 px per frame at 30 fps
    assert np.median(step) < 5.0  # the sway


def test_zoom_scales_boxes_about_the_centre_by_up_to_13_percent_a_second() -> None:
    fps = 30.0
    scale = load_script().zoom_scale(fps, 600)
    assert scale.shape == (600,)
    assert 1.0 <= scale.min() < 1.01
    assert 1.49 < scale.max() <= 1.5
    rate = np.abs(np.diff(np.log(scale))) * fps  # relative change per second
    assert 0.12 < rate.max() < 0.14


def test_shake_is_a_walkers_bob() -> None:
    move = load_script().shake_moves((30.0, 600, 1920, 1080), np.zeros((0, 9)))
    rows = np.zeros((600, 7))
    rows[:, 0] = np.arange(1, 601)
    moved = move(rows)
    assert 15.0 < np.abs(moved[:, 3]).max() <= 16.2  # 1.5 % of the height
    assert 18.0 < np.abs(moved[:, 2]).max() <= 19.2  # 1 % of the width
    turns = np.flatnonzero(np.diff(np.sign(np.diff(moved[:, 3]))) != 0)
    assert 70 <= len(turns) <= 76  # up and down once per step: 1.8 Hz over 20 s, 72 turns


def test_walk_moves_near_people_more_than_far_ones() -> None:
    script = load_script()
    info = (30.0, 600, 1920, 1080)
    rows = np.array(
        [
            [241.0, 1, 1500.0, 500.0, 100.0, 300.0, 1, 1, 1],  # near: 300 px tall, ~9.8 m away
            [241.0, 2, 1500.0, 500.0, 25.0, 75.0, 1, 1, 1],  # far: 75 px tall, ~39 m away
            [241.0, 3, 1500.0, 500.0, 400.0, 1200.0, 1, 1, 1],  # ~2.4 m away: the camera passes it
        ]
    )
    depth = script.depth_of(rows[:, 5], 1920)
    assert np.allclose(depth[:2], [9.79, 39.17], rtol=0.01)
    moved = script.walk_rows(info, rows, depth)
    assert len(moved) == 2  # t = 8 s: the camera is 4 m in; the third person is behind it
    near, far = moved[:, 5] / rows[:2, 5]
    assert near == pytest.approx(9.79 / 5.79, rel=0.01)
    assert far == pytest.approx(39.17 / 35.17, rel=0.01)
    assert moved[0, 2] > moved[1, 2] > rows[0, 2]  # both move outward, the near one farther


def test_a_detection_takes_the_depth_of_the_person_it_overlaps() -> None:
    script = load_script()
    # Ground truth sorted by id, as MOT's: person 1 in frames 2 and 1, person 2 in frame 1.
    gt = np.array(
        [
            [2.0, 1, 100.0, 100.0, 100.0, 300.0, 1, 1, 1],
            [1.0, 1, 100.0, 100.0, 100.0, 300.0, 1, 1, 1],
            [1.0, 2, 900.0, 100.0, 50.0, 150.0, 1, 1, 1],
        ]
    )
    det = np.array(
        [
            [1.0, -1, 100.0, 100.0, 100.0, 180.0, 0.9],  # person 1, legs hidden: 180 px of 300
            [1.0, -1, 1500.0, 100.0, 50.0, 100.0, 0.9],  # nobody: its own height
            [2.0, -1, 900.0, 100.0, 50.0, 150.0, 0.9],  # person 2's place, but person 2 left in frame 2
        ]
    )
    depth = script.detection_depths(det, gt, 1920)
    assert depth == pytest.approx(script.depth_of(np.array([300.0, 100.0, 150.0]), 1920))
    # Rows in any order: each ground-truth row keeps its own depth.
    assert script.detection_depths(gt, gt, 1920) == pytest.approx(script.depth_of(gt[:, 5], 1920))
