"""The Li² reference training loop: full batch, centred MSE or cross-entropy, optional ridge top layer.

Tian (2025)'s experiments train :class:`~workbench.grokking.li2.Li2MLP` with

- the **centred MSE** ``L = mean_n ‖(o_n − mean_c o_n) − (e_{y_n} − 1/M)‖²`` (``loss="mse"``; the
  reference's ``compute_loss``) or cross-entropy (``loss="ce"``);
- Adam with coupled L2 weight decay (``optimizer="adam"``), AdamW, or Muon on ``W`` with AdamW on
  ``V`` (the reference pairs Muon with Adam; decoupled decay keeps ``wd`` meaning the same for both);
- with MSE, optionally the **ridge top layer** (``ridge=η``, the reference's ``set_weight_reg``):
  before every step ``V ← Ỹᵀ F (Fᵀ F + η I)⁻¹`` for the current hidden features ``F = σ(X W)``, so
  the lazy stage is solved exactly and only ``W`` learns (Li² Sec. 3: ``V`` at its ridge optimum).

:func:`train_li2` runs it without a run store (a fast loop for sweeps such as the critical sample
size) and returns the model and a Dataset over ``step`` with the losses, accuracies and the
back-propagated gradient structure (:func:`workbench.grokking.li2_stages.gradient_structure`).
Runs that should be recorded use ``workbench train groups`` (cross-entropy through ``train.fit``).

References
----------
.. [1] Tian (2025). Provable scaling laws of feature emergence from learning dynamics of grokking.
   Code: github.com/yuandong-tian/understanding, ``ssl/real-dataset/cogo/modular_addition_simple2.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from workbench.grokking.li2 import ACTIVATIONS, PAPER, Li2MLP, li2_loss
from workbench.grokking.li2_stages import gradient_structure
from workbench.optim.muon import Muon
from workbench.tasks.groups import GroupTask
from workbench.validation import check_range

LOSSES = ("mse", "ce")
OPTIMIZERS = ("adam", "adamw", "muon")


@dataclass
class Li2Config:
    """Hyperparameters of a Li² run (defaults: the reference's Fig. 3 command, ``M=71``)."""

    group: str = "Z71"
    word: str = "ab"
    frac: float = 0.9            # train fraction (reference: test_size = 0.1)
    hidden: int = 512
    activation: str = "sqr"
    loss: str = "mse"            # mse (centred) | ce
    optimizer: str = "adam"      # adam (coupled L2) | adamw | muon (W; AdamW on V)
    lr: float = 2e-3
    wd: float = 5e-5
    ridge: float | None = 1e-3   # MSE only: V at its ridge solution before every step; None = V learns
    steps: int = 10_000
    seed: int = 0
    eval_every: int = 50

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.ridge is not None and self.loss != "mse":
            raise ValueError("ridge (the closed-form top layer) needs loss='mse'")
        check_range(self.lr, "lr", 0.0, low_open=True)
        check_range(self.wd, "wd", 0.0)
        for name in ("steps", "eval_every", "hidden"):
            check_range(getattr(self, name), name, 1)

    def task(self) -> GroupTask:
        return GroupTask(group=self.group, word=self.word, frac=self.frac, seed=self.seed)


@torch.no_grad()
def ridge_top_layer(model: Li2MLP, x: torch.Tensor, y: torch.Tensor, ridge: float) -> None:
    """Set ``V ← Ỹᵀ F (Fᵀ F + η I)⁻¹``, the ridge fit of the centred one-hot labels on ``F = σ(X W)``."""
    Fh = ACTIVATIONS[model.activation](model.hidden_pre(x)).double()
    Yc = F.one_hot(y, model.p).double() - 1.0 / model.p
    A = Fh.T @ Fh + ridge * torch.eye(Fh.shape[1], dtype=Fh.dtype)
    model.V.weight.copy_(torch.linalg.solve(A, Fh.T @ Yc).T.to(model.V.weight.dtype))


def _optimizers(model: Li2MLP, config: Li2Config) -> list[torch.optim.Optimizer]:
    if config.optimizer == "adamw":
        return [torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.wd)]
    if config.optimizer == "adam":
        return [torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.wd)]
    return [torch.optim.AdamW(model.V.parameters(), lr=config.lr, weight_decay=config.wd),
            Muon(model.W.parameters(), lr=config.lr, weight_decay=config.wd)]


def train_li2(config: Li2Config | dict, *, gradients: bool = True) -> tuple[Li2MLP, xr.Dataset]:
    """Train the Li² model on ``config``'s group task; full batch, ``config.steps`` updates.

    Parameters
    ----------
    config : a :class:`Li2Config` or a dict of its fields.
    gradients : also record the back-propagated gradient structure every ``eval_every`` steps.

    Returns
    -------
    The trained model and an ``xr.Dataset`` over ``step``: ``train_loss, test_loss, train_acc,
    test_acc``, ``w_change`` (``‖W − W₀‖/‖W₀‖``) and with ``gradients`` the variables of
    :func:`~workbench.grokking.li2_stages.gradient_structure`; attrs hold the config.
    """
    config = Li2Config(**config) if isinstance(config, dict) else config
    task = config.task()
    model = Li2MLP(task.p, config.hidden, config.activation, seed=config.seed)
    opts = _optimizers(model, config)
    W0 = model.W.weight.detach().clone()
    x, y, tx, ty = task.train_x, task.train_y, task.test_x, task.test_y
    rows: list[dict] = []
    for step in range(config.steps + 1):
        if config.ridge is not None:
            ridge_top_layer(model, x, y, config.ridge)
        out = model(x)
        loss = li2_loss(out, y, config.loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"Li² training diverged at step {step} (loss {loss.item()})")
        if step % config.eval_every == 0 or step == config.steps:
            with torch.no_grad():
                tout = model(tx)
                row = {"step": step, "train_loss": loss.item(), "train_acc": (out.argmax(1) == y).double().mean().item(),
                       "test_loss": li2_loss(tout, ty, config.loss).item(),
                       "test_acc": (tout.argmax(1) == ty).double().mean().item(),
                       "w_change": float((model.W.weight - W0).norm() / W0.norm())}
            if gradients:
                row |= {k: float(v) for k, v in gradient_structure(model, x, y, config.loss).items()}
            rows.append(row)
        if step == config.steps:
            break
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in opts:
            opt.step()
    steps = np.array([r.pop("step") for r in rows])
    ds = xr.Dataset({k: ("step", np.array([r[k] for r in rows])) for k in rows[0]}, coords={"step": steps})
    return model, ds.assign_attrs(reference=PAPER, **{k: str(v) if v is None else v for k, v in asdict(config).items()})


def steps_to(ds: xr.Dataset, var: str = "test_acc", threshold: float = 0.95) -> int | None:
    """First step at which ``ds[var] ≥ threshold`` (``None`` if never)."""
    hit = np.flatnonzero(ds[var].values >= threshold)
    return int(ds.step.values[hit[0]]) if len(hit) else None
