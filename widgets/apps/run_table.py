"""The run browser's table: one row per run with its status, hyperparameters, sweep and metrics.

Hyperparameters come from each run's ``config.json`` (nested sections flattened by leaf name, so
``{"train": {"wd": 1.0}}`` gives column ``wd``); only :data:`HYPERPARAMETERS` that some run sets
become columns. :func:`lens_links` lists the dashboard pages that can show a run.
"""
from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from workbench.store import Run, RunStore
from workbench.sweep import list_sweeps

#: Config leaves shown as columns (in this order) when any run sets them.
HYPERPARAMETERS = ("p", "op", "frac", "optimizer", "lr", "wd", "steps", "batch_size", "seed", "d_model",
                   "d_embed", "d_hidden", "d_mlp", "n_features", "n_hidden", "importance_decay", "sparsity")
BASE_COLUMNS = ["run_id", "kind", "status", "step"]
METRIC_COLUMNS = ["train_acc", "test_acc", "train_loss", "test_loss"]


def _leaves(config: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield key, value


def hyperparameters(config: dict) -> dict[str, object]:
    """The :data:`HYPERPARAMETERS` a run's config sets (first occurrence of each leaf name); lists
    (e.g. several sparsities) are shown as text."""
    out: dict[str, object] = {}
    for key, value in _leaves(config):
        if key in HYPERPARAMETERS and key not in out and value is not None:
            out[key] = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return out


def sweep_of(store: RunStore) -> dict[str, str]:
    """Run id → the sweep it belongs to (from the sweep records)."""
    out: dict[str, str] = {}
    for sweep_id in list_sweeps(store)["sweep_id"]:
        for point in store.load_artifact("sweep", sweep_id).get("points", []):
            out.setdefault(point["run_id"], sweep_id)
    return out


def run_table(store: RunStore) -> pd.DataFrame:
    """One row per run, newest first: id, kind, status (:attr:`Run.status`), step, the
    hyperparameter columns, ``sweep``, the latest metrics and ``created``."""
    df = store.list()
    for col in BASE_COLUMNS + METRIC_COLUMNS + ["created"]:
        if col not in df.columns:
            df[col] = pd.NA
    if df.empty:
        return df[BASE_COLUMNS + METRIC_COLUMNS + ["created"]]
    hyper = pd.DataFrame([hyperparameters(store.open(rid).config) for rid in df["run_id"]], index=df.index)
    hyper = hyper[[c for c in HYPERPARAMETERS if c in hyper.columns and c not in df.columns]]
    sweeps = sweep_of(store)
    df = pd.concat([df, hyper], axis=1)
    extra = ["sweep"] if sweeps else []
    if sweeps:
        df["sweep"] = df["run_id"].map(sweeps).fillna("")
    known = set(BASE_COLUMNS + METRIC_COLUMNS + ["created"] + list(hyper.columns) + extra)
    df = df[BASE_COLUMNS + list(hyper.columns) + extra + METRIC_COLUMNS
            + [c for c in df.columns if c not in known] + ["created"]]
    for col in METRIC_COLUMNS:  # 4 significant digits: the table is for reading, the store keeps them all
        df[col] = pd.to_numeric(df[col], errors="coerce").map(lambda v: float(f"{v:.4g}"))
    return df.sort_values("created", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def lens_links(run: Run, sweep: str = "") -> dict[str, str]:
    """Page name → relative URL of every dashboard page that can show ``run``."""
    links = {}
    if "grokking" in run.groups():
        links["grokking"] = f"./grokking?run={run.id}"
    if run.config.get("kind") == "superposition":
        links["superposition"] = f"./superposition?run={run.id}"
    if run.checkpoint_steps():
        links["spectrum"] = f"./spectrum?run={run.id}"
    if run.has_trajectory():
        links["koopman"] = f"./koopman?run={run.id}"
    if sweep:
        links["sweep"] = f"./sweeps?sweep={sweep}"
    return links
