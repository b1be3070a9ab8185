"""The pure parts of `edge replay` / `edge evaluate`: ground-truth crossings, tallies, error, progress."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edge.events import CameraAnalytics, LineSpec
from edge.tools.evaluate import events_tally, gt_crossings, relative_error, report
from edge.tools.replay import Progress, count_table, mot_frames

H = LineSpec("h", (0.0, 100.0), (640.0, 100.0))


def gt_file(tmp_path: Path, rows: list[tuple[int, int, float, int, int]]) -> Path:
    """gt.txt from (frame, id, bottom y, consider, class) rows; boxes 20x40 at x=300."""
    path = tmp_path / "gt.txt"
    path.write_text(
        "".join(f"{f},{i},300,{y - 40},20,40,{c},{k},1.0\n" for f, i, y, c, k in rows), encoding="utf-8"
    )
    return path


def test_gt_crossings_use_pedestrians_and_no_hysteresis(tmp_path: Path) -> None:
    rows = [
        # id 1 walks down across in one frame on the new side (no min_frames for ground truth)
        (1, 1, 90.0, 1, 1), (2, 1, 110.0, 1, 1),
        # id 2 walks up, with a gap in its frames
        (1, 2, 130.0, 1, 1), (5, 2, 70.0, 1, 1),
        # id 3 is not a pedestrian (class 3) and id 4 is not considered: neither counts
        (1, 3, 90.0, 1, 3), (2, 3, 110.0, 1, 3), (1, 4, 90.0, 0, 1), (2, 4, 110.0, 0, 1),
        # id 5 crosses down, up and down again: once per direction
        (1, 5, 90.0, 1, 1), (2, 5, 110.0, 1, 1), (3, 5, 90.0, 1, 1), (4, 5, 110.0, 1, 1),
    ]  # fmt: skip
    truth = gt_crossings(gt_file(tmp_path, rows), [H])
    assert truth == {("h", "in"): 2, ("h", "out"): 2}


@pytest.mark.parametrize(
    ("gt", "pred", "expected"),
    [
        ({("h", "in"): 10, ("h", "out"): 10}, {("h", "in"): 10, ("h", "out"): 10}, 0.0),
        ({("h", "in"): 10, ("h", "out"): 10}, {("h", "in"): 12, ("h", "out"): 8}, 0.2),
        ({("h", "in"): 10, ("h", "out"): 0}, {}, 1.0),
        ({("h", "in"): 4}, {("h", "in"): 4, ("x", "in"): 9}, 0.0),  # lines without truth are not scored
    ],
)
def test_relative_error(
    gt: dict[tuple[str, str], int], pred: dict[tuple[str, str], int], expected: float
) -> None:
    assert relative_error(gt, pred) == pytest.approx(expected)


def test_report_table() -> None:
    text = report({("h", "in"): 10, ("h", "out"): 5}, {("h", "in"): 12, ("h", "out"): 5})
    assert text.splitlines() == [
        "line  direction  gt  pred  error",
        "h     in         10  12    +2",
        "h     out        5   5     +0",
        "total relative error: 2/15 = 0.1333",
    ]


def test_events_tally_counts_crossings_of_one_camera(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    path.write_text(
        '{"type":"line_crossing","camera":"a","line":"h","direction":"in","class_id":0}\n'
        '{"type":"line_crossing","camera":"a","line":"h","direction":"out","class_id":0}\n'
        '{"type":"line_crossing","camera":"a","line":"h","direction":"in","class_id":2}\n'
        '{"type":"line_crossing","camera":"b","line":"h","direction":"in","class_id":0}\n'
        '{"type":"zone_enter","camera":"a","zone":"z","class_id":0}\n'
        "\n",
        encoding="utf-8",
    )
    assert events_tally(path, "a", ["h"]) == {("h", "in"): 2, ("h", "out"): 1}
    assert events_tally(path, "a", ["h"], class_id=0) == {("h", "in"): 1, ("h", "out"): 1}


def test_mot_frames_feeds_every_frame_including_empty_ones(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("3,-1,10,10,20,40,0.9\n1,-1,0,0,5,5,0.5\n3,-1,50,50,20,40,0.8\n", encoding="utf-8")
    total, frames = mot_frames(det, class_id=0)
    got = [(f, len(d)) for f, d in frames]
    assert total == 3
    assert got == [(1, 1), (2, 0), (3, 2)]


def test_count_table_lists_every_line_direction() -> None:
    analytics = CameraAnalytics(
        "c", [LineSpec("door", (0.0, 1.0), (1.0, 1.0), labels={"in": "enter"})], run_id="r"
    )
    analytics.restore({"lines": {"door": {"in": {"0": 3}}}})
    assert count_table(analytics, ["person"]).splitlines() == [
        "kind  name  direction   class   count",
        "line  door  in (enter)  person  3",
        "line  door  out (out)   -       0",
    ]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    tty = _Tty()
    bar = Progress(200, "cam", tty)
    for i in range(1, 201):
        bar.update(i)
    bar.close()
    assert tty.getvalue().count("\r") == 101  # redrawn once per percent (0..100), not per frame
    assert tty.getvalue().endswith("100% (200/200 frames)\n")
    pipe = io.StringIO()
    bar = Progress(200, "cam", pipe)
    bar.update(100)
    bar.close()
    assert pipe.getvalue() == ""
