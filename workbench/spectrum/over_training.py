"""Weight spectra over training: ranks of W - W_0 and the spectrum probe for ``train.fit``.

Boix-Adsera et al. (2023), "Transformers learn through gradual rank increase": the difference
between trained and initial weights grows in rank step by step. The probe records
:func:`workbench.spectrum.analysis.analyze`'s metrics (and, given W_0, :func:`delta_rank`'s) every
``k`` steps into the run store.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.parallel import torch_threads
from workbench.spectrum.analysis import SKIPPED_VARS, analyze
from workbench.spectrum.layers import module_layers, to_matrices
from workbench.spectrum.metrics import effective_rank
from workbench.spectrum.selection import open_model, select_layers

__all__ = ["as_probe_dataset", "delta_rank", "make_spectrum_probe", "spectrum_probe"]

LayerWeights = dict[str, list[torch.Tensor]]  # layer name → its matrices


def _state_matrices(model: nn.Module, split_attention: bool) -> LayerWeights:
    tensors, lays, _ = module_layers(model, split_attention=split_attention)
    return {lay.name: to_matrices(tensors[lay.key], lay.part) for lay in lays}


def _init_layers(model: nn.Module, init_state, split_attention: bool) -> LayerWeights:
    """W_0 read through the same layer rules as W (``init_state``: a state_dict, a model, or the
    result of a previous call, which is returned as is)."""
    if isinstance(init_state, dict) and init_state and all(isinstance(v, list) for v in init_state.values()):
        return init_state
    if isinstance(init_state, nn.Module):
        init_state = init_state.state_dict()
    if not isinstance(init_state, Mapping):
        raise TypeError(f"init_state must be a state_dict or nn.Module, got {type(init_state).__name__}")
    return _state_matrices(_rebuild(model, init_state), split_attention)


def delta_rank(model: nn.Module, init_state: Mapping[str, torch.Tensor] | nn.Module, *,
               min_evals: int = 8, split_attention: bool = True) -> xr.Dataset:
    """Stable and effective rank of W - W_0 per layer: the "gradual rank increase" measure.

    Boix-Adsera et al. (2023), "Transformers learn through incremental/gradual rank increase":
    the difference between trained and initial weights grows in rank step by step.

    Parameters
    ----------
    model : the current model.
    init_state : the initial ``state_dict()`` (or a model with the same architecture).

    Returns
    -------
    xr.Dataset (layer): ``delta_stable_rank`` = ||dW||_F² / ||dW||_2², ``delta_effective_rank``
    (Roy & Vetterli 2007), ``delta_rel_norm`` = ||dW||_F / ||W_0||_F.
    """
    with torch_threads(1):  # small float64 SVDs: OpenMP threads only add synchronisation
        return _delta_rank(model, init_state, min_evals, split_attention)


def _delta_rank(model: nn.Module, init_state, min_evals: int, split_attention: bool) -> xr.Dataset:
    weights = open_model(model, split_attention=split_attention)
    lays, _ = select_layers(weights, min_evals=min_evals, max_evals=10**9, max_n=10**9)
    init = _init_layers(model, init_state, split_attention)
    rows = {"delta_stable_rank": [], "delta_effective_rank": [], "delta_rel_norm": []}
    for lay in lays:
        mats, mats0 = to_matrices(weights.reader.tensor(lay.key), lay.part), init[lay.name]
        d = [(a.to(torch.float64) - b.to(torch.float64)) for a, b in zip(mats, mats0)]
        ev = torch.sort(torch.cat([torch.linalg.svdvals(x) ** 2 for x in d])).values
        fro2, w0 = float(ev.sum()), sum(float((b.to(torch.float64) ** 2).sum()) for b in mats0)
        rows["delta_stable_rank"].append(fro2 / float(ev[-1]) if float(ev[-1]) > 0 else 0.0)
        rows["delta_effective_rank"].append(float(effective_rank(ev)) if fro2 > 0 else 0.0)
        rows["delta_rel_norm"].append(np.sqrt(fro2 / w0) if w0 > 0 else np.nan)
    return xr.Dataset({k: ("layer", np.asarray(v, dtype=float)) for k, v in rows.items()},
                      coords={"layer": [lay.name for lay in lays]},
                      attrs={"reference": "Boix-Adsera et al. 2023 (gradual rank increase); "
                                          "Roy & Vetterli 2007 (effective rank)"})


def _rebuild(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` holding ``state`` (to read W_0 through the same layer rules)."""
    clone = copy.deepcopy(model)
    missing, _unexpected = clone.load_state_dict(dict(state), strict=False)
    weights = [k for k in missing if k.endswith("weight")]
    if weights:
        raise ValueError(f"init_state lacks weights {weights[:5]} of model")
    return clone


def as_probe_dataset(ds: xr.Dataset) -> xr.Dataset:
    """An ``analyze`` result as a run stores it per step: the metrics on dim ``layer`` only (no
    per-layer shape coordinates, no ``skipped`` report, which may change from step to step)."""
    drop = ("layer_type", "N", "M", "rf", "num_evals", *SKIPPED_VARS, "skipped")
    return ds.drop_vars([c for c in drop if c in ds.variables])


def make_spectrum_probe(init_state: Mapping[str, torch.Tensor] | None = None, *,
                        mp_fit: bool = True, precision: str = "mixed", **kwargs):
    """A training probe ``fn(model, task) -> xr.Dataset`` (dim ``layer``, no ``step``) recording
    :func:`analyze`'s metrics and, given ``init_state`` (copied now), :func:`delta_rank`'s.

    Use as ``fit(..., probes={"spectrum": (make_spectrum_probe(model.state_dict()), 500)})``.
    """
    init = None if init_state is None else {k: v.detach().clone() for k, v in init_state.items()}
    cache: dict[str, LayerWeights] = {}

    def spectrum_probe(model: nn.Module, task=None) -> xr.Dataset:
        ds = as_probe_dataset(analyze(model, mp_fit=mp_fit, precision=precision, **kwargs))
        if init is not None:
            if "w0" not in cache:  # W_0 matrices extracted once, not at every call
                cache["w0"] = _init_layers(model, init, kwargs.get("split_attention", True))
            ds = ds.merge(delta_rank(model, cache["w0"]))
        return ds

    return spectrum_probe


spectrum_probe = make_spectrum_probe()
spectrum_probe.__doc__ = "Training probe: ``analyze(model)`` metrics, dim ``layer`` (no step)."
