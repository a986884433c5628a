"""Normalised margin and irrep usage: what margin maximisation predicts for trained networks.

Morwani et al. (2024) show that among one-hidden-layer networks on ``Z_p`` / ``S_n`` (a homogeneous
model, trained to zero loss with vanishing regularisation, converges in direction to a max-margin
solution — Lyu & Li 2020), the max-margin ones use **one frequency (irrep) per neuron** and **every
frequency (non-trivial irrep)** somewhere. The two checks on a trained model:

- :func:`normalized_margin` — ``γ = min_n (f_{y_n}(x_n) − max_{c≠y_n} f_c(x_n)) / ‖θ‖₂^ν`` over the
  given pairs, for the ``ν``-homogeneous Li² model (``ν = 3`` for ``σ = x²``: ``V (W x)²``; ``ν = 2``
  for ReLU);
- :func:`irrep_usage` — per non-trivial real irrep class, the energy share of the selective
  (single-irrep) neurons that sit on it; ``used`` counts the classes holding at least ``min_share``.

References
----------
.. [1] Morwani, Edelman, Oncescu, Zhao, Kakade (2024). Feature emergence via margin maximization:
   case studies in algebraic tasks. ICLR. arXiv:2311.07568.
.. [2] Lyu, Li (2020). Gradient descent maximizes the margin of homogeneous neural networks. ICLR.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from workbench.grokking.groups_measures import irrep_concentration
from workbench.grokking.irreps import irrep_basis
from workbench.grokking.li2 import Li2MLP
from workbench.tasks.groups import FiniteGroup
from workbench.validation import as_tensor, check_range

PAPER = "Morwani et al. 2024, arXiv:2311.07568; Lyu & Li 2020"
HOMOGENEITY = {"sqr": 3, "relu": 2}


@torch.no_grad()
def normalized_margin(model: Li2MLP, x: Any, y: Any) -> xr.Dataset:
    """Normalised margin ``γ`` of the Li² model on pairs ``x`` with labels ``y`` (module docstring).

    Returns
    -------
    xr.Dataset: ``normalized_margin`` (``γ``), ``margin`` (the raw minimum), ``param_norm``
    (``‖θ‖₂``), ``homogeneity`` (``ν``), ``margin_fraction`` (share of pairs with positive margin).
    """
    if not isinstance(model, Li2MLP):
        raise TypeError(f"the normalised margin needs the homogeneous Li2MLP, got {type(model).__name__}")
    xt = as_tensor(x, "x", ndim=2, dtype=torch.long)
    yt = as_tensor(y, "y", ndim=1, dtype=torch.long)
    out = model(xt).double()
    true = out.gather(1, yt[:, None])[:, 0]
    other = out.scatter(1, yt[:, None], -torch.inf).max(1).values
    m = true - other
    nu = HOMOGENEITY[model.activation]
    norm = float(torch.sqrt(sum(q.double().pow(2).sum() for q in model.parameters())))
    return xr.Dataset({"normalized_margin": float(m.min()) / norm**nu, "margin": float(m.min()),
                       "param_norm": norm, "homogeneity": nu, "margin_fraction": float((m > 0).double().mean())},
                      attrs={"reference": PAPER})


def irrep_usage(model: torch.nn.Module, group: FiniteGroup | str, *, selectivity: float = 10.0,
                min_share: float = 0.01) -> xr.Dataset:
    """Which non-trivial irrep classes the selective neurons use, and how single-irrep the neurons are.

    Returns
    -------
    xr.Dataset: ``share`` over ``irrep`` (energy share of the selective neurons on each class),
    ``used`` (classes with ``share ≥ min_share``), ``n_classes`` (non-trivial classes),
    ``selective_share`` (energy share of neurons with selectivity ``≥ selectivity``) and
    ``weighted_concentration`` (energy-weighted mean of :func:`irrep_concentration`).
    """
    check_range(selectivity, "selectivity", 1.0)
    c = irrep_concentration(model, group)
    classes = list(dict.fromkeys(irrep_basis(group).irrep.values.tolist()))[1:]
    e, on = c.energy.values, c.selectivity.values >= selectivity
    share = np.array([e[on & (c.best_irrep.values == k)].sum() for k in classes]) / max(e[on].sum(), 1e-300)
    return xr.Dataset({"share": ("irrep", share), "used": int((share >= min_share).sum()),
                       "n_classes": len(classes), "selective_share": float(e[on].sum() / e.sum()),
                       "weighted_concentration": float((c.concentration.values * e).sum() / e.sum())},
                      coords={"irrep": classes}, attrs={"reference": PAPER})
