"""Stochastic Parameter Decomposition (SPD) of toy models of superposition, many at once ([1]_).

:func:`spd` decomposes every matrix of I trained toy models ``x̂ = ReLU(Wᵀ [I] W x + b)`` into
C rank-one subcomponents (:class:`~workbench.superposition.spd_model.SPDModel`), trained on the
target's own data distribution with the paper's four losses ([1]_, "Summary of training setup"):

.. math::
   \\mathcal L_{SPD} = \\mathcal L_{faithfulness} + β_1 \\mathcal L_{stochastic-recon}
                     + β_2 \\mathcal L_{stochastic-recon-layerwise} + β_3 \\mathcal L_{importance-minimality}

Instances never interact (the loss is a sum over instances and Adam is element-wise), so a batch
of seeds equals a loop over them. :func:`train_targets` trains the targets with our
:class:`~workbench.superposition.toy.ToyModels` in the paper's setting. Measures of the result are
in :mod:`workbench.superposition.spd_measures`.

References
----------
.. [1] Bushnaq, L., Braun, D., Sharkey, L. et al. (2025). Stochastic Parameter Decomposition.
   arXiv:2506.20790. Reference code: github.com/goodfire-ai/spd, branch ``spd-paper``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import xarray as xr

from workbench.superposition.spd_model import (
    SPDModel,
    lower_leaky_hard_sigmoid,
    to_dataset,
    upper_leaky_hard_sigmoid,
)
from workbench.superposition.toy import ToyModels
from workbench.superposition.training import to_dataset as toy_dataset
from workbench.superposition.training import train_toys
from workbench.validation import as_tensor, check_range

ProgressFn = Callable[[int, int, float], None]
LOSS_TERMS = ("faithfulness", "stochastic_recon", "stochastic_recon_layerwise", "importance_minimality", "total")
# [1]_, Appendix "Training details and hyperparameters", TMS: model-specific SPD settings
PAPER_TMS = {(5, 2): {"C": 20, "importance_coeff": 3e-3, "pnorm": 1.0},
             (40, 10): {"C": 200, "importance_coeff": 1e-4, "pnorm": 2.0}}


@dataclass(frozen=True)
class SPDConfig:
    """Hyperparameters of one SPD run; defaults are the paper's common TMS settings with the
    TMS 5-2 ones ([1]_, Appendix "Training details and hyperparameters"). See :meth:`paper`."""

    C: int = 20                         # subcomponents per matrix
    steps: int = 40_000
    batch_size: int = 4096
    lr: float = 1e-3                    # Adam, peak of the cosine schedule
    lr_schedule: str = "cosine"         # cosine (the paper's) | constant
    faithfulness_coeff: float = 1.0
    stochastic_recon_coeff: float = 1.0         # β1
    layerwise_recon_coeff: float = 1.0          # β2
    importance_coeff: float = 3e-3              # β3
    pnorm: float = 1.0                          # p of Σ|g|^p
    n_mask_samples: int = 1                     # S
    gate_hidden: int = 16                       # d_gate
    feature_probability: float = 0.05
    seed: int = 0
    log_every: int = 0                          # record the loss terms every k steps (0: final only)

    def __post_init__(self) -> None:
        for name in ("C", "steps", "batch_size", "n_mask_samples", "gate_hidden"):
            check_range(getattr(self, name), name, 1)
        for name in ("lr", "pnorm"):
            check_range(getattr(self, name), name, 0.0, low_open=True)
        for name in ("faithfulness_coeff", "stochastic_recon_coeff", "layerwise_recon_coeff", "importance_coeff"):
            check_range(getattr(self, name), name, 0.0)
        check_range(self.feature_probability, "feature_probability", 0.0, 1.0, low_open=True)
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")

    @classmethod
    def paper(cls, n_features: int, n_hidden: int, **overrides: object) -> SPDConfig:
        """The paper's settings for TMS ``n_features``-``n_hidden`` (5-2: C = 20, β3 = 3e-3, p = 1;
        40-10: C = 200, β3 = 1e-4, p = 2); other sizes get the 40-10 rule with C = 5·n_features."""
        base = PAPER_TMS.get((n_features, n_hidden), {**PAPER_TMS[(40, 10)], "C": 5 * n_features})
        return cls(**{**base, **overrides})


def sample_batch(n_instances: int, batch_size: int, n_features: int, p: float,
                 generator: torch.Generator) -> torch.Tensor:
    """x_i ~ U[0, 1] with probability p, else 0, independently per feature ([1]_, TMS data;
    the reference code's "at_least_zero_active"): (I, B, F)."""
    shape = (n_instances, batch_size, n_features)
    x = torch.rand(shape, generator=generator)
    return x * (torch.rand(shape, generator=generator) < p)


def faithfulness_loss(model: SPDModel) -> torch.Tensor:
    """(1/N) Σ_l Σ_ij (W^l − Σ_c U^l_{:,c} V^l_{c,:})²_ij, N = target parameters ([1]_, eq. 3): (I,)."""
    diffs = [(W - torch.bmm(U, V)).square().sum((1, 2)) for W, (U, V) in zip(model.targets(), model.factors())]
    n_params = sum(W[0].numel() for W in model.targets())
    return torch.stack(diffs).sum(0) / n_params


def stochastic_masks(g: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """m = g + (1 − g) ⊙ r, r ~ U(0, 1) ([1]_, eq. 2; reparametrised, so gradients reach g)."""
    return g + (1 - g) * torch.rand(g.shape, generator=generator)


def compact_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's non-zero samples first, then one x = 0 row standing for all zero samples:
    (x_c (I, K, F), weights w (I, K) with Σ_k w_k = B).

    Exact, not an approximation: at x = 0 every inner activation h^l is 0, so the masked and the
    target model both output ReLU(b) (zero reconstruction loss for any mask) and the importances
    are γ(0), the same for every zero sample; a weighted mean over x_c equals the mean over x.
    At feature probability 0.05 and F = 5, 77 % of the samples are zero. Rows between an
    instance's non-zero samples and the last row are zeros with weight 0 (padding to the largest K).
    """
    B = x.shape[1]
    nonzero = (x != 0).any(-1)                                           # (I, B)
    n = nonzero.sum(1)                                                   # (I,)
    K = int(n.max()) + 1
    if K > B:                                                            # some instance has no zero sample
        return x, torch.ones(x.shape[:2], dtype=x.dtype)
    order = torch.argsort(nonzero.to(torch.int8), dim=1, descending=True, stable=True)[:, :K]
    xc = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[2]))
    w = (torch.arange(K)[None, :] < n[:, None]).to(x.dtype)
    w[:, -1] = (B - n).to(x.dtype)                                       # row K−1 ≥ n is x = 0
    return xc, w


def _mse(y: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean over samples of the mean squared error over features: (I,)."""
    return ((y - target).square().mean(2) * w).sum(1) / w.sum(1)


def stochastic_recon_loss(model: SPDModel, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
                          w: torch.Tensor) -> torch.Tensor:
    """D(f(x | W'(x, r)), f(x | W)) with every layer masked, D = MSE ([1]_, eq. 4, one sample s): (I,)."""
    return _mse(model.masked_forward(x, list(masks.unbind(1))), y, w)


def layerwise_recon_loss(model: SPDModel, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
                         w: torch.Tensor) -> torch.Tensor:
    """(1/L) Σ_l D(f(x | W^1, …, W'^l(x, r), …, W^L), f(x | W)): one layer masked at a time, the
    others the target's ([1]_, eq. 5, one sample s): (I,)."""
    L = masks.shape[1]
    losses = [_mse(model.masked_forward(x, [masks[:, k] if k == l else None for k in range(L)]), y, w)
              for l in range(L)]
    return torch.stack(losses).mean(0)


def importance_minimality_loss(g_upper: torch.Tensor, pnorm: float, w: torch.Tensor) -> torch.Tensor:
    """Mean over samples of Σ_l Σ_c |g^l_c(x)|^p on the upper-leaky importances ([1]_, eq. 7): (I,).
    ``g_upper`` is (I, L, B, C), ``w`` the sample weights (I, B)."""
    return (g_upper.pow(pnorm).sum((1, 3)) * w).sum(1) / w.sum(1)


def spd_losses(model: SPDModel, x: torch.Tensor, config: SPDConfig, generator: torch.Generator,
               w: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The four loss terms and their weighted sum ``total`` per instance, (I,) each, on the batch
    x (I, B, F) with sample weights ``w`` (I, B) (default: all 1; see :func:`compact_batch`)."""
    w = torch.ones(x.shape[:2]) if w is None else w
    y, hid = model.target_forward(x)
    raw = model.gate_logits(model.inner_acts(x, hid))
    g = lower_leaky_hard_sigmoid(raw)
    zero = x.new_zeros(x.shape[0])
    terms = {"faithfulness": faithfulness_loss(model), "stochastic_recon": zero, "stochastic_recon_layerwise": zero,
             "importance_minimality": importance_minimality_loss(upper_leaky_hard_sigmoid(raw), config.pnorm, w)}
    S = config.n_mask_samples
    for _ in range(S):
        masks = stochastic_masks(g, generator)
        terms["stochastic_recon"] = terms["stochastic_recon"] + stochastic_recon_loss(model, x, y, masks, w) / S
        terms["stochastic_recon_layerwise"] = (terms["stochastic_recon_layerwise"]
                                               + layerwise_recon_loss(model, x, y, masks, w) / S)
    terms["total"] = (config.faithfulness_coeff * terms["faithfulness"]
                      + config.stochastic_recon_coeff * terms["stochastic_recon"]
                      + config.layerwise_recon_coeff * terms["stochastic_recon_layerwise"]
                      + config.importance_coeff * terms["importance_minimality"])
    return terms


def lr_factor(step: int, steps: int, schedule: str) -> float:
    """Cosine decay cos(π/2 · step/(steps − 1)) from 1 to 0 (the reference code's schedule) or 1."""
    if schedule == "constant" or steps == 1:
        return 1.0
    return math.cos(0.5 * math.pi * step / (steps - 1))


def decompose(model: SPDModel, config: SPDConfig, *, progress: bool | ProgressFn = False) -> np.ndarray:
    """Train ``model`` in place with Adam on fresh batches ([1]_, Appendix "SPD Pseudocode").

    Returns the logged loss terms, shape (n_logged, len(LOSS_TERMS), I): every ``config.log_every``
    steps and after the last step (on a fresh batch, without an update).
    """
    gen = torch.Generator().manual_seed(int(config.seed) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    I, F_ = model.W.shape[0], model.W.shape[2]
    bar, callback = _progress(progress, config.steps, I)
    tick, logged = max(1, config.steps // 50), []
    for step in range(config.steps + 1):
        x, w = compact_batch(sample_batch(I, config.batch_size, F_, config.feature_probability, gen))
        terms = spd_losses(model, x, config, gen, w)
        if step == config.steps or (config.log_every and step % config.log_every == 0):
            logged.append(torch.stack([terms[k].detach() for k in LOSS_TERMS]).numpy())
        if step == config.steps:
            break
        for group in opt.param_groups:
            group["lr"] = config.lr * lr_factor(step, config.steps, config.lr_schedule)
        opt.zero_grad(set_to_none=True)
        terms["total"].sum().backward()       # instances are independent: each gets its own gradient
        opt.step()
        if (step + 1) % tick == 0 or step + 1 == config.steps:
            if bar is not None:
                bar.update(step + 1 - bar.n)
            if callback is not None:
                callback(step + 1, config.steps, float(terms["total"].detach().mean()))
    if bar is not None:
        bar.close()
    return np.stack(logged)


def _progress(progress: bool | ProgressFn, steps: int, n: int):
    """(tqdm bar or None, callback or None) as in :func:`~workbench.superposition.training.train_toys`."""
    if callable(progress):
        return None, progress
    if progress and not os.environ.get("TQDM_DISABLE"):
        from tqdm.auto import tqdm
        return tqdm(total=steps, desc=f"SPD ×{n}", leave=False), None
    return None, None


def _target_weights(target: ToyModels | xr.Dataset | tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (I, H, F), b (I, F)) float32 from a ReLU ``ToyModels``, a toy Dataset or a (W, b) pair."""
    if isinstance(target, ToyModels):
        if target.variant != "relu":
            raise ValueError(f"SPD decomposes the relu toy model, got variant {target.variant!r}")
        W, b = target.W.detach().cpu(), target.b.detach().cpu()
    elif isinstance(target, xr.Dataset):
        if "W" not in target or "b" not in target:
            raise ValueError("target Dataset needs 'W' (instance, hidden, feature) and 'b' (instance, feature)")
        W, b = target["W"].transpose("instance", "hidden", "feature").values, target["b"].values
    elif isinstance(target, tuple) and len(target) == 2:
        W, b = target
    else:
        raise TypeError(f"target must be a ToyModels, a toy Dataset or a (W, b) pair, got {type(target).__name__}")
    W = as_tensor(W, "W", ndim=3, dtype=torch.float32)
    b = as_tensor(b, "b", ndim=2, dtype=torch.float32)
    if tuple(b.shape) != (W.shape[0], W.shape[2]):
        raise ValueError(f"b must have shape (instance, feature) = {(W.shape[0], W.shape[2])}, got {tuple(b.shape)}")
    return W, b


def spd(target: ToyModels | xr.Dataset | tuple, *, identity: bool = False, config: SPDConfig | None = None,
        progress: bool | ProgressFn = False, **overrides: object) -> xr.Dataset:
    """Decompose every instance of a toy model of superposition with SPD ([1]_), in one batch.

    Parameters
    ----------
    target : ToyModels, xarray.Dataset or (W, b)
        Trained relu toy models: W (instance, hidden, feature), b (instance, feature).
    identity : bool
        Decompose the "+ identity" model ReLU(Wᵀ I W x + b) (an H×H identity between W and Wᵀ).
    config : SPDConfig, optional
        Default :meth:`SPDConfig.paper` for the target's size; ``overrides`` replace fields.
    progress : bool or callable
        tqdm bar, or ``progress(step, steps, mean_loss)`` about 50 times.

    Returns
    -------
    xarray.Dataset
        :func:`~workbench.superposition.spd_model.to_dataset` of the trained decomposition, with
        ``loss`` (instance, log_step, term) and the config in ``attrs``.
    """
    W, b = _target_weights(target)
    config = replace(config or SPDConfig.paper(W.shape[2], W.shape[1]), **overrides)
    if config.C < W.shape[2]:
        raise ValueError(f"C={config.C} is smaller than the number of features {W.shape[2]}: "
                         "SPD needs at least one subcomponent per feature")
    model = SPDModel(W, b, identity=identity, C=config.C, gate_hidden=config.gate_hidden,
                     generator=torch.Generator().manual_seed(int(config.seed)))
    log = decompose(model, config, progress=progress)
    steps = [*range(0, config.steps, config.log_every or config.steps + 1), config.steps][-len(log):]
    ds = to_dataset(model)
    ds["loss"] = (("log_step", "term", "instance"), log)
    ds = ds.assign_coords(log_step=steps, term=list(LOSS_TERMS))
    ds.attrs.update({k: v for k, v in asdict(config).items()})
    return ds


def train_targets(n_features: int, n_hidden: int, n_instances: int = 1, *, steps: int = 10_000,
                  batch_size: int | None = None, lr: float = 5e-3, feature_probability: float = 0.05,
                  seed: int = 0, progress: bool | ProgressFn = False) -> xr.Dataset:
    """Train ``n_instances`` TMS targets (seeds) in one batch in the paper's setting ([1]_, Appendix
    "Target model training": feature probability 0.05, U[0, 1] values, lr 5e-3 constant, 10k steps,
    batch 1024 for 5-2 and 8192 for 40-10, the default here for F > 5).

    Our :func:`~workbench.superposition.training.train_toys` uses Adam where the paper uses AdamW
    with weight decay 0.01. Returns the toy Dataset (``W``, ``b``, ``loss``, ...).
    """
    batch_size = batch_size or (1024 if n_features <= 5 else 8192)
    model = ToyModels(n_instances, n_features, n_hidden, feature_probability=feature_probability, seed=seed)
    train_toys(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed + 1, progress=progress)
    ds = toy_dataset(model)
    ds.attrs.update(steps=int(steps), batch_size=int(batch_size), lr=float(lr), seed=int(seed))
    return ds
