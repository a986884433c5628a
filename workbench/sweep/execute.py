"""Sweep execution on Dask distributed: one task per grid point, idempotent by run id.

:func:`run_point` is the work of one grid point on a worker: train, resume or skip its run, under
the run's advisory lock (:meth:`~workbench.store.RunStore.lock`), and summarise it. :func:`sweep`
plans the grid (:mod:`workbench.sweep.grid`), writes the sweep record
(:mod:`workbench.sweep.records`), submits the points and gathers their summaries.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask
import xarray as xr

from workbench.store import RunStore, run_id_for
from workbench.sweep.grid import GridPoint, plan, sweep_id_for
from workbench.sweep.records import as_store, record_attrs, to_dataset, write_record
from workbench.sweep.tasks import SweepTask, get_task, task_name


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
    t0 = time.perf_counter()
    # the store reads zarr through dask: run those reads here, never as tasks on the (busy) cluster
    with dask.config.set(scheduler="synchronous"), store.lock(run_id):
        state = store.open(run_id).state if store.exists(run_id) else {"status": "new"}
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


def _gather(client: Any, spec: SweepTask, points: Sequence[GridPoint], root: str, bar: Any
            ) -> tuple[dict[tuple[int, ...], dict[str, Any]], dict[str, str]]:
    """Submit every point and collect the cells as they finish; a failed point becomes a
    ``"failed"`` cell (its error in the second dict) and costs no other cell."""
    from distributed import as_completed

    futures = {client.submit(run_point, spec, p.params, root, key=f"sweep-point-{p.run_id}"): p for p in points}
    cells: dict[tuple[int, ...], dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for future in as_completed(futures):
        point = futures[future]
        try:
            cells[point.index] = future.result()
        except Exception as exc:  # noqa: BLE001 - any task error: one bad cell must not lose the others
            failures[point.run_id] = f"{type(exc).__name__}: {exc}"
            cells[point.index] = {"run_id": point.run_id, "status": "failed", "action": "failed"}
        bar.update(1)
        bar.set_postfix_str(f"{cells[point.index]['action']} {point.run_id}")
    return cells, failures


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
    from distributed import Client
    from tqdm.auto import tqdm

    from workbench.train import progress_enabled

    if scheduler is not None and not isinstance(scheduler, (str, Client)):
        raise TypeError(f"scheduler must be None, a scheduler address like 'tcp://host:8786' or a "
                        f"distributed.Client, got {type(scheduler).__name__}")
    spec = get_task(task)
    name = task if isinstance(task, str) else task_name(spec)
    base = dict(base or {})
    axes, points = plan(spec, grid, base)
    store = as_store(data)
    sweep_id = sweep_id_for(name, axes, base)
    # axes as [name, values] pairs: JSON objects are written with sorted keys, the axis order matters
    record = {"sweep_id": sweep_id, "task": name, "axes": [[a, v] for a, v in axes.items()], "base": base,
              "points": [{"index": list(p.index), "params": p.params, "run_id": p.run_id} for p in points]}
    client, close = _connect(scheduler, n_workers)  # first: an unreachable scheduler leaves no record behind
    try:
        write_record(store, sweep_id, **record, status="running")
        with tqdm(total=len(points), disable=not progress_enabled(progress), desc=f"sweep {name}", unit="run",
                  dynamic_ncols=True) as bar:
            cells, failures = _gather(client, spec, points, str(store.root), bar)
    except BaseException:
        write_record(store, sweep_id, status="interrupted")
        raise
    finally:
        close()
    write_record(store, sweep_id, status="failed" if failures else "done", failures=failures)
    if failures:
        warnings.warn(f"{len(failures)} of {len(points)} grid points failed: {failures}", stacklevel=2)
    return to_dataset(axes, cells, record_attrs({**record, "status": "failed" if failures else "done"}))
