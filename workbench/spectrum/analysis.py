"""``analyze``: the spectral metrics of every layer of a model in memory or on disk, one Dataset.

Heavy-tailed self-regularisation metrics (Martin & Mahoney 2021, JMLR 22; the WeightWatcher tool)
plus rank and conditioning measures (:mod:`workbench.spectrum.metrics`). Conventions are
weightwatcher 0.7.7's, so the numbers agree with it: the ESD of a layer is the set of eigenvalues
of W^T W (N >= M), no 1/N normalisation; alpha and the ranks are scale-invariant, ``log_norm`` and
``log_spectral_norm`` are not. Layers: :mod:`workbench.spectrum.layers`; their size rules and the
``skipped`` report: :mod:`workbench.spectrum.selection`; eigenvalues: :mod:`workbench.spectrum.eigen`.

Steps: select the layers; compute each layer's ESD (threads on CPU, batches on GPU, or Dask
tasks with ``scheduler=``); fit all power laws at once; recompute in float64 the layers whose
float32 Gram matrix resolves the fitted tail too coarsely (xmin < 1e-3 lambda_max) and refit
them; the metrics; optionally the bootstrap interval of alpha. "mixed" and "float64" alphas agree
to ~5e-8 relative on MiniLM and ~3e-7 on random 768×3072 layers.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from workbench.parallel import WorkerPool, torch_threads
from workbench.spectrum.bootstrap import bootstrap_alpha
from workbench.spectrum.eigen import LayerEvals, NonFiniteWeights, exact_layer_evals, layers_evals
from workbench.spectrum.layers import LayerMatrices, Skipped
from workbench.spectrum.metrics import FIT_KEYS, fit_layers, spectral_metrics
from workbench.spectrum.power_law import EVALS_THRESH
from workbench.spectrum.selection import ModelLike, layer_skipped, open_model, select_layers
from workbench.validation import as_tensor

__all__ = ["SKIPPED_VARS", "XMIN_FLOAT32_FLOOR", "analyze", "esd", "layer_esds"]

XMIN_FLOAT32_FLOOR = 1e-3  # "mixed": refit in float64 when xmin < this · lambda_max
SKIPPED_VARS = ("skip_reason", "skip_shape", "skip_dtype")  # dim ``skipped``


def _check_options(precision: str, on_nonfinite: str, bootstrap: int) -> None:
    if precision not in ("mixed", "float64"):
        raise ValueError(f"precision must be 'mixed' or 'float64', got {precision!r}")
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    if not isinstance(bootstrap, int) or isinstance(bootstrap, bool) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative int (replicates), got {bootstrap!r}")


def analyze(model: ModelLike, *, layers: Sequence[str] | str | None = None, min_evals: int = 8,
            max_evals: int = 15000, max_N: int = 50000, precision: str = "mixed",
            device: str | torch.device = "cpu", mp_fit: bool = True, keep_evals: bool = False,
            split_attention: bool = True, bootstrap: int = 0, level: float = 0.95, seed: int = 0,
            on_nonfinite: str = "raise", scheduler=None, progress: bool = False) -> xr.Dataset:
    """Spectral metrics of every analysable layer of ``model`` (dim ``layer``).

    Parameters
    ----------
    model : nn.Module, state dict, or path
        A module (layers named by module path), a ``{name: tensor}`` state dict, a
        ``.safetensors`` file, a Hugging Face model directory (single or sharded safetensors with
        ``model.safetensors.index.json``) or a torch checkpoint (``.pt``/``.bin``, loaded with
        ``weights_only=True``); from a state dict or a file, layers are named by key
        (``encoder.layer.0.attention.self.query.weight`` → ``encoder.layer.0.attention.self.query``)
        and read one at a time, so memory holds about one layer per thread.
    layers : layer names to keep, or one regular expression (``re.search``); default all.
    min_evals, max_evals, max_N : weightwatcher's size rules (skip layers with fewer / more
        eigenvalues M·rf, or a larger dimension N).
    precision : "mixed" (default): Gram matrices in float32, eigenvalues in float64, float64
        recomputation where float32 cannot resolve lambda_min or the fitted tail; "float64".
    device : where the eigenvalues and fits are computed ("cuda" batches layers on the GPU).
    mp_fit : fit the Marchenko–Pastur bulk and count spikes (``num_spikes``); NaN when False.
    keep_evals : add ``eigenvalues`` (layer, eig), NaN-padded, for plotting ESDs.
    bootstrap, level, seed : B > 0 adds ``alpha_lo``/``alpha_hi``, the ``level`` percentile
        bootstrap interval of alpha, xmin re-selected per replicate
        (:func:`workbench.spectrum.bootstrap.bootstrap_alpha`).
    on_nonfinite : "raise" (default): NaN/Inf weights raise ``ValueError`` naming the layer;
        "skip": such layers are left out and reported in ``skipped``.
    scheduler : a Dask scheduler address or ``distributed.Client``: one task per layer, read from
        the file by the worker itself (paths only); results identical to the local run.
    progress : a tqdm progress bar over layers.

    Returns
    -------
    xr.Dataset with dim ``layer`` and variables
        ``alpha`` — power-law exponent of the ESD tail (Martin & Mahoney 2021, Sec. 5; Clauset et
        al. 2009 eq. 3.1), ``xmin``, ``ks_distance``, ``tail_size``;
        ``alpha_weighted`` = alpha · log10 lambda_max; ``log_norm`` = log10 ||W||_F²;
        ``log_spectral_norm`` = log10 lambda_max; ``stable_rank`` = ||W||_F² / ||W||_2²;
        ``effective_rank`` = exp(entropy of sigma/sum sigma) (Roy & Vetterli 2007);
        ``condition_number`` = sigma_max / sigma_min; ``num_spikes`` above the fitted MP bulk edge
        plus Tracy–Widom margin, ``sigma_mp``, ``mp_softrank``; coords ``layer_type``, ``N``,
        ``M``, ``rf``, ``num_evals``; model-level means ``alpha_mean``, ``alpha_weighted_mean``,
        ``log_norm_mean``, ``stable_rank_mean`` (no dims); and the report of every tensor or
        layer not analysed, dim ``skipped`` (tensor key or layer name) with ``skip_reason``,
        ``skip_shape``, ``skip_dtype`` (:func:`workbench.spectrum.export.skipped_table`).
    """
    _check_options(precision, on_nonfinite, bootstrap)
    weights = open_model(model, split_attention=split_attention)
    lays, skipped = select_layers(weights, layers, min_evals=min_evals, max_evals=max_evals, max_n=max_N)
    if scheduler is not None and not weights.from_disk:
        raise ValueError("scheduler= needs weights on disk (workers read their layers from the file); "
                         "save the model with safetensors.torch.save_file and pass the path")
    dev, threads = torch.device(device), torch.get_num_threads()
    cpu = dev.type == "cpu"
    # on CPU the fits and metrics are many small element-wise ops: one thread each, layers spread
    # over a pool of ``threads`` threads (eigensolves and fits alike)
    with torch_threads(1 if cpu else threads), WorkerPool(threads if cpu and threads > 1 else 0) as pool, \
            _client(scheduler) as client, tqdm(total=len(lays), desc="layers", disable=not progress) as bar:
        results = _spectra(weights, lays, precision, dev, pool, client, on_nonfinite == "skip", bar.update)
        lays, results, skipped = _drop_nonfinite(weights, lays, results, skipped)
        lays, results, skipped = _drop_zero(weights, lays, results, skipped)
        fits = _fit_and_refine(weights, lays, results, dev, pool, client)
        ds = _dataset(lays, results, fits, mp_fit, keep_evals, skipped)
        if bootstrap:
            lo, hi = bootstrap_alpha([r.evals for r in results], bootstrap, level=level, seed=seed, pool=pool,
                                     device=None if cpu else dev)
            ds["alpha_lo"], ds["alpha_hi"] = ("layer", lo.numpy()), ("layer", hi.numpy())
    ds.attrs.update(precision=precision, source=weights.reader.source, on_nonfinite=on_nonfinite)
    if bootstrap:
        ds.attrs.update(bootstrap=int(bootstrap), level=float(level),
                        interval="percentile bootstrap, xmin re-selected per replicate")
    return ds


def _client(scheduler):
    if scheduler is None:
        return nullcontext(None)
    from workbench.spectrum.distributed import client_for

    return client_for(scheduler)


def _spectra(weights, lays, precision, dev, pool, client, skip_nonfinite, on_done) -> list:
    if client is None:
        return layers_evals(weights.reader, lays, precision, dev, pool, skip_nonfinite, on_done)
    from workbench.spectrum.distributed import dask_layers_evals

    return dask_layers_evals(weights.reader, lays, precision, client, skip_nonfinite, on_done)


def _drop_nonfinite(weights, lays, results, skipped):
    """Layers whose weights hold NaN/Inf (``on_nonfinite="skip"``) move to the skipped report."""
    bad = [i for i, r in enumerate(results) if isinstance(r, NonFiniteWeights)]
    skipped = skipped + [layer_skipped(weights, lays[i], "non-finite values (NaN/Inf)") for i in bad]
    keep = [i for i in range(len(lays)) if i not in set(bad)]
    if not keep:
        raise ValueError(f"every selected layer of {weights.reader.source} holds NaN/Inf weights")
    return [lays[i] for i in keep], [results[i] for i in keep], skipped


def _drop_zero(weights, lays, results, skipped):
    """All-zero weight matrices (no spectrum: every eigenvalue 0) move to the skipped report."""
    zero = [i for i, r in enumerate(results) if not float(r.evals[-1]) > 0]
    if not zero:
        return lays, results, skipped
    if len(zero) == len(lays):
        raise ValueError(f"every selected layer of {weights.reader.source} is an all-zero matrix: no spectrum to fit")
    skipped = skipped + [layer_skipped(weights, lays[i], "all-zero weight matrix (no spectrum to fit)") for i in zero]
    keep = [i for i in range(len(lays)) if i not in set(zero)]
    return [lays[i] for i in keep], [results[i] for i in keep], skipped


def _fit_and_refine(weights, lays: list[LayerMatrices], results: list[LayerEvals], dev, pool, client) -> dict:
    """Power-law fits of all layers; layers whose float32 Gram matrices resolve the fitted tail too
    coarsely (xmin < ``XMIN_FLOAT32_FLOOR`` · lambda_max) are recomputed in float64 and refitted."""
    fits = fit_layers([r.evals for r in results], pool)
    redo = [i for i, r in enumerate(results)
            if not r.exact and not fits["xmin"][i] >= XMIN_FLOAT32_FLOOR * float(r.evals[-1])]
    if not redo:
        return fits
    if client is None:
        exact = [exact_layer_evals(weights.reader, lays[i], dev) for i in redo]
    else:
        from workbench.spectrum.distributed import dask_exact_evals

        exact = dask_exact_evals(weights.reader, [lays[i] for i in redo], client)
    for i, ev in zip(redo, exact):
        results[i] = LayerEvals(ev, results[i].fro2, True)
    refit = fit_layers([results[i].evals for i in redo], pool)
    for k in FIT_KEYS:
        fits[k][redo] = refit[k]
    return fits


def _dataset(lays: list[LayerMatrices], results: list[LayerEvals], fits: dict, mp_fit: bool,
             keep_evals: bool, skipped: list[Skipped]) -> xr.Dataset:
    rows = [spectral_metrics(r.evals, lay.scale * r.fro2, float(fits["alpha"][i]), lay.n / lay.m, lay.m, mp_fit)
            for i, (lay, r) in enumerate(zip(lays, results))]
    data = {**{k: ("layer", fits[k]) for k in ("alpha", "xmin", "ks_distance")},
            **{k: ("layer", np.array([row[k] for row in rows], dtype=float)) for k in rows[0]},
            "tail_size": ("layer", fits["tail_size"].astype(np.int64))}
    coords = {"layer": [lay.name for lay in lays], "layer_type": ("layer", [lay.kind for lay in lays]),
              "N": ("layer", [lay.n for lay in lays]), "M": ("layer", [lay.m for lay in lays]),
              "rf": ("layer", [lay.rf for lay in lays]),
              "num_evals": ("layer", [r.evals.numel() for r in results])}
    ds = xr.Dataset(data, coords=coords)
    for k in ("alpha", "alpha_weighted", "log_norm", "stable_rank"):
        ds[f"{k}_mean"] = ds[k].mean()
    if keep_evals:
        pad = np.full((len(results), max(r.evals.numel() for r in results)), np.nan)
        for i, r in enumerate(results):
            pad[i, : r.evals.numel()] = r.evals.cpu().numpy()
        ds["eigenvalues"] = (("layer", "eig"), pad)
    ds = ds.merge(_skipped_dataset(skipped))
    ds.attrs = {"method": "ESD of W^T W (no 1/N), Gram route, batched; weightwatcher conventions",
                "reference": "Martin & Mahoney 2021 JMLR 22; Clauset et al. 2009; Roy & Vetterli 2007",
                "eval_thresh": EVALS_THRESH}
    return ds


def _skipped_dataset(skipped: list[Skipped]) -> xr.Dataset:
    """The skipped report as variables on dim ``skipped`` (strings; JSON-free attrs stay scalar)."""
    return xr.Dataset({"skip_reason": ("skipped", np.array([s.reason for s in skipped], dtype=object)),
                       "skip_shape": ("skipped", np.array(["×".join(map(str, s.shape)) or "scalar"
                                                           for s in skipped], dtype=object)),
                       "skip_dtype": ("skipped", np.array([s.dtype for s in skipped], dtype=object))},
                      coords={"skipped": np.array([s.name for s in skipped], dtype=object)})


def esd(W, *, layer: str | None = None, precision: str = "float64", device: str | torch.device = "cpu",
        split_attention: bool = True) -> xr.DataArray:
    """Empirical spectral density of one weight matrix: the eigenvalues of W^T W.

    Parameters
    ----------
    W : array-like (N, M), or a model (module, state dict, path) with ``layer`` naming the layer
        A matrix is transposed if N < M so the M = min(N, M) eigenvalues of W^T W (the squared
        singular values, no 1/N normalisation — weightwatcher's convention) are returned.
    layer : the layer of a model to take (as named by :func:`analyze`).
    precision : "float64" (default) | "mixed" (W^T W in float32 where that resolves lambda_min);
        eigenvalues are always computed in float64.
    device : torch device for the computation.

    Returns
    -------
    xr.DataArray (eig,), ascending, attrs N, M.
    """
    _check_options(precision, "raise", 0)
    if layer is None and isinstance(W, (nn.Module, Mapping, str, os.PathLike)):
        raise ValueError("esd of a model needs layer= (a layer name as analyze reports it)")
    if layer is None:
        w = as_tensor(W, "W", ndim=2, min_size=1)
        W = {"W.weight": w if w.is_floating_point() else w.to(torch.float64)}
        layer = "W"
    weights = open_model(W, split_attention=split_attention)
    lay = next((x for x in weights.layers if x.name == layer), None)
    if lay is None:
        raise ValueError(f"no layer {layer!r} in {weights.reader.source}; layers: {[x.name for x in weights.layers][:20]}")
    with torch_threads(1):
        ev = layers_evals(weights.reader, [lay], precision, torch.device(device))[0].evals
    return xr.DataArray(ev.cpu().numpy(), dims=("eig",), name="eigenvalue",
                        attrs={"N": lay.n, "M": lay.m, "layer": layer, "definition": "eigenvalues of W^T W (N >= M)"})


def layer_esds(model: ModelLike, layers: Sequence[str] | str | None = None, **kwargs) -> xr.Dataset:
    """``analyze(model, keep_evals=True)``: metrics plus ``eigenvalues`` (layer, eig) for plotting."""
    return analyze(model, layers=layers, keep_evals=True, **kwargs)
