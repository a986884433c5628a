"""Superposition measures on toy-model weights: pure functions, no training.

All measures are pure functions of ``W`` with dims (instance, hidden, feature) — an
``xr.DataArray``, a (I, H, F) or a single (H, F) array — and return labelled xarray objects.
Column ``W_i`` (the i-th feature's direction in hidden space) is ``W[:, :, i]``.

References
----------
.. [1] Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
   https://transformer-circuits.pub/2022/toy_model/index.html
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from workbench.validation import as_tensor, check_range

PHASES = ("not_represented", "dedicated", "superposition")
# Fractional dimensionalities of uniform polytopes ([1]_, section "The Geometry of Superposition").
GEOMETRIES: dict[str, float] = {
    "dedicated": 1.0, "tetrahedron": 3 / 4, "triangle": 2 / 3, "antipodal": 1 / 2,
    "pentagon": 2 / 5, "square_antiprism": 3 / 8,
}

__all__ = [
    "GEOMETRIES",
    "PHASES",
    "analyze",
    "classify_geometry",
    "classify_phase",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_norms",
    "interference",
    "superposition",
]


def _weights(W: xr.DataArray | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, dict]:
    """(I, H, F) float64 tensor and the coords to label results with."""
    if isinstance(W, xr.DataArray):
        if set(W.dims) != {"instance", "hidden", "feature"} and set(W.dims) != {"hidden", "feature"}:
            raise ValueError(f"W must have dims (instance, hidden, feature), got {W.dims}")
        if "instance" not in W.dims:
            W = W.expand_dims(instance=[0])
        W = W.transpose("instance", "hidden", "feature")
        coords = {"instance": W["instance"].values, "feature": W["feature"].values}
        t = as_tensor(W.values, "W", ndim=3, dtype=torch.float64)
    else:
        t = as_tensor(W, "W", ndim=(2, 3), dtype=torch.float64)
        if t.ndim == 2:
            t = t[None]
        coords = {"instance": np.arange(t.shape[0]), "feature": np.arange(t.shape[2])}
    return t, coords


def _da(values: torch.Tensor, dims: tuple[str, ...], coords: dict, name: str, desc: str) -> xr.DataArray:
    return xr.DataArray(values.cpu().numpy(), dims=dims, coords={d: coords[d] for d in dims if d in coords},
                        name=name, attrs={"description": desc, "reference": "Elhage et al. 2022"})


def feature_norms(W) -> xr.DataArray:
    """||W_i||: how strongly feature i is represented. DataArray (instance, feature)."""
    t, c = _weights(W)
    return _da(t.norm(dim=1), ("instance", "feature"), c, "feature_norm", "||W_i||")


def _overlaps(t: torch.Tensor) -> torch.Tensor:
    """(Ŵ_i · W_j)² for all i, j: (I, F, F); rows of zero-norm features are 0."""
    norms = t.norm(dim=1, keepdim=True)                                   # (I, 1, F)
    w_hat = torch.where(norms > 0, t / norms.clamp_min(1e-300), torch.zeros_like(t))
    return torch.einsum("ihf,ihg->ifg", w_hat, t) ** 2


def superposition(W) -> xr.DataArray:
    """Σ_{j≠i} (Ŵ_i · W_j)²: how much other features interfere with feature i ([1]_, fig. "Superposition
    vs. Sparsity", the colour of each bar). DataArray (instance, feature)."""
    t, c = _weights(W)
    ov = _overlaps(t)
    return _da(ov.sum(-1) - torch.diagonal(ov, dim1=-2, dim2=-1), ("instance", "feature"), c,
               "superposition", "sum_{j!=i} (W_hat_i . W_j)^2")


def interference(W) -> xr.DataArray:
    """Gram matrix WᵀW (instance, feature, feature2): diagonal ||W_i||², off-diagonal W_i·W_j."""
    t, c = _weights(W)
    c = dict(c, feature2=c["feature"])
    return _da(torch.einsum("ihf,ihg->ifg", t, t), ("instance", "feature", "feature2"), c,
               "WtW", "W^T W")


def feature_dimensionality(W) -> xr.DataArray:
    """Feature dimensionality D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)² ([1]_, section "Feature
    Dimensionality"); the sum includes j = i. 1 for a dedicated dimension, 1/2 for an antipodal
    pair, 2/3 triangle, 2/5 pentagon, ...; 0 for a zero column. DataArray (instance, feature)."""
    t, c = _weights(W)
    sq = (t ** 2).sum(1)                                                  # (I, F)
    denom = _overlaps(t).sum(-1)
    d = torch.where(denom > 0, sq / denom.clamp_min(1e-300), torch.zeros_like(sq))
    return _da(d, ("instance", "feature"), c, "dimensionality", "D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2")


def dimensions_per_feature(W) -> xr.DataArray:
    """Dimensions per feature m / ||W||_F² ([1]_, fig. "Dimensions per feature vs sparsity");
    ||W||_F² approximates the number of represented features. DataArray (instance,)."""
    t, c = _weights(W)
    fro = (t ** 2).sum((1, 2))
    out = torch.where(fro > 0, t.shape[1] / fro.clamp_min(1e-300), torch.full_like(fro, float("inf")))
    return _da(out, ("instance",), c, "dims_per_feature", "m / ||W||_F^2")


def classify_geometry(W, *, norm_threshold: float = 0.5, tol: float = 0.05) -> xr.DataArray:
    """Label each feature with its geometry: ``not_represented`` (||W_i|| < ``norm_threshold``),
    else the uniform polytope (:data:`GEOMETRIES`) whose dimensionality is nearest D_i within
    ``tol``, else ``other``. DataArray of str (instance, feature)."""
    check_range(norm_threshold, "norm_threshold", 0.0)
    check_range(tol, "tol", 0.0, low_open=True)
    norms = feature_norms(W).values
    dim = feature_dimensionality(W)
    names = np.array(list(GEOMETRIES))
    fracs = np.array(list(GEOMETRIES.values()))
    dist = np.abs(dim.values[..., None] - fracs)
    labels = np.where(dist.min(-1) <= tol, names[dist.argmin(-1)], "other")
    labels = np.where(norms < norm_threshold, "not_represented", labels).astype(str)
    return xr.DataArray(labels, dims=dim.dims, coords=dim.coords, name="geometry")


def analyze(ds: xr.Dataset, *, norm_threshold: float = 0.5) -> xr.Dataset:
    """All measures for a toy-model Dataset (``W`` (instance, hidden, feature), optional ``b``):
    ``feature_norm``, ``superposition``, ``dimensionality``, ``geometry`` (instance, feature),
    ``WtW`` (instance, feature, feature2), ``dims_per_feature`` and ``n_represented`` (instance)."""
    if not isinstance(ds, xr.Dataset) or "W" not in ds:
        raise TypeError("ds must be an xarray.Dataset with a variable 'W' (instance, hidden, feature)")
    W = ds["W"]
    norms = feature_norms(W)
    out = xr.Dataset({
        "feature_norm": norms, "superposition": superposition(W),
        "dimensionality": feature_dimensionality(W), "WtW": interference(W),
        "geometry": classify_geometry(W, norm_threshold=norm_threshold),
        "dims_per_feature": dimensions_per_feature(W),
        "n_represented": (norms >= norm_threshold).sum("feature"),
    })
    keep = {k: v for k, v in ds.coords.items() if set(v.dims) <= set(out.dims)}
    return out.assign_coords(keep)


def classify_phase(W, *, feature: int = -1, norm_threshold: float = 0.5,
                   overlap_threshold: float = 0.25) -> xr.DataArray:
    """Phase of one feature ([1]_, section "Phase Change"): ``not_represented`` if
    ||W_k|| < ``norm_threshold``; ``superposition`` if Σ_{j≠k} (Ŵ_k·W_j)² ≥ ``overlap_threshold``
    (it shares its direction with other features); else ``dedicated``. DataArray of str (instance,)."""
    norms = feature_norms(W).isel(feature=feature)
    sup = superposition(W).isel(feature=feature)
    labels = np.where(norms.values < norm_threshold, PHASES[0],
                      np.where(sup.values >= overlap_threshold, PHASES[2], PHASES[1])).astype(str)
    return xr.DataArray(labels, dims=("instance",), coords={"instance": norms["instance"].values},
                        name="phase")
