"""``edge bench analytics`` runs end to end on one real sequence and reports its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.benchmarks import analytics


@pytest.mark.slow  # two fresh interpreters that track a 525-frame sequence
def test_bench_times_the_analytics_on_real_tracks(
    mot17_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert analytics.main(["--mot-dir", str(mot17_dir), "--sequences", "MOT17-09", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| this tree | 525 |" in out
