"""``fit_power_law``: the power-law tail fit of spectra as a Dataset, with a bootstrap interval.

The batched fit is :func:`workbench.spectrum.power_law.power_law_batch` (Clauset, Shalizi &
Newman 2009, SIAM Review 51, eqs. 3.1 and 3.9, weightwatcher 0.7.7's conventions); the interval
is :func:`workbench.spectrum.bootstrap.bootstrap_alpha` (xmin re-selected per replicate).
"""
from __future__ import annotations

import torch
import xarray as xr

from workbench.spectrum.bootstrap import bootstrap_alpha
from workbench.spectrum.power_law import EVALS_THRESH, power_law_batch
from workbench.validation import as_tensor

__all__ = ["fit_power_law"]


def fit_power_law(evals, *, thresh: float = EVALS_THRESH, bootstrap: int = 0, level: float = 0.95,
                  seed: int = 0) -> xr.Dataset:
    """Fit a power law ``p(x) ∝ x^(-alpha)`` to the tail of an eigenvalue spectrum.

    Parameters
    ----------
    evals : array-like, shape ``(eig,)`` or ``(layer, eig)``
        Eigenvalues (e.g. from :func:`workbench.spectrum.esd`); finite and non-negative.
        Values ``<= thresh`` are ignored, as in weightwatcher.
    thresh : float
        Eigenvalue floor below which values are not fitted (weightwatcher's ``EVALS_THRESH``).
    bootstrap : int
        Number B of bootstrap replicates; with B > 0, ``alpha_lo`` / ``alpha_hi`` bound a
        ``level`` percentile interval of alpha in which every replicate re-selects xmin
        (:func:`workbench.spectrum.bootstrap.bootstrap_alpha`).
    level, seed : confidence level and seed of the resampling.

    Returns
    -------
    xr.Dataset
        ``alpha`` (Clauset et al. 2009 eq. 3.1), ``xmin`` (argmin of the KS distance eq. 3.9 over
        every eigenvalue but the largest), ``ks_distance``, ``tail_size`` (eigenvalues >= xmin)
        and with ``bootstrap`` ``alpha_lo``, ``alpha_hi``; scalars for 1-D input, dim ``layer``
        for 2-D input.
    """
    t = as_tensor(evals, "evals", ndim=(1, 2), dtype=torch.float64)
    if bool((t < -1e-8 * t.abs().max()).any()):
        raise ValueError("evals must be non-negative (eigenvalues of W^T W)")
    one = t.ndim == 1
    rows = t[None] if one else t
    res = {k: v for k, v in power_law_batch(rows, thresh=thresh).items() if k != "n_fit"}
    if bootstrap:
        res["alpha_lo"], res["alpha_hi"] = bootstrap_alpha(list(rows), bootstrap, level=level,
                                                           seed=seed, thresh=thresh)
    dims = () if one else ("layer",)
    data = {k: (dims, (v[0] if one else v).cpu().numpy()) for k, v in res.items()}
    attrs = {"method": "continuous power-law MLE, xmin by min KS distance",
             "reference": "Clauset, Shalizi & Newman 2009, eqs. 3.1, 3.9"}
    if bootstrap:
        attrs.update(bootstrap=int(bootstrap), level=float(level),
                     interval="percentile bootstrap, xmin re-selected per replicate (Clauset 2009 Sec. 3.4)")
    return xr.Dataset(data, attrs=attrs)
