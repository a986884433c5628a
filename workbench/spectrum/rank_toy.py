"""The gradual-rank-increase toy: one softmax attention head with diagonal weights, small init.

Boix-Adsera et al. [1]_ (Sec. 3) prove incremental learning for transformers whose weights are
diagonal and initialised at scale α: training under gradient flow passes through stages, the
stage boundaries fall at fixed multiples of log(1/α) in time, and between stages the rank of
ΔW = W_t − W_0 grows by at most one. This module trains the smallest such model,

.. math:: f(X) = \\operatorname{softmax}\\!\\big(X W_Q W_K^\\top X^\\top\\big)\\, X W_V W_O^\\top ,
   \\qquad W_\\cdot = \\operatorname{diag}(\\cdot),\\; W_\\cdot(0) = α\\,\\mathcal{N}(0, I),

on a teacher with diagonal weights ``diag(a*) = W_Q* W_K*ᵀ`` and ``diag(b*) = W_V* W_O*ᵀ``
(sequence X of ``n`` tokens in ``R^d`` with i.i.d. N(0, 1) entries, squared loss), by full-batch
gradient descent, and returns the loss over the rescaled time ``t / log(1/α)`` (``t`` = lr · step)
with :func:`~workbench.spectrum.delta.delta_spectrum` of the four weight matrices.

References
----------
.. [1] Boix-Adsera, Littwin, Abbe, Bengio, Susskind (2023). Transformers learn through gradual rank
   increase. NeurIPS. arXiv:2306.07042
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from workbench.parallel import torch_threads
from workbench.spectrum.delta import delta_spectrum

__all__ = ["gradual_rank_toy"]

LAYERS = ("W_Q", "W_K", "W_V", "W_O")


def _attention(X: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """softmax(X diag(a) Xᵀ) X diag(b) for a batch X (batch, n, d)."""
    return torch.softmax(torch.einsum("bsi,i,bti->bst", X, a, X), -1) @ (X * b)


def gradual_rank_toy(alpha: float, *, steps: int = 3000, lr: float = 0.05, every: int = 10,
                     a_star: Sequence[float] = (2.0, 1.0, 0, 0, 0, 0),
                     b_star: Sequence[float] = (2.0, 1.0, 0.5, 0, 0, 0),
                     n_tokens: int = 8, n_samples: int = 256, seed: int = 0,
                     rtol: float = 1e-2, atol: float = 0.1) -> xr.Dataset:
    """Train the diagonal attention toy of Boix-Adsera et al. [1]_ from init scale ``alpha``.

    Parameters
    ----------
    alpha : initialisation scale α > 0 of the diagonals of W_Q, W_K, W_V, W_O.
    steps, lr, every : gradient-descent steps, learning rate, and the recording interval.
    a_star, b_star : the teacher's diagonals of W_Q W_Kᵀ and W_V W_Oᵀ (length d).
    n_tokens, n_samples, seed : sequence length, number of training sequences, seed of data and init.
    rtol, atol : σ_i of ΔW counts towards ``numerical_rank`` when σ_i > max(rtol·σ_1, atol).

    Returns
    -------
    xr.Dataset: :func:`delta_spectrum` of layers ``W_Q, W_K, W_V, W_O`` (step, layer, sv) with
    ``loss`` (step), ``time`` = lr·step and ``rescaled_time`` = time / log(1/α) (step); attrs
    ``alpha`` and ``teacher_rank`` (JSON: support size of a* for W_Q, W_K and of b* for W_V, W_O).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if len(a_star) != len(b_star):
        raise ValueError(f"a_star and b_star must have one length d, got {len(a_star)} and {len(b_star)}")
    if steps < 1 or every < 1:
        raise ValueError(f"steps and every must be >= 1, got {steps}, {every}")
    d = len(a_star)
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n_samples, n_tokens, d, generator=gen, dtype=torch.float64)
    a_t, b_t = (torch.as_tensor(v, dtype=torch.float64) for v in (a_star, b_star))
    Y = _attention(X, a_t, b_t)
    theta = (alpha * torch.randn(4, d, generator=gen, dtype=torch.float64)).requires_grad_()
    states, losses = {}, []
    with torch_threads(1):
        for step in range(steps + 1):
            q, k, v, o = theta
            loss = ((_attention(X, q * k, v * o) - Y) ** 2).mean()
            if step % every == 0:
                states[step] = {name: torch.diag(w) for name, w in zip(LAYERS, theta.detach())}
                losses.append(loss.item())
            if step == steps:
                break
            (grad,) = torch.autograd.grad(loss, theta)
            with torch.no_grad():
                theta -= lr * grad
    ds = delta_spectrum(states, rtol=rtol, atol=atol)
    time = lr * ds.step.values.astype(float)
    support = {"W_Q": int((a_t != 0).sum()), "W_K": int((a_t != 0).sum()),
               "W_V": int((b_t != 0).sum()), "W_O": int((b_t != 0).sum())}
    return ds.assign(loss=("step", np.asarray(losses)), time=("step", time),
                     rescaled_time=("step", time / math.log(1 / alpha))).assign_attrs(
        alpha=alpha, teacher_rank=str(support).replace("'", '"'),
        model="softmax(X W_Q W_K^T X^T) X W_V W_O^T, diagonal weights, full-batch GD")
