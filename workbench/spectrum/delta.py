"""Spectra of the weight change ΔW = W_t − W_0 over training: the gradual-rank-increase measure.

Boix-Adsera, Littwin, Abbe, Bengio, Susskind [1]_ prove that, with small initialisation and diagonal
weights, a transformer learns in stages and the rank of ΔW = W_t − W_0 grows by at most one per
stage; they observe the same slow rank growth in practice. :func:`delta_spectrum` measures it on
any sequence of weights: a run's parameter trajectory (recorded with
``ParameterRecorder(model, project_dim=None)``), its stored checkpoints, or a mapping
``{step: state_dict}``. For every weight tensor of at least two dims, reshaped to ``(out, −1)``,
and every step, with σ_1 ≥ σ_2 ≥ … the singular values of ΔW:

- ``sv`` = σ_i / σ_1 (the normalised spectrum the paper plots);
- ``stable_rank`` = ‖ΔW‖_F² / ‖ΔW‖_2² = Σ σ_i² / σ_1²;
- ``numerical_rank`` = #{i : σ_i > max(rtol · σ_1, atol)};
- ``sigma_max`` = σ_1 and ``rel_norm`` = ‖ΔW‖_F / ‖W_0‖_F.

References
----------
.. [1] Boix-Adsera, Littwin, Abbe, Bengio, Susskind (2023). Transformers learn through gradual rank
   increase. NeurIPS. arXiv:2306.07042
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.parallel import torch_threads
from workbench.spectrum.series import StateLike, layer_name, load_state, select_steps, weight_series
from workbench.store import Run

__all__ = ["delta_spectrum", "make_delta_probe", "weight_matrices"]

_PAPER = "Boix-Adsera et al. 2023 (NeurIPS) arXiv:2306.07042"


def weight_matrices(state: StateLike, layers: str | None = None) -> dict[str, torch.Tensor]:
    """Every floating tensor of ``state`` with at least two dims, as a float64 ``(out, −1)`` matrix,
    keyed by layer name (:func:`layer_name`); ``layers``: a regex the name must match (``re.search``)."""
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a state_dict or nn.Module, got {type(state).__name__}")
    pattern = re.compile(layers) if layers is not None else None
    out = {}
    for name, t in state.items():
        lay = layer_name(name)
        if (isinstance(t, torch.Tensor) and t.ndim >= 2 and t.is_floating_point()
                and (pattern is None or pattern.search(lay))):
            out[lay] = t.detach().to("cpu", torch.float64).reshape(t.shape[0], -1)
    return out


def _svals(d: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(d) if d.numel() else torch.zeros(0, dtype=d.dtype)


def delta_spectrum(run_or_checkpoints: Run | Mapping[int, StateLike], *, init: StateLike | None = None,
                   layers: str | None = None, rtol: float = 1e-2, atol: float = 0.0,
                   source: str = "auto", steps: Sequence[int] | None = None) -> xr.Dataset:
    """Singular values and ranks of ΔW = W_t − W_0 per step and layer (Boix-Adsera et al. [1]_).

    Parameters
    ----------
    run_or_checkpoints : a Run (its full-parameter trajectory and/or its checkpoints), or a mapping
        ``{step: state_dict or nn.Module}``.
    init : W_0 (a state dict or model); default the weights at the first step.
    layers : regex on layer names (``re.search``); default every tensor with ≥ 2 dims.
    rtol, atol : σ_i counts towards ``numerical_rank`` when σ_i > max(rtol · σ_1, atol): relative to the
        largest change, and above an absolute floor (early in training, when ΔW is still tiny, every
        direction moves by a comparable amount and the relative count alone is not informative).
    source : for a Run: ``"trajectory"``, ``"checkpoints"`` or ``"auto"`` (the trajectory if it holds
        all parameters, plus checkpoints at steps it lacks).
    steps : only these steps (default all; W_0 is still the first step's weights unless ``init``).

    Returns
    -------
    xr.Dataset with dims ``step``, ``layer``, ``sv``: ``sv_norm`` (step, layer, sv) σ_i/σ_1 (NaN past a
    layer's min(out, in) and where ΔW = 0), ``stable_rank`` Σσ_i²/σ_1², ``numerical_rank``
    #{σ_i > max(rtol·σ_1, atol)}, ``sigma_max`` σ_1, ``rel_norm`` ‖ΔW‖_F/‖W_0‖_F (step, layer); coordinates
    ``rows``, ``cols`` (layer). ΔW = 0 has ranks 0.
    """
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
    if not atol >= 0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    states = weight_series(run_or_checkpoints, source=source)
    W0 = weight_matrices(init if init is not None else load_state(next(iter(states.values()))), layers)
    steps = select_steps(states, steps)
    if not W0:
        raise ValueError(f"no weight tensor with >= 2 dims{'' if layers is None else f' matches {layers!r}'}")
    names = list(W0)
    width = max(min(w.shape) for w in W0.values())
    sv = np.full((len(steps), len(names), width), np.nan)
    stable, numrank, smax, rel = (np.zeros((len(steps), len(names))) for _ in range(4))
    w0_norm = {n: float(torch.linalg.norm(W0[n])) for n in names}
    with torch_threads(1):  # many small SVDs: OpenMP threads only add synchronisation
        for i, step in enumerate(steps):
            W = weight_matrices(load_state(states[step]), layers)
            for j, name in enumerate(names):
                if name not in W or W[name].shape != W0[name].shape:
                    raise ValueError(f"step {step}: layer {name!r} is missing or changed shape")
                if not torch.isfinite(W[name]).all():
                    raise ValueError(f"step {step}: layer {name!r} holds NaN/Inf weights")
                s = _svals(W[name] - W0[name])
                top = float(s[0]) if s.numel() else 0.0
                smax[i, j] = top
                rel[i, j] = float(torch.linalg.norm(s)) / w0_norm[name] if w0_norm[name] > 0 else np.nan
                if top > 0:
                    sv[i, j, :s.numel()] = (s / top).numpy()
                    stable[i, j] = float((s**2).sum()) / top**2
                    numrank[i, j] = int((s > max(rtol * top, atol)).sum())
    return xr.Dataset(
        {"sv_norm": (("step", "layer", "sv"), sv), "stable_rank": (("step", "layer"), stable),
         "numerical_rank": (("step", "layer"), numrank.astype(np.int64)),
         "sigma_max": (("step", "layer"), smax), "rel_norm": (("step", "layer"), rel)},
        coords={"step": np.asarray(steps, dtype=np.int64), "layer": names, "sv": np.arange(width),
                "rows": ("layer", [W0[n].shape[0] for n in names]),
                "cols": ("layer", [W0[n].shape[1] for n in names])},
        attrs={"rtol": rtol, "atol": atol, "measure": "singular values of W_t - W_0", "reference": _PAPER})


def make_delta_probe(init_state: StateLike, **kwargs):
    """A training probe ``fn(model, task) -> xr.Dataset`` (dims ``layer``, ``sv``; no ``step``):
    :func:`delta_spectrum` of the model against ``init_state`` (copied now), so a run records the
    spectrum of ΔW as it trains: ``fit(..., probes={"delta": (make_delta_probe(model.state_dict()), 100)})``.
    ``kwargs`` go to :func:`delta_spectrum` (``layers``, ``rtol``, ``atol``)."""
    init = {k: v.clone() for k, v in weight_matrices(init_state).items()}

    def delta_probe(model: nn.Module, task=None) -> xr.Dataset:
        return delta_spectrum({1: model}, init=init, **kwargs).isel(step=0, drop=True)

    return delta_probe
