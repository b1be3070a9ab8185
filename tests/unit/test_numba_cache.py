"""Compiled kernels use nothing from other edge files, so Numba's on-disk cache can never go stale.

Numba caches a compiled function keyed on its own source file only (numba#1833). A kernel that calls
a jitted helper, or reads a constant, from another file keeps the compiled-in old version after that
other file changes: after an upgrade in place, or under the systemd unit's persistent
``NUMBA_CACHE_DIR``, it would silently run old code. So every global a kernel reads must be defined in
its own file, be a module (``np``, ``math``), come from Numba itself, or be a builtin. Pass anything
else as an argument (``camera_motion.shift_tracks`` takes the tracker's ``TRACKED`` code that way).
"""

from __future__ import annotations

import ast
import builtins
import dis
import importlib
import pkgutil
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from numba.core.registry import CPUDispatcher

import edge


def _top_level_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(t.id for t in elts if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _globals_read(code: types.CodeType) -> set[str]:
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _globals_read(const)
    return names


def foreign_globals(module: types.ModuleType) -> list[str]:
    """``kernel: name`` for every global a jitted function of ``module`` reads from another file."""
    own = _top_level_names(Path(module.__file__ or "").read_text(encoding="utf-8"))
    problems = []
    for attr, obj in sorted(vars(module).items()):
        if not isinstance(obj, CPUDispatcher) or obj.py_func.__module__ != module.__name__:
            continue
        for name in sorted(_globals_read(obj.py_func.__code__)):
            value: Any = obj.py_func.__globals__.get(name, getattr(builtins, name, None))
            if name in own or isinstance(value, types.ModuleType):
                continue
            if name not in obj.py_func.__globals__ and hasattr(builtins, name):
                continue
            if (getattr(value, "__module__", None) or "").split(".")[0] == "numba":
                continue
            problems.append(f"{attr}: {name}")
    return problems


def _edge_modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(edge.__path__, "edge.")
        if not m.name.startswith("edge.benchmarks") and m.name != "edge.__main__"
    )


def test_every_module_with_kernels_is_checked() -> None:
    with_kernels = []
    for name in _edge_modules():
        module = importlib.import_module(name)
        if any(isinstance(v, CPUDispatcher) and v.py_func.__module__ == name for v in vars(module).values()):
            with_kernels.append(name)
    # The files that compile kernels today; a new one is checked by the test below automatically.
    assert {
        "edge.events.lines",
        "edge.events.zones",
        "edge.preprocess",
        "edge.tracking.camera_motion",
        "edge.tracking.kernels",
        "edge.yolo",
    } <= set(with_kernels)


@pytest.mark.parametrize("name", _edge_modules())
def test_kernels_read_no_globals_from_other_files(name: str) -> None:
    assert foreign_globals(importlib.import_module(name)) == []


def test_the_check_finds_an_imported_constant_and_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nb_other.py").write_text(
        "from numba import njit\nLIMIT = 3\n\n@njit\ndef helper(x):\n    return x + 1\n", encoding="utf-8"
    )
    (tmp_path / "nb_user.py").write_text(
        textwrap.dedent(
            """
            import math
            import numpy as np
            from numba import njit
            from nb_other import LIMIT, helper
            OWN = 2

            @njit
            def kernel(x):
                return helper(x) + LIMIT + OWN + np.int64(math.floor(1.5)) + len((1,))
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert foreign_globals(importlib.import_module("nb_user")) == ["kernel: LIMIT", "kernel: helper"]
    finally:
        sys.modules.pop("nb_user", None)
        sys.modules.pop("nb_other", None)
