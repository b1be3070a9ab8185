"""Every file in tests/data/bad_configs is one user mistake: exit 78, dotted path + YAML line, no traceback.

The first line of each file says what must be reported: ``# expect: <dotted path> @ <line or None>``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.__main__ import main
from edge.errors import EX_CONFIG

BAD_DIR = Path(__file__).resolve().parents[2] / "data" / "bad_configs"
BAD_FILES = sorted(BAD_DIR.glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (?P<path>\S+) @ (?P<line>\d+|None)$")


def _expectation(path: Path) -> tuple[str, str | None]:
    m = EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert m, f"{path.name} lacks an '# expect:' header"
    return m["path"], None if m["line"] == "None" else m["line"]


def test_corpus_has_at_least_20_distinct_mistakes() -> None:
    assert len(BAD_FILES) >= 20
    assert len({_expectation(p) for p in BAD_FILES}) >= 20


@pytest.mark.parametrize("bad", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_config_exits_78_naming_path_and_line(bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dotted, line = _expectation(bad)
    code = main(["check-config", str(bad)])
    out = capsys.readouterr()
    assert code == EX_CONFIG, out.err
    assert "Traceback" not in out.err + out.out
    where = f"{bad}:{line}: " if line is not None else f"{bad}: "
    expected = f"{where}{dotted}: " if dotted != "<root>" else where
    assert any(ln.startswith(expected) for ln in out.err.splitlines()), (
        f"expected a line starting with {expected!r} in:\n{out.err}"
    )


@pytest.mark.parametrize("name", ["typo_key", "self_intersecting_zone", "yaml_syntax"])
def test_bad_config_via_real_process(name: str) -> None:
    bad = BAD_DIR / f"{name}.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EX_CONFIG
    assert "Traceback" not in proc.stderr
    _, line = _expectation(bad)
    assert f":{line}: " in proc.stderr
