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

A sweep record (the store artifact ``sweep/<sweep_id>``, written atomically) lists the grid axes,
the base config and each point's run id, so dashboards find sweeps and :func:`load_sweep` rebuilds
the results from the store at any time, also while a sweep is still running.

Modules: :mod:`~workbench.sweep.tasks` (what a grid point trains), :mod:`~workbench.sweep.grid`
(planning, in the client), :mod:`~workbench.sweep.records` (records and results),
:mod:`~workbench.sweep.execute` (Dask).

References
----------
Power, A. et al. (2022). Grokking: Generalization beyond overfitting on small algorithmic datasets.
Liu, Z. et al. (2022). Omnigrok: Grokking beyond algorithmic data. ICLR 2023.
"""
from workbench.sweep.execute import run_point, sweep
from workbench.sweep.grid import (
    GridPoint,
    parse_grid,
    parse_overrides,
    plan,
    sweep_id_for,
    validate_grid,
)
from workbench.sweep.records import as_store, list_sweeps, load_sweep, read_record, write_record
from workbench.sweep.tasks import (
    ACCURACY_VARS,
    TASKS,
    THRESHOLD,
    SweepTask,
    accuracy_summary,
    available_tasks,
    get_task,
)

__all__ = [
    "ACCURACY_VARS", "TASKS", "THRESHOLD", "GridPoint", "SweepTask", "accuracy_summary", "as_store",
    "available_tasks", "get_task", "list_sweeps", "load_sweep", "parse_grid", "parse_overrides", "plan",
    "read_record", "run_point", "sweep", "sweep_id_for", "validate_grid", "write_record",
]
