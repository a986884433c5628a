"""Notebook regression harness: execute a notebook with papermill and return its output dir.

Every notebook runs with kernel ``python3``, cwd ``notebooks/``, parameters ``quick=True`` and
``output_dir=<tmp>``, under a per-notebook timeout; the tests then assert on the artifact the
notebook's last cell writes (``results.json``) with tolerances.

A notebook that ran without error is also kept as ``build/notebooks/<name>.ipynb`` (the docs site
renders it with its outputs: ``docs/_hooks.py``) and ``build/notebooks/<name>.html``, a
self-contained export whose figures draw offline (``widgets.report.export_notebook_html``).
Set ``WORKBENCH_EXECUTED_NOTEBOOKS`` to keep them elsewhere.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXECUTED = Path(os.environ.get("WORKBENCH_EXECUTED_NOTEBOOKS", NOTEBOOKS.parent / "build" / "notebooks"))


def keep_executed(executed: Path) -> None:
    """Copy an executed notebook to :data:`EXECUTED`, with its HTML export (test artifacts)."""
    import shutil

    from widgets.report import export_notebook_html

    EXECUTED.mkdir(parents=True, exist_ok=True)
    tmp = EXECUTED / f".{executed.name}.tmp"
    shutil.copyfile(executed, tmp)
    tmp.replace(EXECUTED / executed.name)  # whole or not at all: the docs build may read it
    export_notebook_html(executed, EXECUTED / f"{executed.stem}.html")


def execute(name: str, tmp_path: Path, timeout: int = 300, **params) -> Path:
    """Run ``notebooks/<name>.ipynb`` with ``quick=True`` into ``tmp_path``; return the output dir."""
    import papermill as pm

    source = NOTEBOOKS / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not source.exists():
        raise FileNotFoundError(f"notebook {source} does not exist")
    out_dir = tmp_path / source.stem
    out_dir.mkdir()
    env = {"TQDM_DISABLE": "1", "WORKBENCH_DATA": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        pm.execute_notebook(
            str(source), str(out_dir / source.name), kernel_name="python3", cwd=str(NOTEBOOKS),
            parameters={"quick": True, "output_dir": str(out_dir), **params},
            execution_timeout=timeout, progress_bar=False)
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
