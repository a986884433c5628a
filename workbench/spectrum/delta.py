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
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.parallel import torch_threads
from workbench.store import Run

__all__ = ["delta_spectrum", "weight_matrices"]

StateLike = Mapping[str, torch.Tensor] | nn.Module
TRAJ_BLOCK_BYTES = 2**26  # trajectory rows read per block (float32)
_PAPER = "Boix-Adsera et al. 2023 (NeurIPS) arXiv:2306.07042"


def layer_name(param: str) -> str:
    """``hidden.weight`` → ``hidden`` (the module path, as :func:`~workbench.spectrum.analyze` names
    layers); parameters not called ``weight`` (e.g. a transformer's ``W_E``) keep their name."""
    return param.removesuffix(".weight")


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


def _trajectory_states(run: Run, shapes: Mapping[str, torch.Size]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(step, state) of each row of a run's full-parameter trajectory, read a block of rows at a time."""
    traj = run.trajectory()
    if traj.attrs.get("mode") != "parameters":
        raise ValueError(f"run {run.id} recorded a projected trajectory ({traj.attrs.get('mode')!r}), from which "
                         "W_t cannot be rebuilt: record ParameterRecorder(model, project_dim=None), or use "
                         "source='checkpoints'")
    names, sizes = traj.attrs["names"], traj.attrs["sizes"]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    keep = [(n, int(a), int(b)) for n, a, b in zip(names, bounds[:-1], bounds[1:]) if n in shapes]
    rows = max(1, TRAJ_BLOCK_BYTES // (4 * traj.sizes["param"]))
    for start in range(0, traj.sizes["step"], rows):
        block = traj.isel(step=slice(start, start + rows))
        values = torch.from_numpy(np.asarray(block.values))
        for step, row in zip(block.step.values, values):
            yield int(step), {n: row[a:b].reshape(shapes[n]) for n, a, b in keep}


def _run_states(run: Run, source: str) -> dict[int, object]:
    """Step → state (or a loader of it) from a run's trajectory and/or checkpoints."""
    ckpt = run.checkpoint_steps()
    use_traj = source in ("trajectory", "auto") and run.has_trajectory() and (
        source == "trajectory" or run.trajectory().attrs.get("mode") == "parameters")
    states: dict[int, object] = {}
    if use_traj:
        if not ckpt and "model" not in run.config:
            raise ValueError(f"run {run.id} has no checkpoint or model config to give the weights' shapes")
        shapes = {k: v.shape for k, v in (run.load_checkpoint(ckpt[-1])["model"] if ckpt
                                          else run.load_model().state_dict()).items()}
        states.update(_trajectory_states(run, shapes))
    if source in ("checkpoints", "auto"):
        for step in ckpt:
            states.setdefault(step, lambda s=step: run.load_checkpoint(s)["model"])
    if not states:
        raise ValueError(f"run {run.id} holds no weights over steps for source={source!r}: record a full-parameter "
                         "trajectory (ParameterRecorder(model, project_dim=None)) or checkpoints")
    return states


def _load(value: object) -> StateLike:
    """A state as given, or the result of its loader (a run's checkpoints are read when needed)."""
    return value if isinstance(value, (Mapping, nn.Module)) or not callable(value) else value()


def _svals(d: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(d) if d.numel() else torch.zeros(0, dtype=d.dtype)


def delta_spectrum(run_or_checkpoints: Run | Mapping[int, StateLike], *, init: StateLike | None = None,
                   layers: str | None = None, rtol: float = 1e-2, atol: float = 0.0,
                   source: str = "auto") -> xr.Dataset:
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
    if source not in ("auto", "trajectory", "checkpoints"):
        raise ValueError(f"source must be 'auto', 'trajectory' or 'checkpoints', got {source!r}")
    if isinstance(run_or_checkpoints, Run):
        states = _run_states(run_or_checkpoints, source)
    elif isinstance(run_or_checkpoints, Mapping) and run_or_checkpoints:
        states = dict(run_or_checkpoints)
    else:
        raise TypeError("run_or_checkpoints must be a Run or a non-empty mapping {step: state_dict}, "
                        f"got {type(run_or_checkpoints).__name__}")
    steps = sorted(int(s) for s in states)
    W0 = weight_matrices(init if init is not None else _load(states[steps[0]]), layers)
    if not W0:
        raise ValueError(f"no weight tensor with >= 2 dims{'' if layers is None else f' matches {layers!r}'}")
    names = list(W0)
    width = max(min(w.shape) for w in W0.values())
    sv = np.full((len(steps), len(names), width), np.nan)
    stable, numrank, smax, rel = (np.zeros((len(steps), len(names))) for _ in range(4))
    w0_norm = {n: float(torch.linalg.norm(W0[n])) for n in names}
    with torch_threads(1):  # many small SVDs: OpenMP threads only add synchronisation
        for i, step in enumerate(steps):
            W = weight_matrices(_load(states[step]), layers)
            for j, name in enumerate(names):
                if name not in W or W[name].shape != W0[name].shape:
                    raise ValueError(f"step {step}: layer {name!r} is missing or changed shape")
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
