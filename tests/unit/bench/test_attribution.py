"""`edge bench attribution` on a made-up sequence whose every count and crossing has a known cause."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from edge.benchmarks import attribution, counting

if TYPE_CHECKING:
    from pathlib import Path

FPS, LENGTH, SIZE = 10, 40, 400
LINES: counting.LineDefs = {"h": ((0.0, 200.0), (400.0, 200.0))}  # "in" = downwards


def _box(x_centre: float, bottom: float) -> tuple[float, float, float, float]:
    return x_centre - 15, bottom - 60, 30.0, 60.0


def _write(seq: Path) -> None:
    """Person 1 walks down over the line, detected at 0.95 all the way (counted); person 2 does the
    same undetected; person 3 the same, detected only at 0.3 (never a track); a detection nobody
    stands in walks up over the line (a count of no person)."""
    seq.mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={seq.name}\nimDir=img1\nframeRate={FPS}\nseqLength={LENGTH}\n"
        f"imWidth={SIZE}\nimHeight={SIZE}\nimExt=.jpg\n",
        encoding="utf-8",
    )
    gt, det = [], []
    for f in range(1, LENGTH + 1):
        down, up = 110 + 5 * f, 330 - 5 * f
        for person, x in ((1, 100), (2, 300), (3, 360)):
            gt.append(f"{f},{person},{','.join(map(str, _box(x, down)))},1,1,1")
        det.append(f"{f},-1,{','.join(map(str, _box(100, down)))},0.95")
        det.append(f"{f},-1,{','.join(map(str, _box(360, down)))},0.3")
        det.append(f"{f},-1,{','.join(map(str, _box(200, up)))},0.95")
    (seq / "gt.txt").write_text("\n".join(gt) + "\n", encoding="utf-8")
    (seq / "det.txt").write_text("\n".join(det) + "\n", encoding="utf-8")


@pytest.mark.parametrize("stride", [1, 2], ids=["10fps", "5fps"])
def test_every_count_and_crossing_gets_its_cause(tmp_path: Path, stride: int) -> None:
    _write(tmp_path / "walk")
    (seq,) = counting.load(tmp_path, None)

    got = attribution.attribute(seq, LINES, stride)

    assert dict(got.causes) == {
        "counted": 1,
        "extra: no person": 1,
        "miss: not detected": 1,
        "miss: detected, not tracked": 1,
    }
    # in: 1 counted of 3 true; out: 1 counted of 0 true.
    assert (got.wrong, got.over, got.truth) == (3, 1, 3)
    assert set(got.causes) <= set(attribution.CATEGORIES)
    assert [e[:3] for e in got.examples["extra: no person"]] == [("walk", "h", "out")]


def test_held_out_sequences_are_refused_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "MOT17-05")

    assert attribution.main(["--data", str(tmp_path), "--rates", "native"]) == 2
    assert "held out" in capsys.readouterr().err
    assert attribution.main(["--data", str(tmp_path), "--rates", "native", "--allow-held-out"]) == 0
    assert "counted" in capsys.readouterr().out


def test_a_lever_is_measured_from_the_command_line(tmp_path: Path) -> None:
    _write(tmp_path / "walk")

    def counted(*lever: str) -> int:
        out = tmp_path / "a.json"
        argv = ["--data", str(tmp_path), "--rates", "native", "--json", str(out), *lever]
        assert attribution.main(argv) == 0
        return int(json.loads(out.read_text())["native"]["total"]["causes"]["counted"])

    # Person 3's 0.3 boxes become "high" and start a track, which then counts the grid's lines too:
    # a threshold the tracker's kernel fixes at construction must take effect.
    assert counted("--tracker-kw", '{"track_thresh": 0.2}') > counted() > 0


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--line-kw", '{"min_frame": 2}', "min_frame"),
        ("--line-kw", '{"min_frames": 0}', "min_frames must be >= 1"),
        ("--analytics-kw", '{"amodel": false}', "amodel"),
        ("--tracker-kw", '{"center_gat": 1.0}', "center_gat"),
        ("--tracker-kw", '{"center_gate": -1}', "center_gate must be >= 0"),
    ],
)
def test_a_misspelt_lever_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, said: str
) -> None:
    _write(tmp_path / "walk")

    assert attribution.main(["--data", str(tmp_path), "--rates", "native", option, value]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err
    assert counting.main(["--data", str(tmp_path), "--rates", "native", option, value]) == 2
    assert said in capsys.readouterr().err


def test_a_lever_that_is_no_json_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        attribution.main(["--data", str(tmp_path), "--line-kw", "[1]"])
    assert exit_info.value.code == 2
