"""Training for :class:`~workbench.superposition.toy.ToyModels`: one Adam loop for all instances at once.

``train_toys`` trains any ``ToyModels``; ``train_toy_grid`` builds the sparsity grid of the paper's
figures ([1]_, "Demonstrating Superposition") and returns it as an ``xr.Dataset`` that
``save``/``load`` write to and read from zarr (nothing is pickled); in a run store, toy grids are
artifacts (``store.save_artifact("toy_grid", name, ds)``).

References
----------
.. [1] Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from workbench.artifacts import read_zarr, write_zarr
from workbench.parallel import WorkerPool, torch_threads
from workbench.superposition.toy import VARIANTS, ToyModels, importance_vector
from workbench.validation import as_tensor, check_range

ProgressFn = Callable[[int, int, float], None]


def train_toys(model: ToyModels, *, steps: int, batch_size: int = 1024, lr: float = 1e-3,
               seed: int = 0, progress: bool | ProgressFn = False,
               log_every: int = 0, nonempty: bool = True) -> np.ndarray:
    """Train every instance of ``model`` in place with Adam on freshly sampled batches.

    Parameters
    ----------
    model : ToyModels
    steps, batch_size : int
        Optimiser steps; samples per instance per step (the paper uses 1024).
    lr : float
        Adam learning rate (paper: 1e-3, constant).
    seed : int
        Seeds the data stream (weights are seeded by the model): numpy's PCG64 on the CPU, where
        each step is drawn and consumed in cache-sized chunks of instances, each chunk from a lane
        stream of SFC64 it seeds (:meth:`ToyModels.sample_loss_and_grad`); torch's generator elsewhere.
    progress : bool or callable
        ``True`` shows a tqdm bar (off under ``TQDM_DISABLE``); a callable is called as
        ``progress(step, steps, mean_loss)`` about 50 times during training (for UIs).
    nonempty : bool
        Sample batches conditioned on x ≠ 0 and add the exact loss of x = 0 (an unbiased,
        lower-variance estimate of the same loss; see :meth:`ToyModels.generate_batch`).
    log_every : int
        If > 0, record the per-instance training loss every ``log_every`` steps.

    Returns
    -------
    numpy.ndarray
        Logged per-instance losses, shape (n_logged, n_instances) (empty when ``log_every`` = 0).
    """
    if not isinstance(model, ToyModels):
        raise TypeError(f"model must be a ToyModels, got {type(model).__name__}")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    check_range(lr, "lr", 0.0, None, low_open=True)
    gen = _data_generator(model.W.device, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    callback = progress if callable(progress) else None
    bar = None
    if progress is True and not os.environ.get("TQDM_DISABLE"):
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=f"toy models ×{model.n_instances}", leave=False)
    tick = max(1, steps // 50)
    logged = []
    with WorkerPool(torch.get_num_threads() - 1) as pool:  # the CPU step's helper threads
        for step in range(int(steps)):
            # instances are independent: the gradient of the summed loss is each one's own gradient
            loss_i = model.sample_loss_and_grad(batch_size, gen, nonempty=nonempty, pool=pool)
            with torch_threads(1):  # a tiny update: OpenMP threads left spinning would slow the next step
                opt.step()
            if log_every and step % log_every == 0:
                logged.append(loss_i.detach().cpu().numpy())
            if (step + 1) % tick == 0 or step + 1 == steps:
                if bar is not None:
                    bar.update((step + 1) - bar.n)
                if callback is not None:
                    callback(step + 1, int(steps), float(loss_i.detach().mean()))
    if bar is not None:
        bar.close()
    if logged:
        return np.stack(logged)
    return np.zeros((0, model.n_instances), dtype=np.float32)


def _data_generator(device: torch.device, seed: int) -> torch.Generator | np.random.Generator:
    """Random source for training batches: numpy's PCG64 on the CPU (its float32 uniforms are
    ~3x faster than torch's), torch's generator on other devices."""
    if device.type == "cpu":
        return np.random.Generator(np.random.PCG64(int(seed)))
    return torch.Generator(device=device).manual_seed(int(seed))


@torch.no_grad()
def evaluate(model: ToyModels, *, n_samples: int = 8192, seed: int = 12345,
             chunk: int = 1024, nonempty: bool = True) -> np.ndarray:
    """Per-instance loss on ``n_samples`` fresh samples (chunked to bound memory): shape (I,).
    ``nonempty`` as in :func:`train_toys` (same expectation, lower variance)."""
    gen = torch.Generator(device=model.W.device).manual_seed(int(seed))
    total = torch.zeros(model.n_instances, device=model.W.device)
    done = 0
    while done < n_samples:
        nb = min(chunk, n_samples - done)
        x = model.generate_batch(nb, gen, nonempty=nonempty)
        total += model.loss_per_instance(x, nonempty=nonempty) * nb
        done += nb
    return (total / n_samples).cpu().numpy()


def to_dataset(model: ToyModels, loss: np.ndarray | None = None) -> xr.Dataset:
    """Weights of ``model`` as a Dataset: ``W`` (instance, hidden, feature), ``b`` (instance, feature),
    ``feature_probability`` and ``importance`` (instance, feature), optional ``loss`` (instance)."""
    ds = xr.Dataset(
        {
            "W": (("instance", "hidden", "feature"), model.W.detach().cpu().numpy()),
            "b": (("instance", "feature"), model.b.detach().cpu().numpy()),
            "feature_probability": (("instance", "feature"), model.feature_probability.cpu().numpy()),
            "importance": (("instance", "feature"), model.importance.cpu().numpy()),
        },
        coords={"instance": np.arange(model.n_instances), "hidden": np.arange(model.n_hidden),
                "feature": np.arange(model.n_features)},
        attrs={"variant": model.variant, "reference": "Elhage et al. 2022, Toy Models of Superposition"},
    )
    if model.variant == "abs":
        ds["W_out"] = (("instance", "feature", "hidden"), model.W_out.detach().cpu().numpy())
    if loss is not None:
        ds["loss"] = ("instance", np.asarray(loss, dtype=np.float32))
    return ds


def train_toy_grid(n_features: int, n_hidden: int, sparsities: Sequence[float],
                   importance_decay: float = 1.0, *, n_instances_per_cell: int = 1, steps: int = 5000,
                   batch_size: int = 1024, lr: float = 1e-3, seed: int = 0, variant: str = "relu",
                   progress: bool | ProgressFn = True, device: str | torch.device = "cpu") -> xr.Dataset:
    """Train one toy model per (sparsity, init) in a single batch ([1]_, figures "WᵀW and b").

    Parameters
    ----------
    n_features, n_hidden : int
        n and m of the paper.
    sparsities : sequence of float in [0, 1)
        S per cell; feature probability is 1 − S.
    importance_decay : float
        Importance I_i = decay**i.
    n_instances_per_cell : int
        Independent random inits per sparsity (all returned; ``loss`` tells which is best).
    steps, batch_size, lr, seed, variant, progress
        See :func:`train_toys` and :class:`ToyModels`.

    Returns
    -------
    xarray.Dataset
        Dims (instance, hidden, feature); vars ``W``, ``b``, ``loss`` (final loss on 8192 fresh
        samples), ``feature_probability``, ``importance``; coords ``sparsity`` and ``init`` on
        ``instance`` and ``importance`` values on ``feature`` as ``feature_importance``.
    """
    s = as_tensor(sparsities, "sparsities", ndim=1, dtype=torch.float64).numpy()
    if np.any((s < 0) | (s >= 1)):
        raise ValueError(f"sparsities must lie in [0, 1), got {s.tolist()}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(n_instances_per_cell, (int, np.integer)) or n_instances_per_cell < 1:
        raise ValueError(f"n_instances_per_cell must be a positive int, got {n_instances_per_cell!r}")
    sparsity = np.repeat(s, n_instances_per_cell)
    init = np.tile(np.arange(n_instances_per_cell), len(s))
    imp = importance_vector(n_features, importance_decay)
    model = ToyModels(len(sparsity), n_features, n_hidden, feature_probability=torch.tensor(1 - sparsity),
                      importance=imp, variant=variant, seed=seed).to(device)
    train_toys(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed + 1, progress=progress)
    ds = to_dataset(model, evaluate(model, seed=seed + 2))
    ds = ds.assign_coords(sparsity=("instance", sparsity), init=("instance", init),
                          feature_importance=("feature", imp.numpy()))
    ds.attrs.update(n_features=n_features, n_hidden=n_hidden, importance_decay=float(importance_decay),
                    steps=int(steps), batch_size=int(batch_size), lr=float(lr), seed=int(seed))
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a toy-model Dataset to a zarr directory (e.g. ``toy.zarr``) atomically; returns the path.

    The format of the run store's artifacts (:func:`workbench.artifacts.write_zarr`): in a store,
    ``store.save_artifact("toy_grid", name, ds)`` keeps it under the store's root instead.
    """
    return write_zarr(Path(path), ds)


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a Dataset written by :func:`save` (or a store artifact's ``.zarr``), fully loaded."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no toy-model dataset at {path}")
    return read_zarr(path)
