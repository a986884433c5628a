"""Toy-model-of-superposition runs in the RunStore, so ``workbench sweep superposition`` can grid them.

One run = :func:`workbench.superposition.training.train_toy_grid` at one sparsity (a sweep cell) or several
(``workbench train superposition --sparsity 0,0.9,0.99``), with a few random inits each, all trained
in one batch; the weights go to metric group ``toy`` at ``step = steps`` and each sparsity's best
init's measures to the run summary. References: Elhage et al. (2022), Toy Models of Superposition.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

from workbench.store import Run, RunStore
from workbench.superposition.measures import dimensions_per_feature
from workbench.superposition.training import train_toy_grid
from workbench.validation import check_range


@dataclass
class ToyRunConfig:
    """One cell of a superposition sweep (defaults: the paper's n=5, m=2 demonstration)."""

    n_features: int = 5
    n_hidden: int = 2
    sparsity: float | list[float] = 0.9   # one S, or a list trained together in one batch
    importance_decay: float = 0.9
    n_inits: int = 4            # random inits trained together; the lowest-loss one is summarised
    steps: int = 5000
    batch_size: int = 1024
    lr: float = 1e-3
    seed: int = 0
    variant: str = "relu"       # relu | linear (the paper's baseline) | abs (computation in superposition)

    def __post_init__(self) -> None:
        check_range(self.n_features, "n_features", 1)
        check_range(self.n_hidden, "n_hidden", 1)
        if not self.sparsities:
            raise ValueError("sparsity needs at least one value")
        for value in self.sparsities:
            check_range(value, "sparsity", 0.0, 1.0, high_open=True)
        check_range(self.importance_decay, "importance_decay", 0.0, low_open=True)
        check_range(self.n_inits, "n_inits", 1)
        check_range(self.steps, "steps", 1)
        check_range(self.lr, "lr", 0.0, low_open=True)

    @property
    def sparsities(self) -> list[float]:
        return [float(v) for v in self.sparsity] if isinstance(self.sparsity, (list, tuple)) else [float(self.sparsity)]

    def to_run_config(self) -> dict:
        toy = asdict(self)
        if toy["variant"] == "relu":
            del toy["variant"]  # the default; keeps the ids of runs made before the field existed
        return {"kind": "superposition", "toy": toy}


def toy_summary(run: Run) -> dict[str, float]:
    """Best init's ``loss``, ``represented`` features (||W_i|| ≥ 0.5) and ``dims_per_feature``
    m/||W||_F² (Elhage et al. 2022, "Dimensions per feature vs sparsity"); NaN before training ends."""
    s = run.state.get("summary", {})
    return {k: float(s.get(k, math.nan)) for k in ("loss", "represented", "dims_per_feature")}


def train_toy_run(config: ToyRunConfig, store: RunStore, *, progress: bool = False) -> Run:
    """Train the toy models of ``config`` (one batch, seconds) into their run; a rerun retrains them.

    The summary holds, per sparsity, the best init's ``loss``, ``represented`` features
    (||W_i|| ≥ 0.5) and ``dims_per_feature``: scalars for one sparsity, lists for several.
    """
    run = store.create(config.to_run_config())
    run.update_state(status="running")
    ds = train_toy_grid(config.n_features, config.n_hidden, config.sparsities, config.importance_decay,
                        n_instances_per_cell=config.n_inits, steps=config.steps, batch_size=config.batch_size,
                        lr=config.lr, seed=config.seed, variant=config.variant, progress=progress)
    dims = dimensions_per_feature(ds["W"]).values
    cells = []
    for s in config.sparsities:
        members = np.flatnonzero(np.isclose(ds["sparsity"].values, s))
        best = int(members[np.argmin(ds["loss"].values[members])])
        norms = np.sqrt((ds["W"].isel(instance=best).values ** 2).sum(0))
        cells.append({"loss": float(ds["loss"].values[best]), "represented": float((norms >= 0.5).sum()),
                      "dims_per_feature": float(dims[best])})
    summary = cells[0] if len(cells) == 1 else {k: [c[k] for c in cells] for k in cells[0]}
    keep = ds[["W", "b", "loss"]].drop_vars([c for c in ds.coords if c not in ds.dims]).expand_dims(step=[config.steps])
    run.append(xr.Dataset({k: v.astype("float64") for k, v in keep.data_vars.items()}), group="toy")
    run.update_state(status="done", step=config.steps, summary=summary)
    return run
