"""Condition-number selection of the tensors to fine-tune (KappaTune).

KappaTune [1]_ fine-tunes only the weight tensors with the lowest condition number: a
well-conditioned matrix spreads its energy over many directions and encodes less specific
pre-trained structure, so changing it should disturb the pre-trained task least. The rule follows
PEFT's ``KappaTuneSelector`` [2]_: for every module of the selected types whose weight has no dim
above ``max_dim``,

.. math:: κ = σ_0 / (σ_{last} + 10^{-8})

on the float32 weight reshaped to ``(out, −1)`` (σ_0 ≥ … ≥ σ_last its singular values); modules are
sorted by κ ascending (ties keep model order), and the selection is the first ``num``, else the
first ``max(1, ⌊n · top_p⌋)``, else those with κ ≤ ``threshold``, else all.

References
----------
.. [1] Ludwig (2025). The condition number as a scale-invariant proxy for information encoding in
   neural units. arXiv:2506.16289; code github.com/oswaldoludwig/kappaTune
.. [2] Hugging Face PEFT, ``KappaTuneSelector.get_best_targets`` (selection by lowest κ for LoRA).
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from torch import nn

__all__ = ["kappa_select"]

EPS = 1e-8  # PEFT's guard against a zero smallest singular value


def kappa_select(model: nn.Module, top_p: float | None = None, num: int | None = None,
                 threshold: float | None = None, *, module_types: tuple[type[nn.Module], ...] = (nn.Linear,),
                 max_dim: int = 16384) -> xr.Dataset:
    """Condition number κ of each module's weight and the KappaTune selection (Ludwig [1]_, PEFT [2]_).

    Parameters
    ----------
    model : the model whose ``named_modules()`` are scored.
    top_p, num, threshold : the selection, in PEFT's order of precedence: ``num`` lowest-κ modules;
        else the lowest ``max(1, int(n · top_p))``; else every module with κ ≤ ``threshold``;
        all of them when none is given.
    module_types : module classes scored (PEFT: ``nn.Linear``; add ``nn.Embedding``, ``nn.Conv2d``, …).
    max_dim : modules whose weight has a dim above this are skipped (PEFT's ``max_dim_size_to_analyze``).

    Returns
    -------
    xr.Dataset (layer), layers sorted by κ ascending: ``kappa`` σ_0/(σ_last + 1e-8), ``selected``
    (bool), ``rank_order`` (0 = lowest κ), ``n_params`` (weight and bias of the module); attr
    ``rule``.
    """
    if sum(x is not None for x in (top_p, num, threshold)) > 1:
        raise ValueError("give at most one of top_p, num, threshold")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    if num is not None and (isinstance(num, bool) or not isinstance(num, int) or num < 0):
        raise ValueError(f"num must be an int >= 0, got {num!r}")
    rows = []
    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if not isinstance(module, module_types) or not isinstance(w, torch.Tensor) or w.ndim < 2:
            continue
        w = w.detach().float()
        if any(dim > max_dim for dim in w.shape):
            continue
        s = torch.linalg.svdvals(w.reshape(w.shape[0], -1))
        rows.append((name, (s[0] / (s[-1] + EPS)).item(), sum(p.numel() for p in module.parameters(recurse=False))))
    if not rows:
        raise ValueError(f"model has no {', '.join(t.__name__ for t in module_types)} module with a weight to score")
    rows.sort(key=lambda r: r[1])  # stable: ties keep model order, like PEFT's sorted()
    kappa = np.array([r[1] for r in rows])
    if num is not None:
        selected = np.arange(len(rows)) < min(num, len(rows))
    elif top_p is not None:
        selected = np.arange(len(rows)) < max(1, int(len(rows) * top_p))
    elif threshold is not None:
        selected = kappa <= threshold
    else:
        selected = np.ones(len(rows), dtype=bool)
    return xr.Dataset(
        {"kappa": ("layer", kappa), "selected": ("layer", selected),
         "rank_order": ("layer", np.arange(len(rows))), "n_params": ("layer", [r[2] for r in rows])},
        coords={"layer": [r[0] for r in rows]},
        attrs={"rule": f"kappa = s0/(s_last+{EPS}) of weight.view(out, -1); lowest first; "
                       f"top_p={top_p} num={num} threshold={threshold}",
               "reference": "Ludwig 2025 arXiv:2506.16289; PEFT KappaTuneSelector"})
