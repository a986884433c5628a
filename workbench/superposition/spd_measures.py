"""Measures of an SPD decomposition (the Dataset of :func:`workbench.superposition.spd.spd`).

Pure functions of that Dataset, returning xarray: the rank-one subcomponents per layer
(:func:`components`), causal importances on one-hot inputs (:func:`onehot_importances`), alive
subcomponents (:func:`alive_components`), MMCS and ML2R against the target's columns
(:func:`column_match`), the identity-CI error (:func:`identity_ci_error`) and a one-line
:func:`summary` per instance. Equations refer to [1]_.

References
----------
.. [1] Bushnaq, L., Braun, D., Sharkey, L. et al. (2025). Stochastic Parameter Decomposition.
   arXiv:2506.20790. Reference code: github.com/goodfire-ai/spd, branch ``spd-paper``.
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from scipy.optimize import linear_sum_assignment

from workbench.superposition.spd_model import from_dataset

ONEHOT_MAGNITUDE = 0.75   # the reference code's IdentityCIError input value
ALIVE_THRESHOLD = 0.1     # a subcomponent is alive where its causal importance exceeds this

__all__ = ["alive_components", "column_match", "components", "identity_ci_error", "onehot_importances", "summary"]


def _check(ds: xr.Dataset) -> None:
    if not isinstance(ds, xr.Dataset) or "U" not in ds or "V" not in ds:
        raise ValueError("ds must be the Dataset returned by workbench.superposition.spd (vars U, V)")


def components(ds: xr.Dataset) -> xr.Dataset:
    """Rank-one subcomponent matrices U_{:,c} V_{c,:} ([1]_, eq. 1) of every layer.

    Returns ``component_weight`` (instance, layer, component, out, in) (NaN outside a layer's
    d_out × d_in) and ``norm`` (instance, layer, component) = ‖U_{:,c}‖ ‖V_{c,:}‖, its Frobenius norm.
    """
    _check(ds)
    U, V = ds["U"], ds["V"]
    weight = U * V                                   # outer product over (out, in) by broadcasting
    norm = np.sqrt((U ** 2).sum("out", skipna=True) * (V ** 2).sum("in", skipna=True))
    return xr.Dataset({"component_weight": weight.transpose("instance", "layer", "component", "out", "in"),
                       "norm": norm}, attrs={"reference": ds.attrs.get("reference", "")})


def column_match(ds: xr.Dataset) -> xr.Dataset:
    """MMCS and ML2R of the ``W_in`` subcomponents against the target's columns W_{:,j} ([1]_, eqs. 8-9).

    For feature j, subcomponent c's column is U_{:,c} V_{c,j}; ``cosine`` (instance, feature) is its
    best cosine similarity with W_{:,j} over c, ``l2_ratio`` ‖U_{:,mcs(j)} V_{mcs(j),j}‖ / ‖W_{:,j}‖
    for that best c (``best_component``); ``mmcs`` and ``ml2r`` (instance) their means over features.
    """
    _check(ds)
    H, F = ds.sizes["hidden"], ds.sizes["feature"]
    U = ds["U"].sel(layer="W_in").isel(out=slice(0, H)).transpose("instance", "out", "component").values
    V = ds["V"].sel(layer="W_in").isel(**{"in": slice(0, F)}).transpose("instance", "component", "in").values
    W = ds["W"].transpose("instance", "hidden", "feature").values
    cols = U[:, :, :, None] * V[:, None, :, :]                          # (I, H, C, F): U_{:,c} V_{c,j}
    norms = np.linalg.norm(cols, axis=1)                                 # (I, C, F)
    w_norm = np.linalg.norm(W, axis=1)                                   # (I, F)
    cos = np.einsum("ihcf,ihf->icf", cols, W) / (norms * w_norm[:, None, :] + 1e-12)
    best = cos.argmax(1)                                                 # (I, F)
    take = lambda a: np.take_along_axis(a, best[:, None, :], 1)[:, 0]
    dims = ("instance", "feature")
    out = xr.Dataset({"cosine": (dims, take(cos)), "l2_ratio": (dims, take(norms) / w_norm),
                      "best_component": (dims, best)},
                     coords={"instance": ds["instance"].values, "feature": ds["feature"].values})
    out["mmcs"], out["ml2r"] = out["cosine"].mean("feature"), out["l2_ratio"].mean("feature")
    out.attrs["reference"] = "Bushnaq et al. 2025 (SPD), MMCS and ML2R; Sharkey et al. 2022 (MMCS)"
    return out


@torch.no_grad()
def onehot_importances(ds: xr.Dataset, magnitude: float = ONEHOT_MAGNITUDE) -> xr.DataArray:
    """Causal importances g^l_c (lower-leaky, as in the masks) on the inputs x = magnitude·e_j:
    ``importance`` (instance, layer, feature, component) — the matrices of [1]_'s CI plots."""
    _check(ds)
    model = from_dataset(ds)
    I, F = model.W.shape[0], model.W.shape[2]
    x = (magnitude * torch.eye(F)).expand(I, F, F).contiguous()
    g, _ = model.causal_importances(x)                                   # (I, L, F, C)
    return xr.DataArray(g.numpy(), dims=("instance", "layer", "feature", "component"),
                        coords={"instance": ds["instance"].values, "layer": ds["layer"].values,
                                "feature": ds["feature"].values, "component": ds["component"].values},
                        name="importance", attrs={"magnitude": float(magnitude)})


@torch.no_grad()
def alive_components(ds: xr.Dataset, *, n_samples: int = 4096, threshold: float = ALIVE_THRESHOLD,
                     seed: int = 0) -> xr.DataArray:
    """Subcomponents per layer whose causal importance exceeds ``threshold`` on some of
    ``n_samples`` inputs from the target's data distribution (the reference code's ``n_alive``):
    (instance, layer), integer counts."""
    from workbench.superposition.spd import sample_batch

    _check(ds)
    model = from_dataset(ds)
    I, F = model.W.shape[0], model.W.shape[2]
    p = float(ds.attrs.get("feature_probability", 0.05))
    x = sample_batch(I, n_samples, F, p, torch.Generator().manual_seed(int(seed)))
    g, _ = model.causal_importances(x)                                   # (I, L, B, C)
    alive = (g > threshold).any(2).sum(-1)
    return xr.DataArray(alive.numpy(), dims=("instance", "layer"), name="alive",
                        coords={"instance": ds["instance"].values, "layer": ds["layer"].values},
                        attrs={"threshold": threshold, "n_samples": n_samples})


def _identity_error(ci: np.ndarray, tolerance: float) -> int:
    """Entries of the (feature × component) CI matrix off a permutation by more than ``tolerance``
    after the best column assignment (Hungarian): off-diagonal > tol plus diagonal < 1 − tol."""
    rows, cols = linear_sum_assignment(-ci)
    diag = ci[rows, cols]
    off = (ci > tolerance).sum() - (diag > tolerance).sum()
    return int(off + (diag < 1 - tolerance).sum())


def _dense_error(ci: np.ndarray, k: int, tolerance: float) -> int:
    """The k densest columns each need one entry ≥ 1 − tol; every other entry must be ≤ tol."""
    cols = ci[:, np.argsort(-ci.sum(0), kind="stable")]
    missing = np.clip(1 - (cols[:, :k] >= 1 - tolerance).sum(0), 0, None).sum()
    return int(missing + (cols[:, k:] > tolerance).sum())


def identity_ci_error(ds: xr.Dataset, *, tolerance: float = 0.1) -> xr.DataArray:
    """How far the one-hot importance matrices are from the ideal ones (the reference code's
    ``IdentityCIError``): on ``W_in`` and ``W_out`` a permutation (one subcomponent per feature),
    on ``identity`` H dense subcomponents. Counts of entries off by more than ``tolerance``,
    (instance, layer); 0 is a perfect recovery."""
    g = onehot_importances(ds)
    H = ds.sizes["hidden"]
    err = [[_dense_error(m, H, tolerance) if layer == "identity" else _identity_error(m, tolerance)
            for layer, m in zip(g["layer"].values, g.values[i])] for i in range(g.sizes["instance"])]
    return xr.DataArray(np.array(err), dims=("instance", "layer"), name="identity_ci_error",
                        coords={"instance": g["instance"].values, "layer": g["layer"].values},
                        attrs={"tolerance": tolerance, "magnitude": ONEHOT_MAGNITUDE})


def summary(ds: xr.Dataset) -> xr.Dataset:
    """Per instance: ``mmcs``, ``ml2r``, ``alive`` (W_in), ``alive_identity`` ("+ identity" only)
    and ``identity_ci_error`` summed over layers — the numbers of [1]_'s Table 1 and Figure 1."""
    match, alive = column_match(ds), alive_components(ds)
    out = xr.Dataset({"mmcs": match["mmcs"], "ml2r": match["ml2r"], "alive": alive.sel(layer="W_in", drop=True),
                      "identity_ci_error": identity_ci_error(ds).sum("layer")})
    if "identity" in ds["layer"].values:
        out["alive_identity"] = alive.sel(layer="identity", drop=True)
    return out
