"""Sweep records and results: what a sweep was, and its per-cell summary rebuilt from the store.

A record (the store artifact ``sweep/<sweep_id>``, JSON, written atomically) lists the grid axes,
the base config and each point's run id, so dashboards find sweeps (:func:`list_sweeps`) and
:func:`load_sweep` rebuilds the result Dataset from the runs at any time, also while the sweep is
still running. Records written before the store's artifact area (``<root>/sweeps/<id>.json``)
are read too.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from workbench.store import RunStore, default_root
from workbench.sweep.tasks import ACCURACY_VARS, TASKS, THRESHOLD, accuracy_summary

RECORD_KIND = "sweep"


def as_store(data: RunStore | str | os.PathLike | None) -> RunStore:
    """A RunStore from a store, a root path, or ``None`` (the default root)."""
    if isinstance(data, RunStore):
        return data
    return RunStore(data if data is not None else default_root())


def write_record(store: RunStore, sweep_id: str, /, **fields: Any) -> Path:
    """Create or update the sweep record ``sweep_id`` atomically (fields are merged; ``created``
    is set once, ``updated`` on every write)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        old = store.load_artifact(RECORD_KIND, sweep_id)
    except KeyError:
        old = {}
    return store.save_artifact(RECORD_KIND, sweep_id, {"created": now, **old, **fields, "updated": now})


def read_record(store: RunStore | str | os.PathLike, sweep_id: str) -> dict[str, Any]:
    """The sweep record (``sweep_id, task, axes, base, points, status, ...``); clear error if unknown.

    ``axes`` is a list of ``[name, values]`` pairs in grid order; ``points`` holds each cell's
    ``index``, ``params`` and ``run_id``.
    """
    store = as_store(store)
    try:
        return store.load_artifact(RECORD_KIND, sweep_id)
    except KeyError:
        known = store.artifacts(RECORD_KIND)
        raise KeyError(f"no sweep {sweep_id!r} in {store.root}; known sweeps: {known}") from None


def list_sweeps(store: RunStore | str | os.PathLike | None) -> pd.DataFrame:
    """One row per sweep record: id, task, axes, number of points, status, created, updated."""
    store = as_store(store)
    rows = []
    for name in store.artifacts(RECORD_KIND):
        try:
            rec = store.load_artifact(RECORD_KIND, name)
        except ValueError:  # an unreadable record (not JSON): not a sweep to show
            continue
        rows.append({"sweep_id": rec.get("sweep_id", name), "task": rec.get("task"),
                     "axes": " × ".join(f"{a}[{len(v)}]" for a, v in rec.get("axes", [])),
                     "n_points": len(rec.get("points", [])), "status": rec.get("status"),
                     "created": rec.get("created"), "updated": rec.get("updated")})
    return pd.DataFrame(rows, columns=["sweep_id", "task", "axes", "n_points", "status", "created", "updated"])


def to_dataset(axes: Mapping[str, list[Any]], cells: Mapping[tuple[int, ...], dict[str, Any]],
                attrs: dict[str, Any]) -> xr.Dataset:
    shape = tuple(len(v) for v in axes.values())
    numeric = sorted({k for c in cells.values() for k, v in c.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("worker_pid",)})
    text = ("run_id", "status", "action")
    data: dict[str, Any] = {}
    for name in numeric:
        arr = np.full(shape, np.nan)
        for idx, cell in cells.items():
            arr[idx] = cell.get(name, np.nan)
        data[name] = (tuple(axes), arr)
    for name in text:
        arr = np.full(shape, "", dtype=object)
        for idx, cell in cells.items():
            arr[idx] = str(cell.get(name, ""))
        data[name] = (tuple(axes), arr.astype(str))
    ds = xr.Dataset(data, coords={a: np.asarray(v) for a, v in axes.items()}, attrs=attrs)
    for name in ("steps_to_train_95", "steps_to_test_95"):
        if name in ds:
            ds[name].attrs.update(long_name=f"first step with {name.split('_')[2]} accuracy >= {THRESHOLD}",
                                  units="steps")
    return ds


def load_sweep(store: RunStore | str | os.PathLike, sweep_id: str) -> xr.Dataset:
    """Rebuild a sweep's result Dataset from its record and the runs in the store (any time).

    Cells whose run does not exist yet have status ``"pending"`` and NaN metrics.
    """
    store = as_store(store)
    rec = read_record(store, sweep_id)
    spec = TASKS.get(rec["task"])
    summarize = spec.summary_fn() if spec is not None else accuracy_summary
    defaults = dict.fromkeys(ACCURACY_VARS, math.nan) if summarize is accuracy_summary else {}
    cells = {}
    for point in rec["points"]:
        idx = tuple(point["index"])
        try:
            run = store.open(point["run_id"])
        except KeyError:
            cells[idx] = {"run_id": point["run_id"], "status": "pending", "action": ""}
            continue
        cells[idx] = {"run_id": run.id, "status": run.state.get("status", "unknown"), "action": "",
                      **defaults, **summarize(run)}
    return to_dataset(dict(rec["axes"]), cells, record_attrs(rec))


def record_attrs(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {"sweep_id": rec["sweep_id"], "task": rec["task"], "base": json.dumps(rec.get("base", {})),
            "threshold": THRESHOLD, "status": rec.get("status", ""),
            "reference": "Power et al. 2022 (grokking), Fig. 2; Liu et al. 2022 (Omnigrok), Fig. 1"}
