"""Notebook regression harness: execute a notebook with papermill and return its output dir.

Every notebook runs with kernel ``python3``, cwd ``notebooks/``, parameters ``quick=True`` and
``output_dir=<tmp>``; the tests then assert on the artifact the notebook's last cell writes
(``results.json``) with tolerances.

Limits: each cell has ``timeout`` seconds (papermill), each notebook test
:data:`NOTEBOOK_WALL_S` seconds of wall clock in all (a ``pytest-timeout`` marker added to every
test here, and checked again after the run), and the executed notebook's outputs may hold at most
:data:`OUTPUT_CAP_BYTES` (a cell printing 50 MB fails the test, naming the cell, instead of
becoming a 50 MB notebook). ``WORKBENCH_NOTEBOOK_WALL_S`` and ``WORKBENCH_NOTEBOOK_OUTPUT_MB`` change them.

A notebook that ran without error is also kept as ``build/notebooks/<name>.ipynb`` (the docs site
renders it with its outputs: ``docs/_hooks.py``) and ``build/notebooks/<name>.html``, a
self-contained export whose figures draw offline (``widgets.report.export_notebook_html``).
Set ``WORKBENCH_EXECUTED_NOTEBOOKS`` to keep them elsewhere.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXECUTED = Path(os.environ.get("WORKBENCH_EXECUTED_NOTEBOOKS", NOTEBOOKS.parent / "build" / "notebooks"))
NOTEBOOK_WALL_S = float(os.environ.get("WORKBENCH_NOTEBOOK_WALL_S", "900"))
OUTPUT_CAP_BYTES = int(float(os.environ.get("WORKBENCH_NOTEBOOK_OUTPUT_MB", "20")) * 2**20)


def pytest_collection_modifyitems(config, items):
    """Every notebook test gets a wall-clock limit of :data:`NOTEBOOK_WALL_S` (pytest-timeout)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(NOTEBOOK_WALL_S))


def check_output_size(executed: Path, cap: int = OUTPUT_CAP_BYTES) -> None:
    """Fail when the outputs of ``executed`` exceed ``cap`` bytes, naming the largest cells."""
    cells = json.loads(executed.read_text())["cells"]
    sizes = sorted(((len(json.dumps(c.get("outputs", []))), i) for i, c in enumerate(cells)), reverse=True)
    total = sum(size for size, _ in sizes)
    if total > cap:
        worst = ", ".join(f"cell {i} ({size / 2**20:.1f} MiB)" for size, i in sizes[:3] if size > total / 100)
        raise AssertionError(f"{executed.name}: outputs hold {total / 2**20:.1f} MiB, over the cap of "
                             f"{cap / 2**20:.1f} MiB; largest: {worst}. Print less (or summarise) in those cells.")


def keep_executed(executed: Path) -> None:
    """Copy an executed notebook to :data:`EXECUTED`, with its HTML export (test artifacts)."""
    import shutil

    from widgets.report import export_notebook_html

    EXECUTED.mkdir(parents=True, exist_ok=True)
    tmp = EXECUTED / f".{executed.name}.tmp"
    shutil.copyfile(executed, tmp)
    tmp.replace(EXECUTED / executed.name)  # whole or not at all: the docs build may read it
    export_notebook_html(executed, EXECUTED / f"{executed.stem}.html")


def execute(name: str | Path, tmp_path: Path, timeout: int = 300, *, wall: float = NOTEBOOK_WALL_S,
            output_cap: int = OUTPUT_CAP_BYTES, **params) -> Path:
    """Run ``notebooks/<name>.ipynb`` (or the notebook at path ``name``) with ``quick=True`` into
    ``tmp_path``; return the output dir. Fails past ``wall`` seconds or ``output_cap`` bytes of output."""
    import papermill as pm

    source = Path(name) if Path(name).is_absolute() else NOTEBOOKS / (
        name if str(name).endswith(".ipynb") else f"{name}.ipynb")
    if not source.exists():
        raise FileNotFoundError(f"notebook {source} does not exist")
    out_dir = tmp_path / source.stem
    out_dir.mkdir()
    env = {"TQDM_DISABLE": "1", "WORKBENCH_DATA": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started = time.monotonic()
    try:
        pm.execute_notebook(
            str(source), str(out_dir / source.name), kernel_name="python3", cwd=str(NOTEBOOKS),
            parameters={"quick": True, "output_dir": str(out_dir), **params},
            execution_timeout=min(timeout, wall), progress_bar=False)
        elapsed = time.monotonic() - started
        if elapsed > wall:
            raise AssertionError(f"{source.name} ran {elapsed:.0f} s, over its wall-clock limit of {wall:.0f} s")
        check_output_size(out_dir / source.name, output_cap)
        keep_executed(out_dir / source.name)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out_dir


@pytest.fixture
def run_notebook(tmp_path):
    """``run_notebook(name, **params) -> output dir`` (function-scoped temp dir)."""
    return lambda name, timeout=300, **params: execute(name, tmp_path, timeout, **params)


def read_results(out_dir: Path) -> dict:
    path = out_dir / "results.json"
    assert path.exists(), f"the notebook did not write {path}"
    return json.loads(path.read_text())
