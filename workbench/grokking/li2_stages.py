"""The back-propagated gradient ``G_F`` of the Li² model and its three stages (Tian 2025).

For hidden features ``F = σ(X W)`` (``N × K``) and top layer ``V``, ``G_F = ∂L/∂F`` is what reaches
the hidden layer; ``W`` moves by ``ΔW ∝ −Xᵀ(σ'(XW) ⊙ G_F)``. Li² ([1], Sec. 3-5):

1. **lazy** — ``V`` fits the labels on the random features; ``W`` barely moves;
2. **independent** — with ``V`` at its (weight-decayed) ridge fit, ``−G_F ∝ Ỹ Ỹᵀ F``: each column
   (neuron) is the gradient of its own energy ``E(w) = ½‖Ỹᵀσ(Xw)‖²``
   (:func:`workbench.grokking.li2.li2_energy`), with no term from the other neurons;
3. **interactive** — once features have formed, ``F V`` explains the labels, ``G_F`` is what the
   *set* of features still misses and couples the neurons (repelling duplicates, filling irreps).

:func:`gradient_structure` measures, at one step: ``gf_norm = ‖G_F‖``; ``gf_alignment =
cos(−G_F, Ỹ Ỹᵀ F)`` over all entries (1 in the independent stage); ``feature_coupling``, the mean
``|off-diagonal|`` over the mean diagonal of ``F̃ᵀF̃`` (centred features; the reference code's
kernel statistic). :func:`detect_li2_stages` reads the stages off a run's series:

- lazy ends at ``t1``, the first step at which ``gf_alignment`` reaches ``rise`` (0.8) of its
  maximum over the run — the top layer has fitted the labels and ``G_F`` has taken the
  independent-stage form;
- the interactive stage starts at ``t2 ≥ t1``, the first step at which ``feature_coupling`` has
  fallen by ``drop`` (20 %) from its value at ``t1`` — the features repel each other (Li² Sec. 5:
  the interaction term pushes neurons apart, onto different irreps), which the independent stage
  cannot do; runs below the critical sample size never get there.

References
----------
.. [1] Tian (2025). Provable scaling laws of feature emergence from learning dynamics of grokking.
   Code: github.com/yuandong-tian/understanding, ``ssl/real-dataset/cogo/``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from workbench.grokking.groups_measures import group_probe
from workbench.grokking.li2 import ACTIVATIONS, PAPER, Li2MLP, li2_loss
from workbench.validation import check_range

STAGES = ("lazy", "independent", "interactive")


def gradient_structure(model: Li2MLP, x: torch.Tensor, y: torch.Tensor, loss: str = "mse") -> xr.Dataset:
    """``gf_norm``, ``gf_alignment`` and ``feature_coupling`` of ``model`` on ``(x, y)`` (module docstring).

    ``loss`` is ``"mse"`` (centred, :func:`~workbench.grokking.li2.li2_loss`) or ``"ce"``.
    """
    with torch.no_grad():
        Fh = ACTIVATIONS[model.activation](model.hidden_pre(x)).double()
    with torch.enable_grad():  # probes run under no_grad
        Fh.requires_grad_(True)
        out = Fh @ model.V.weight.detach().double().T
        (G,) = torch.autograd.grad(li2_loss(out, y, loss), Fh)
    Fh = Fh.detach()
    Yc = F.one_hot(y, model.p).double() - 1.0 / model.p
    P = Yc @ (Yc.T @ Fh)
    align = float((-G * P).sum() / (G.norm() * P.norm()).clamp_min(1e-300))
    Fc = Fh - Fh.mean(0)
    K = Fc.T @ Fc
    diag = K.diagonal().abs().mean()
    off = (K.abs().sum() - K.diagonal().abs().sum()) / max(K.shape[0] * (K.shape[0] - 1), 1)
    return xr.Dataset({"gf_norm": float(G.norm()), "gf_alignment": align,
                       "feature_coupling": float(off / diag.clamp_min(1e-300))}, attrs={"reference": PAPER})


def li2_probe(model: Li2MLP, task: Any) -> xr.Dataset:
    """:func:`~workbench.grokking.groups_measures.group_probe` plus :func:`gradient_structure` on the
    training pairs (cross-entropy, the loss of ``workbench train groups``): what a Li² groups run records."""
    return group_probe(model, task).merge(gradient_structure(model, task.train_x, task.train_y, "ce"))


def detect_li2_stages(ds: xr.Dataset, *, rise: float = 0.8, drop: float = 0.2) -> dict:
    """Stage boundaries of a Li² run from ``gf_alignment`` and ``feature_coupling`` (module docstring).

    Parameters
    ----------
    ds : Dataset over ``step`` with ``gf_alignment`` and ``feature_coupling``
        (:func:`~workbench.grokking.li2_train.train_li2`).
    rise : share of the maximal alignment that ends the lazy stage.
    drop : relative fall of the feature coupling that starts the interactive stage.

    Returns
    -------
    dict, JSON-serialisable: ``{"boundaries": {"t1", "t2"}, "stages": {name: [start, end|None]},
    "rule": str}``; boundaries not reached are ``None``.
    """
    for var in ("gf_alignment", "feature_coupling"):
        if var not in ds:
            raise ValueError(f"ds must contain {var!r} over 'step'; has {sorted(ds.data_vars)}")
    check_range(rise, "rise", 0.0, 1.0, low_open=True)
    check_range(drop, "drop", 0.0, 1.0, low_open=True, high_open=True)
    steps = ds.step.values.astype(int)
    align, coupling = ds.gf_alignment.values, ds.feature_coupling.values
    t1 = t2 = None
    if np.nanmax(align) > 0:
        i1 = int(np.flatnonzero(align >= rise * np.nanmax(align))[0])
        t1 = int(steps[i1])
        after = np.flatnonzero(coupling[i1:] <= (1 - drop) * coupling[i1]) + i1
        t2 = int(steps[after[0]]) if len(after) else None
    start, end = int(steps[0]), int(steps[-1])
    return {"boundaries": {"t1": t1, "t2": t2},
            "stages": {"lazy": [start, t1], "independent": [t1, t2] if t1 is not None else None,
                       "interactive": [t2, end] if t2 is not None else None},
            "rule": f"t1: gf_alignment >= {rise:g} x max; t2: feature_coupling <= {1 - drop:g} x its value at t1 "
                    "(Tian 2025, Li² stages)"}
