"""Grids of training runs on Dask distributed: one task per grid point, idempotent by run id.

``sweep("modular", {"wd": [0.1, 1.0], "frac": [0.3, 0.5]})`` trains one run per grid point on a
``LocalCluster`` of processes (or on an existing cluster, ``scheduler="tcp://host:8786"``) into a
shared :class:`~workbench.store.RunStore`, and gathers a per-cell summary into one
``xr.Dataset`` whose dims are the grid axes — e.g. the steps to 95% train and test accuracy, the
memorisation/comprehension phase diagram of grokking (Power et al. 2022, Fig. 2; Liu et al. 2022,
"Omnigrok", Fig. 1).

Fault tolerance comes from the run store, not from Dask: a grid point's run id is the content hash
of its config, so a retried or resubmitted point finds its own run — finished runs are skipped,
interrupted ones resume from their last verified checkpoint (``fit(resume=True)`` is exact on
CPU). A killed worker costs only its in-flight point, which Dask reschedules; an advisory
``flock`` per run keeps two processes from ever training the same run at once (e.g. a
straggler that a scheduler gave up on, or two overlapping sweeps).

A sweep record ``<root>/sweeps/<sweep_id>.json`` (written atomically) lists the grid axes, the base
config and each point's run id, so dashboards find sweeps and :func:`load_sweep` rebuilds the
results from the store at any time, also while a sweep is still running.

References
----------
Power, A. et al. (2022). Grokking: Generalization beyond overfitting on small algorithmic datasets.
Liu, Z. et al. (2022). Omnigrok: Grokking beyond algorithmic data. ICLR 2023.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib
import itertools
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from workbench.store import RunStore, atomic_write_json, default_root, run_id_for

THRESHOLD = 0.95
ACCURACY_VARS = ("steps_to_train_95", "steps_to_test_95", "final_train_acc", "final_test_acc",
                 "final_train_loss", "final_test_loss", "final_step")
SWEEPS_DIR = "sweeps"


# -- tasks ----------------------------------------------------------------------------------------
def accuracy_summary(run: Any) -> dict[str, float]:
    """Per-run summary of a classifier run: steps to 95% train/test accuracy and final metrics.

    ``steps_to_*_95`` is the first evaluated step with accuracy ≥ 0.95 (NaN if never) — the two
    axes of the grokking phase diagram (Power et al. 2022, Fig. 2: memorisation happens at
    ``steps_to_train_95``, generalisation at ``steps_to_test_95``; their gap is the grokking delay).
    """
    out = dict.fromkeys(ACCURACY_VARS, math.nan)
    try:
        m = run.metrics(group="train")
    except (RuntimeError, OSError):  # no readable metrics version (yet): nothing to summarise
        return out
    if "step" not in m.dims or m.sizes["step"] == 0:
        return out
    steps = m["step"].values
    for split in ("train", "test"):
        acc = m.get(f"{split}_acc")
        if acc is None:
            continue
        hit = np.flatnonzero(acc.values >= THRESHOLD)
        out[f"steps_to_{split}_95"] = float(steps[hit[0]]) if hit.size else math.nan
        out[f"final_{split}_acc"] = float(acc.values[-1])
        if f"{split}_loss" in m:
            out[f"final_{split}_loss"] = float(m[f"{split}_loss"].values[-1])
    out["final_step"] = float(steps[-1])
    return out


@dataclass(frozen=True)
class SweepTask:
    """How a sweep trains one grid point: ``module.config(**params)`` then ``module.train(config, store)``.

    The config class must be a dataclass (its fields are the sweepable parameters) with
    ``to_run_config() -> dict``, from which the run id is derived before training; ``train`` must
    create/resume the run for that config in the store and accept ``progress=False``.
    """

    module: str
    config: str
    train: str
    summarize: str | Callable[[Any], dict[str, float]] = accuracy_summary  # a name in ``module`` or a function

    def resolve(self) -> tuple[type, Callable[..., Any]]:
        mod = importlib.import_module(self.module)
        return getattr(mod, self.config), getattr(mod, self.train)

    def summary_fn(self) -> Callable[[Any], dict[str, float]]:
        if callable(self.summarize):
            return self.summarize
        return getattr(importlib.import_module(self.module), self.summarize)

    def available(self) -> bool:
        try:
            self.resolve()
        except (ImportError, AttributeError):
            return False
        return True


#: Registered sweep tasks. Adding a task is one line: its module, config dataclass and train function.
TASKS: dict[str, SweepTask] = {
    "modular": SweepTask("workbench.grokking.modular_run", "ModularConfig", "train_modular"),
    "grokking": SweepTask("workbench.grokking", "GrokkingConfig", "train_grokking"),
    "superposition": SweepTask("workbench.superposition.run", "ToyRunConfig", "train_toy_run", "toy_summary"),
}


def available_tasks() -> list[str]:
    """Names in :data:`TASKS` whose module and functions import on this machine."""
    return [name for name, spec in TASKS.items() if spec.available()]


def get_task(task: str | SweepTask) -> SweepTask:
    """Look a task up by name (clear error listing the available ones) or pass a spec through."""
    if isinstance(task, SweepTask):
        return task
    if not isinstance(task, str):
        raise TypeError(f"task must be a task name or a SweepTask, got {type(task).__name__}")
    if task not in TASKS:
        raise ValueError(f"unknown sweep task {task!r}; available: {available_tasks()}")
    if not TASKS[task].available():
        raise ValueError(f"sweep task {task!r} is registered but {TASKS[task].module}.{TASKS[task].train} "
                         f"cannot be imported here; available: {available_tasks()}")
    return TASKS[task]


# -- grid ----------------------------------------------------------------------------------------
def _check_value(axis: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"grid[{axis!r}] values must be int, float or str, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"grid[{axis!r}] values must be finite, got {value!r}")
    return value


def validate_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """``{axis: values}`` with non-empty, duplicate-free lists of JSON scalars (order kept)."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty mapping {parameter: [values, ...]}")
    axes: dict[str, list[Any]] = {}
    for axis, values in grid.items():
        if not isinstance(axis, str) or not axis.isidentifier():
            raise ValueError(f"grid axis names must be identifiers (config fields), got {axis!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"grid[{axis!r}] must be a list of values, got {values!r}")
        vals = [_check_value(axis, v) for v in values]
        if not vals:
            raise ValueError(f"grid[{axis!r}] is empty")
        if len(set(vals)) != len(vals):
            raise ValueError(f"grid[{axis!r}] has duplicate values: {vals}")
        axes[axis] = vals
    return axes


def _parse_scalar(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse CLI grid specs ``["wd=0.1,1.0", "frac=0.3,0.5"]`` → ``{"wd": [0.1, 1.0], "frac": [0.3, 0.5]}``."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"grid spec must look like 'name=v1,v2,...', got {spec!r}")
        if name.strip() in grid:
            raise ValueError(f"grid axis {name.strip()!r} given twice")
        grid[name.strip()] = [_parse_scalar(v.strip()) for v in values.split(",") if v.strip()]
    return validate_grid(grid)


def parse_overrides(specs: Sequence[str]) -> dict[str, Any]:
    """Parse ``["p=23", "op=sub"]`` → ``{"p": 23, "op": "sub"}`` (fixed config values of a sweep)."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"override must look like 'name=value', got {spec!r}")
        out[name.strip()] = _parse_scalar(value.strip())
    return out


@dataclass(frozen=True)
class GridPoint:
    """One cell of a sweep: its index along each axis, its parameters and its run id."""

    index: tuple[int, ...]
    params: dict[str, Any]
    run_id: str


def plan(task: str | SweepTask, grid: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None
         ) -> tuple[dict[str, list[Any]], list[GridPoint]]:
    """Validate ``grid`` and ``base`` against the task's config and list the grid points with run ids.

    Every config is built (and so validated) here, in the client, before anything is submitted.
    """
    spec = get_task(task)
    axes = validate_grid(grid)
    base = dict(base or {})
    config_cls, _ = spec.resolve()
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted((set(axes) | set(base)) - fields)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} parameter(s) {unknown}; sweepable: {sorted(fields)}")
    both = sorted(set(axes) & set(base))
    if both:
        raise ValueError(f"parameter(s) {both} are both grid axes and fixed in base; give each once")
    points, seen = [], {}
    for index in itertools.product(*(range(len(v)) for v in axes.values())):
        params = {**base, **{a: axes[a][i] for a, i in zip(axes, index)}}
        try:
            config = config_cls(**params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"grid point {params} is not a valid {config_cls.__name__}: {exc}") from exc
        run_id = run_id_for(config.to_run_config())
        if run_id in seen:
            raise ValueError(f"grid points {seen[run_id]} and {params} give the same run {run_id}")
        seen[run_id] = params
        points.append(GridPoint(tuple(index), params, run_id))
    return axes, points


def sweep_id_for(task_name: str, axes: Mapping[str, list[Any]], base: Mapping[str, Any]) -> str:
    """``<task>-sweep-<12 hex>``: content hash of the task name, axes (in order) and base config."""
    text = json.dumps({"task": task_name, "axes": list(axes.items()), "base": dict(base)}, sort_keys=True)
    return f"{task_name}-sweep-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# -- the work of one grid point (runs on a Dask worker) -------------------------------------------
@contextlib.contextmanager
def _run_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock held while a run trains; the OS drops it if the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _task_name(spec: SweepTask) -> str:
    for name, registered in TASKS.items():
        if registered == spec:
            return name
    return f"{spec.module}.{spec.train}"


def run_point(spec: SweepTask, params: dict[str, Any], root: str) -> dict[str, Any]:
    """Train (or resume, or skip) the run of one grid point and return its summary.

    Idempotent by run id: ``done``/``diverged`` runs are skipped untouched; ``created``/``running``
    runs (interrupted) resume from their last verified checkpoint. Torch is pinned to one thread
    so that ``n`` worker processes use ``n`` cores.
    """
    import torch

    from workbench.train import TrainingDiverged

    torch.set_num_threads(1)
    config_cls, train = spec.resolve()
    config = config_cls(**params)
    store = RunStore(root)
    run_id = run_id_for(config.to_run_config())
    run_dir = store._path(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # the store reads zarr through dask: run those reads here, never as tasks on the (busy) cluster
    with dask.config.set(scheduler="synchronous"), _run_lock(run_dir / ".sweep.lock"):
        state = store.open(run_id).state if (run_dir / "config.json").exists() else {"status": "new"}
        checkpoints = store.open(run_id).checkpoint_steps() if state["status"] != "new" else []
        if state["status"] in ("done", "diverged"):
            action, resumed_from = "skipped", -1
        else:
            action = "resumed" if checkpoints else "trained"
            resumed_from = checkpoints[-1] if checkpoints else -1
            try:
                train(config, store, progress=False)
            except TrainingDiverged:
                pass  # recorded in the run's state (status "diverged"); the cell shows it
        run = store.open(run_id)
        summary = spec.summary_fn()(run)
        status = run.state.get("status", "unknown")
    return {"run_id": run_id, "status": status, "action": action, "resumed_from": resumed_from,
            "seconds": time.perf_counter() - t0, "worker_pid": os.getpid(), **summary}


# -- sweep records --------------------------------------------------------------------------------
def as_store(data: RunStore | str | os.PathLike | None) -> RunStore:
    """A RunStore from a store, a root path, or ``None`` (the default root)."""
    if isinstance(data, RunStore):
        return data
    return RunStore(data if data is not None else default_root())


def _record_path(store: RunStore, sweep_id: str) -> Path:
    store._path(sweep_id)  # same validation as run ids: nothing outside the root
    return store.root / SWEEPS_DIR / f"{sweep_id}.json"


def write_record(store: RunStore, sweep_id: str, /, **fields: Any) -> Path:
    """Create or update ``<root>/sweeps/<sweep_id>.json`` atomically (fields are merged)."""
    path = _record_path(store, sweep_id)
    path.parent.mkdir(exist_ok=True)
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_json(path, record)
    return path


def read_record(store: RunStore | str | os.PathLike, sweep_id: str) -> dict[str, Any]:
    """The sweep record (``sweep_id, task, axes, base, points, status, ...``); clear error if unknown.

    ``axes`` is a list of ``[name, values]`` pairs in grid order; ``points`` holds each cell's
    ``index``, ``params`` and ``run_id``.
    """
    store = as_store(store)
    path = _record_path(store, sweep_id)
    if not path.exists():
        known = list_sweeps(store)["sweep_id"].tolist()
        raise KeyError(f"no sweep {sweep_id!r} in {store.root}; known sweeps: {known}")
    return json.loads(path.read_text())


def list_sweeps(store: RunStore | str | os.PathLike | None) -> pd.DataFrame:
    """One row per sweep record: id, task, axes, number of points, status, created, updated."""
    store = as_store(store)
    rows = []
    sdir = store.root / SWEEPS_DIR
    for path in sorted(sdir.glob("*.json")) if sdir.exists() else []:
        try:
            rec = json.loads(path.read_text())
        except ValueError:
            continue
        rows.append({"sweep_id": rec.get("sweep_id", path.stem), "task": rec.get("task"),
                     "axes": " × ".join(f"{a}[{len(v)}]" for a, v in rec.get("axes", [])),
                     "n_points": len(rec.get("points", [])), "status": rec.get("status"),
                     "created": rec.get("created"), "updated": rec.get("updated")})
    return pd.DataFrame(rows, columns=["sweep_id", "task", "axes", "n_points", "status", "created", "updated"])


def _to_dataset(axes: Mapping[str, list[Any]], cells: Mapping[tuple[int, ...], dict[str, Any]],
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
    return _to_dataset(dict(rec["axes"]), cells, _attrs(rec))


def _attrs(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {"sweep_id": rec["sweep_id"], "task": rec["task"], "base": json.dumps(rec.get("base", {})),
            "threshold": THRESHOLD, "status": rec.get("status", ""),
            "reference": "Power et al. 2022 (grokking), Fig. 2; Liu et al. 2022 (Omnigrok), Fig. 1"}


# -- the sweep ------------------------------------------------------------------------------------
def _connect(scheduler: Any, n_workers: int) -> tuple[Any, Callable[[], None]]:
    from distributed import Client, LocalCluster

    if scheduler is None:
        if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
            raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
        cluster = LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()
        return client, close
    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if isinstance(scheduler, str):
        client = Client(scheduler)
        return client, client.close
    raise TypeError(f"scheduler must be None, a scheduler address like 'tcp://host:8786' or a "
                    f"distributed.Client, got {type(scheduler).__name__}")


def sweep(
    task: str | SweepTask,
    grid: Mapping[str, Sequence[Any]],
    *,
    base: Mapping[str, Any] | None = None,
    scheduler: Any = None,
    data: str | os.PathLike | RunStore | None = None,
    n_workers: int = 2,
    progress: bool = True,
) -> xr.Dataset:
    """Train one run per grid point on Dask distributed and gather a per-cell summary.

    Parameters
    ----------
    task : name in :data:`TASKS` (``"modular"``, ``"grokking"`` when available) or a :class:`SweepTask`.
    grid : ``{parameter: [values]}``; the product of the value lists is the grid (axes in this order).
    base : fixed config values shared by all points (e.g. ``{"p": 23, "steps": 2000}``).
    scheduler : ``None`` → a ``LocalCluster(n_workers, processes=True, threads_per_worker=1)`` for
        this call; a scheduler address ``"tcp://host:8786"`` (workers must see ``data`` at the same
        path); or a ``distributed.Client`` (left open).
    data : run-store root shared by client and workers (default ``$WORKBENCH_DATA`` or ``data/runs``).
    n_workers : worker processes of the default ``LocalCluster``.
    progress : tqdm bar over grid points (as they complete).

    Returns
    -------
    xr.Dataset
        Dims = the grid axes (coords = the values). Vars: ``steps_to_train_95``,
        ``steps_to_test_95`` (first step with accuracy ≥ 0.95, NaN if never; Power et al. 2022,
        Fig. 2), ``final_{train,test}_{acc,loss}``, ``final_step``, ``seconds``, ``resumed_from``
        (checkpoint step, -1 if none), and strings ``run_id``, ``status`` (run status, or
        ``"failed"``), ``action`` (``trained``/``resumed``/``skipped``). Attrs: ``sweep_id``, ``task``.
    """
    from distributed import Client, as_completed
    from tqdm.auto import tqdm

    from workbench.train import progress_enabled

    if scheduler is not None and not isinstance(scheduler, (str, Client)):
        raise TypeError(f"scheduler must be None, a scheduler address like 'tcp://host:8786' or a "
                        f"distributed.Client, got {type(scheduler).__name__}")
    spec = get_task(task)
    name = task if isinstance(task, str) else _task_name(spec)
    base = dict(base or {})
    axes, points = plan(spec, grid, base)
    store = as_store(data)
    sweep_id = sweep_id_for(name, axes, base)
    # axes as [name, values] pairs: JSON objects are written with sorted keys, the axis order matters
    record = {"sweep_id": sweep_id, "task": name, "axes": [[a, v] for a, v in axes.items()], "base": base,
              "points": [{"index": list(p.index), "params": p.params, "run_id": p.run_id} for p in points]}
    if not _record_path(store, sweep_id).exists():
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_record(store, sweep_id, **record, status="running")

    client, close = _connect(scheduler, n_workers)
    cells: dict[tuple[int, ...], dict[str, Any]] = {}
    failures: dict[str, str] = {}
    try:
        futures = {client.submit(run_point, spec, p.params, str(store.root), key=f"sweep-point-{p.run_id}"): p
                   for p in points}
        bar = tqdm(total=len(points), disable=not progress_enabled(progress), desc=f"sweep {name}",
                   unit="run", dynamic_ncols=True)
        for future in as_completed(futures):
            point = futures[future]
            try:
                cells[point.index] = future.result()
            except Exception as exc:  # noqa: BLE001 - any task error: one bad cell must not lose the others
                failures[point.run_id] = f"{type(exc).__name__}: {exc}"
                cells[point.index] = {"run_id": point.run_id, "status": "failed", "action": "failed"}
            bar.update(1)
            bar.set_postfix_str(f"{cells[point.index]['action']} {point.run_id}")
        bar.close()
    except BaseException:
        write_record(store, sweep_id, status="interrupted")
        raise
    finally:
        close()
    write_record(store, sweep_id, status="failed" if failures else "done", failures=failures)
    if failures:
        warnings.warn(f"{len(failures)} of {len(points)} grid points failed: {failures}", stacklevel=2)
    return _to_dataset(axes, cells, _attrs({**record, "status": "failed" if failures else "done"}))
