"""Distributed sweeps: a grid on a 2-process LocalCluster vs the same runs one after another.

Rows (``ratio = t_reference / t_candidate``; > 1 means the sweep is faster):

1. ``grid``: ``sweep("modular", 3×3 grid)`` on its own 2-process ``LocalCluster`` (cluster start-up
   included, as a user pays it) vs ``train_modular`` of the same nine configs sequentially in this
   process; in full mode also on a warm cluster (start-up excluded). On 2 idle cores expect the
   warm ratio to approach 2; fresh data roots each repeat so nothing is skipped.
2. ``overhead``: re-submitting a finished sweep of ``n`` tiny points to a warm cluster (every point
   is skipped: scheduling, run lock, state read and summary only) vs calling the same
   ``run_point`` in a loop in this process; ``per_task_overhead_ms`` is the Dask cost per point.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from benchmarks.harness import compare
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.store import RunStore
from workbench.sweep import TASKS, plan, run_point, sweep


def _grid_row(quick: bool, warm: bool = False) -> dict:
    n = 2 if quick else 3
    grid = {"wd": [0.1, 0.3, 1.0][:n], "frac": [0.3, 0.4, 0.5][:n]}
    base = {"p": 23, "d_embed": 32, "d_hidden": 64, "lr": 3e-3, "steps": 60 if quick else 400, "eval_every": 10,
                "checkpoint_every": 100, "trajectory_every": 0}
    _, points = plan("modular", grid, base)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    counter = iter(range(10**6))

    client = cluster = None
    if warm:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        client.run(lambda: __import__("workbench.grokking.modular_run") and None)  # import torch before timing

    def distributed() -> None:
        sweep("modular", grid, base=base, scheduler=client, data=tmp / f"d{next(counter)}", n_workers=2,
              progress=False)

    def sequential() -> None:
        store = RunStore(tmp / f"s{next(counter)}")
        for p in points:
            train_modular(ModularConfig(**p.params), store, progress=False)

    try:
        name = "sweep on a warm 2-process cluster" if warm else "sweep (new 2-process LocalCluster)"
        return compare("sweep", f"modular {n}x{n} grid, p=23, {base['steps']} steps, 2 workers",
                       (name, distributed), ("sequential train_modular", sequential),
                       warmup=1 if warm else 0, repeats=1 if quick else 2, n_runs=len(points),
                       notes="cluster start-up excluded" if warm else "cluster start-up included")
    finally:
        if client is not None:
            client.close()
            cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _overhead_row(quick: bool) -> dict:
    from distributed import Client, LocalCluster

    n = 8 if quick else 32
    grid = {"seed": list(range(n))}
    base = {"p": 23, "d_embed": 8, "d_hidden": 8, "steps": 1, "eval_every": 1, "checkpoint_every": 1, "trajectory_every": 0}
    _, points = plan("modular", grid, base)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_overhead_"))
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            sweep("modular", grid, base=base, scheduler=client, data=tmp, progress=False)  # train once

            def dask_skip() -> None:
                sweep("modular", grid, base=base, scheduler=client, data=tmp, progress=False)

            def local_skip() -> None:
                for p in points:
                    run_point(TASKS["modular"], p.params, str(tmp))

            row = compare("sweep", f"{n} finished points re-submitted (all skipped)",
                          ("sweep on a warm 2-process cluster", dask_skip), ("run_point loop in-process", local_skip),
                          warmup=1, repeats=3 if quick else 5)
        row["per_task_overhead_ms"] = 1e3 * (row["t_candidate_s"] - row["t_reference_s"] / 2) / n
        row["notes"] = "per_task_overhead_ms: (t_sweep - t_loop/2 workers) / n points"
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = True) -> list[dict]:
    rows = [_grid_row(quick)]
    if not quick:  # the parallel speed-up alone, without start-up (slow: full mode only)
        rows.append(_grid_row(quick, warm=True))
    return rows + [_overhead_row(quick)]


if __name__ == "__main__":  # pragma: no cover
    for r in run(quick=True):
        print(r)
