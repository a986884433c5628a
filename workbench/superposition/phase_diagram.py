"""The phase diagram of Toy Models of Superposition: train a grid of toy models, classify each cell.

References
----------
.. [1] Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread, section
   "Phase Change". https://transformer-circuits.pub/2022/toy_model/index.html
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from workbench.superposition.measures import PHASES, classify_phase
from workbench.superposition.toy import ToyModels
from workbench.superposition.training import evaluate, train_toys
from workbench.validation import as_tensor


def phase_diagram(n_features: int, n_hidden: int, densities: Sequence[float],
                  importance_ratios: Sequence[float], *, n_inits: int = 3, steps: int = 1000,
                  seed: int = 0, batch_size: int = 64, lr: float = 1e-2,
                  eval_samples: int = 4096, progress: bool = False, device: str = "cpu") -> xr.Dataset:
    """Train the paper's phase-change toy models and classify each (density, importance) cell.

    Feature importances are 1 except the last feature's (feature 2 for n=2), which is
    ``importance_ratio``; every feature has probability ``density`` = 1 − S of being non-zero. Each
    cell trains ``n_inits`` random inits (all cells × inits in one batch) and keeps the one with
    the lowest loss on fresh samples, as the paper does ([1]_, section "Phase Change").

    Parameters
    ----------
    n_features, n_hidden : int
        n and m (the paper shows n=2, m=1 and n=3, m=2).
    densities : sequence of float in (0, 1]
    importance_ratios : sequence of positive float
    n_inits, steps, seed, batch_size, lr
        Training settings (Adam, constant ``lr``). Batches are drawn conditioned on x ≠ 0 with the
        exact x = 0 term added (:meth:`ToyModels.generate_batch`), so 64 samples per step suffice
        even at density 0.01; the defaults agree with the exact-loss reference on clear cells.
    eval_samples : int
        Fresh samples used to pick the best init per cell.

    Returns
    -------
    xarray.Dataset
        Dims (density, importance_ratio[, hidden, feature]): ``phase`` (str, one of
        :data:`PHASES`), ``W`` (…, hidden, feature), ``b`` and ``feature_norm`` (…, feature),
        ``loss`` (best init's evaluation loss).
    """
    dens = as_tensor(densities, "densities", ndim=1, dtype=torch.float64).numpy()
    ratios = as_tensor(importance_ratios, "importance_ratios", ndim=1, dtype=torch.float64).numpy()
    if np.any((dens <= 0) | (dens > 1)):
        raise ValueError(f"densities must lie in (0, 1], got {dens.tolist()}")
    if np.any(ratios <= 0):
        raise ValueError(f"importance_ratios must be positive, got {ratios.tolist()}")
    if not isinstance(n_inits, (int, np.integer)) or n_inits < 1:
        raise ValueError(f"n_inits must be a positive int, got {n_inits!r}")
    nd, nr, F = len(dens), len(ratios), int(n_features)
    # instance order: (density, ratio, init)
    prob = np.repeat(dens, nr * n_inits)
    imp = np.ones((nd, nr, n_inits, F))
    imp[..., -1] = ratios[None, :, None]
    model = ToyModels(nd * nr * n_inits, F, n_hidden, feature_probability=torch.tensor(prob),
                      importance=torch.tensor(imp.reshape(-1, F)), seed=seed).to(device)
    train_toys(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed + 1, progress=progress)
    loss = evaluate(model, n_samples=eval_samples, seed=seed + 2).reshape(nd, nr, n_inits)
    best = loss.argmin(-1)                                               # (D, R)
    idx = (np.arange(nd)[:, None] * nr + np.arange(nr)[None, :]) * n_inits + best
    W = model.W.detach().cpu().numpy()[idx.ravel()]                      # (D*R, H, F)
    b = model.b.detach().cpu().numpy()[idx.ravel()]
    phase = classify_phase(W).values.reshape(nd, nr)
    norms = np.linalg.norm(W, axis=1).reshape(nd, nr, F)
    return xr.Dataset(
        {"phase": (("density", "importance_ratio"), phase),
         "W": (("density", "importance_ratio", "hidden", "feature"), W.reshape(nd, nr, n_hidden, F)),
         "b": (("density", "importance_ratio", "feature"), b.reshape(nd, nr, F)),
         "feature_norm": (("density", "importance_ratio", "feature"), norms),
         "loss": (("density", "importance_ratio"), np.take_along_axis(loss, best[..., None], -1)[..., 0])},
        coords={"density": dens, "importance_ratio": ratios, "hidden": np.arange(n_hidden),
                "feature": np.arange(F)},
        attrs={"n_features": F, "n_hidden": int(n_hidden), "n_inits": int(n_inits), "steps": int(steps),
               "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
               "phases": ",".join(PHASES), "reference": "Elhage et al. 2022, section Phase Change"},
    )
