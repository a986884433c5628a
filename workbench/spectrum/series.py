"""Weights over training, step by step: a run's full-parameter trajectory and checkpoints, or a mapping.

The over-training measures (:func:`~workbench.spectrum.delta_spectrum`,
:func:`~workbench.spectrum.compressibility`) read the weights at every recorded step through
:func:`weight_series`: ``{step: state}`` where a state is a state dict, a module, or a loader
called when that step is measured (a run's checkpoints are read one at a time). A run's trajectory
rebuilds W_t only when it recorded the parameters themselves
(``ParameterRecorder(model, project_dim=None)``), not a projection; it is read a block of rows at a
time and held as float32 views of those blocks.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from workbench.store import Run

__all__ = ["SOURCES", "StateLike", "layer_name", "load_state", "select_steps", "weight_series"]

StateLike = Mapping[str, torch.Tensor] | nn.Module
SOURCES = ("auto", "trajectory", "checkpoints")
TRAJ_BLOCK_BYTES = 2**26  # trajectory rows read per block (float32)


def layer_name(param: str) -> str:
    """``hidden.weight`` → ``hidden`` (the module path, as :func:`~workbench.spectrum.analyze` names
    layers); parameters not called ``weight`` (e.g. a transformer's ``W_E``) keep their name."""
    return param.removesuffix(".weight")


def load_state(value: StateLike | Callable[[], StateLike]) -> StateLike:
    """A state as given, or the result of its loader."""
    return value if isinstance(value, (Mapping, nn.Module)) or not callable(value) else value()


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


def _run_states(run: Run, source: str) -> dict[int, StateLike | Callable[[], StateLike]]:
    """Step → state (or a loader of it) from a run's trajectory and/or checkpoints."""
    ckpt = run.checkpoint_steps()
    use_traj = source in ("trajectory", "auto") and run.has_trajectory() and (
        source == "trajectory" or run.trajectory().attrs.get("mode") == "parameters")
    states: dict[int, StateLike | Callable[[], StateLike]] = {}
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


def weight_series(run_or_states: Run | Mapping[int, StateLike], *,
                  source: str = "auto") -> dict[int, StateLike | Callable[[], StateLike]]:
    """``{step: state or loader}`` in step order, from a Run or a mapping ``{step: state_dict or module}``.

    Parameters
    ----------
    run_or_states : a Run, or a non-empty mapping from step to a state dict or module.
    source : for a Run: ``"trajectory"`` (its full-parameter trajectory), ``"checkpoints"``, or
        ``"auto"`` (the trajectory if it holds all parameters, plus checkpoints at steps it lacks).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if isinstance(run_or_states, Run):
        states = _run_states(run_or_states, source)
    elif isinstance(run_or_states, Mapping) and run_or_states:
        states = {int(k): v for k, v in run_or_states.items()}
    else:
        raise TypeError("expected a Run or a non-empty mapping {step: state_dict}, "
                        f"got {type(run_or_states).__name__}")
    return dict(sorted(states.items()))


def select_steps(states: Mapping[int, object], steps: Sequence[int] | None) -> list[int]:
    """The recorded steps to measure: all of ``states``' (``steps=None``) or ``steps``, each recorded."""
    if steps is None:
        return sorted(states)
    wanted = sorted({int(s) for s in steps})
    missing = [s for s in wanted if s not in states]
    if missing:
        raise ValueError(f"steps {missing[:5]} are not recorded; recorded steps run {min(states)}..{max(states)}")
    return wanted
