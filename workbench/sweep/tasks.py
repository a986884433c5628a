"""Sweep tasks: how one grid point is trained and summarised, and the registry of task names.

A :class:`SweepTask` names a module, its config dataclass and its train function; :data:`TASKS`
maps the CLI's task names to them. :func:`accuracy_summary` is the default per-run summary: the
steps to 95% train and test accuracy, the two axes of the grokking phase diagram.

References
----------
Power, A. et al. (2022). Grokking: Generalization beyond overfitting on small algorithmic datasets.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

THRESHOLD = 0.95
ACCURACY_VARS = ("steps_to_train_95", "steps_to_test_95", "final_train_acc", "final_test_acc",
                 "final_train_loss", "final_test_loss", "final_step")


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
    "groups": SweepTask("workbench.grokking.groups_run", "GroupsConfig", "train_groups"),
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



def task_name(spec: SweepTask) -> str:
    """The registered name of ``spec``, or ``module.train`` for an unregistered task."""
    for name, registered in TASKS.items():
        if registered == spec:
            return name
    return f"{spec.module}.{spec.train}"
