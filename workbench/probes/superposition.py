"""Superposition measures on toy-model weights, and the paper's phase diagram.

All measures are pure functions of ``W`` with dims (instance, hidden, feature) — an
``xr.DataArray``, a (I, H, F) or a single (H, F) array — and return labelled xarray objects.
Column ``W_i`` (the i-th feature's direction in hidden space) is ``W[:, :, i]``.

References
----------
.. [1] Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
   https://transformer-circuits.pub/2022/toy_model/index.html
"""
from __future__ import annotations

from collections.abc import Sequence

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
    "phase_diagram",
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
    from workbench.models.toy import ToyModels  # models depend on nothing here
    from workbench.toy_training import evaluate, train_toys

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
