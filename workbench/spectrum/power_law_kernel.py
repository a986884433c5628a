"""Power-law tail fit over every xmin candidate, for a batch of (ragged) spectra in one launch.

For sorted eigenvalues x_1 <= ... <= x_n of one layer and each candidate x_i (Clauset, Shalizi &
Newman 2009, SIAM Review 51):

    alpha_i = 1 + n_i / sum_{j>=i} ln(x_j / x_i)                       (eq. 3.1, n_i = n - i)
    D_i     = max_{j>=i} | 1 - (x_j / x_i)^(1 - alpha_i) - (j - i)/n_i |  (eq. 3.9)

and xmin = argmin_i D_i. The O(n^2) part, D_i for all (layer, candidate) pairs, is one Triton
launch over a ``(layer, candidate block)`` grid; each program streams the layer's tail in blocks.
Everything else (sort, suffix sums, weightwatcher's candidate rules, argmin) is O(n) torch: the
reference itself, called with the kernel as its KS step (``power_law_batch(..., ks=...)``).

The **reference** is the spectrum lens' vectorised torch fit,
:func:`workbench.spectrum.power_law.power_law_batch` (weightwatcher 0.7.7 conventions); the
Triton path reproduces it step for step and the tests compare the two.

Ragged input (a list of 1-D spectra of different lengths) is padded with ``thresh`` (values at or
below ``thresh`` are never fitted, so padding does not change any fit) and sorted, so padding sits
in front; Triton programs whose candidates all lie in the padding return immediately, so a padded
layer costs O(n_fit^2), not O(n_max^2).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import torch

from workbench.backend import (
    HAS_TRITON,
    check_runnable,
    choose_backend,
    target_device,
    tl,
    triton,
)
from workbench.spectrum.power_law import EVALS_THRESH, power_law_batch
from workbench.validation import as_tensor

__all__ = ["ks_distances_triton", "pad_spectra", "power_law_fit", "power_law_fit_torch",
           "power_law_fit_triton"]

if HAS_TRITON:

    @triton.jit
    def _expm1(y):
        """exp(y) - 1 to full relative accuracy (Kahan's trick: (u-1)·y/ln u with u = e^y); the
        Triton interpreter has no libdevice.expm1."""
        u = tl.exp(y)
        um1 = u - 1.0
        safe = tl.where((u == 1.0) | (um1 == -1.0) | (u == float("inf")), 2.0, u)
        out = um1 * y / tl.log(safe)
        out = tl.where(u == 1.0, y, out)
        out = tl.where(um1 == -1.0, -1.0, out)
        return tl.where(u == float("inf"), float("inf"), out)

    @triton.jit
    def _ks_kernel(logx_ptr, alpha_ptr, first_ptr, ks_ptr, n,
                   BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
        """ks[r, i] = max_{i<=j<n} |1 - exp((1-alpha[r,i])·(logx[r,j]-logx[r,i])) - (j-i)/(n-i)|,
        NaN if any term is NaN (as torch.amax); rows are contiguous of length n."""
        row = tl.program_id(0)
        i0 = tl.program_id(1) * BLOCK_I
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mask_i = offs_i < n
        base = row.to(tl.int64) * n
        first = tl.load(first_ptr + row)
        logx_i = tl.load(logx_ptr + base + offs_i, mask=mask_i, other=0.0)
        alpha = tl.load(alpha_ptr + base + offs_i, mask=mask_i, other=2.0)
        one_m_a = 1.0 - alpha
        n_tail = (n - offs_i).to(tl.float64)
        acc = tl.zeros([BLOCK_I], dtype=tl.float64)
        nan = tl.zeros([BLOCK_I], dtype=tl.int32)
        if i0 + BLOCK_I > first:  # some candidate of this block is a fitted eigenvalue
            j_start = tl.maximum(i0, first)
            for j0 in range(j_start, n, BLOCK_J):
                offs_j = j0 + tl.arange(0, BLOCK_J)
                mask_j = offs_j < n
                logx_j = tl.load(logx_ptr + base + offs_j, mask=mask_j, other=0.0)
                t = logx_j[None, :] - logx_i[:, None]
                cdf = -_expm1(t * one_m_a[:, None])
                k = (offs_j[None, :] - offs_i[:, None]).to(tl.float64) / n_tail[:, None]
                d = tl.abs(cdf - k)
                valid = mask_j[None, :] & (offs_j[None, :] >= offs_i[:, None])
                isnan = valid & (d != d)  # noqa: PLR0124 (NaN test)
                d = tl.where(valid & (d == d), d, 0.0)  # noqa: PLR0124
                acc = tl.maximum(acc, tl.max(d, axis=1))
                nan = tl.maximum(nan, tl.max(isnan.to(tl.int32), axis=1))
        acc = tl.where(nan > 0, float("nan"), acc)
        tl.store(ks_ptr + base + offs_i, acc, mask=mask_i)


def pad_spectra(evals: Sequence, pad_value: float) -> torch.Tensor:
    """Stack 1-D spectra of different lengths into a ``(layer, eig)`` float64 tensor, padding the
    short ones with ``pad_value`` in front (the end a sort would put them)."""
    rows = [as_tensor(e, f"evals[{k}]", ndim=1, dtype=torch.float64) for k, e in enumerate(evals)]
    n = max(r.numel() for r in rows)
    out = torch.full((len(rows), n), float(pad_value), dtype=torch.float64, device=rows[0].device)
    for k, r in enumerate(rows):
        out[k, n - r.numel():] = r.to(out.device)
    return out


def _as_batch(evals, thresh: float, device: torch.device) -> tuple[torch.Tensor, bool]:
    """(layer, eig) float64 tensor on ``device``; True if the input was ragged (a list)."""
    if isinstance(evals, (list, tuple)):
        if not evals:
            raise ValueError("evals must hold at least one spectrum")
        return pad_spectra(evals, thresh).to(device), True
    t = as_tensor(evals, "evals", ndim=(1, 2), dtype=torch.float64)
    return (t[None] if t.ndim == 1 else t).to(device), False


def power_law_fit_torch(x: torch.Tensor, thresh: float) -> dict[str, torch.Tensor]:
    """The reference: the spectrum lens' :func:`~workbench.spectrum.power_law.power_law_batch`."""
    return power_law_batch(x, thresh=thresh)


def ks_distances_triton(logx: torch.Tensor, alpha: torch.Tensor, first: torch.Tensor,
                        block_i: int = 32, block_j: int = 64) -> torch.Tensor:
    """:func:`~workbench.spectrum.power_law.ks_distances` of every (row, candidate) in one launch
    of :func:`_ks_kernel`; ``first`` (b,) is each row's first fitted index (programs below it
    return at once)."""
    b, n = logx.shape
    logx, alpha = logx.contiguous(), alpha.contiguous()
    check_runnable(_ks_kernel, logx.device)
    ks = torch.empty_like(logx)
    grid = (b, triton.cdiv(n, block_i))
    _ks_kernel[grid](logx, alpha, first.to(torch.int32).contiguous(), ks, n,
                     BLOCK_I=block_i, BLOCK_J=block_j)
    return ks


def power_law_fit_triton(evals: torch.Tensor, thresh: float, *, block_i: int = 32,
                         block_j: int = 64) -> dict[str, torch.Tensor]:
    """The reference fit :func:`~workbench.spectrum.power_law.power_law_batch` with its KS step
    (``ks=``) the Triton launch :func:`ks_distances_triton`: every rule of the reference
    (candidate set, small-sample fit, fallbacks, argmin) runs unchanged; only the O(n^2) KS
    evaluation moves to the kernel."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not importable; use backend='torch'")
    x = torch.sort(evals.to(torch.float64), dim=-1).values
    first = (~(x > thresh)).sum(-1)  # the reference's first fitted index (its sort is the same)

    def ks(logx: torch.Tensor, alpha: torch.Tensor, n_tail: torch.Tensor) -> torch.Tensor:
        return ks_distances_triton(logx, alpha, first, block_i, block_j)

    return power_law_batch(x, thresh=thresh, ks=ks)


def power_law_fit(evals, *, thresh: float | None = None, device=None,
                  backend: str = "auto") -> dict[str, torch.Tensor]:
    """Power-law tail fit (alpha, xmin, KS distance, tail size) of many spectra at once.

    Parameters
    ----------
    evals : array-like ``(eig,)`` / ``(layer, eig)``, or a list of 1-D spectra (ragged)
        Eigenvalues, any order; values ``<= thresh`` are not fitted (weightwatcher convention).
    thresh : float, optional
        Eigenvalue floor, default :data:`workbench.spectrum.power_law.EVALS_THRESH` (1e-5).
    device : None, "auto", "cpu", "cuda", torch.device
        Where to compute; ``None`` keeps the input's device.
    backend : {"auto", "triton", "torch"}
        ``auto``: the Triton kernel on CUDA, the torch reference elsewhere. ``triton`` on the CPU
        needs ``TRITON_INTERPRET=1`` (Triton's interpreter; for tests, slow).

    Returns
    -------
    dict of ``(layer,)`` tensors
        ``alpha`` (Clauset et al. 2009, eq. 3.1), ``xmin`` (argmin of eq. 3.9 over all candidates),
        ``ks_distance``, ``tail_size`` (eigenvalues >= xmin), ``n_fit`` (eigenvalues > thresh);
        NaN / 0 for layers with fewer than 2 fitted eigenvalues.
    """
    thresh = EVALS_THRESH if thresh is None else thresh
    if not isinstance(thresh, (int, float)) or isinstance(thresh, bool) or not math.isfinite(thresh):
        raise ValueError(f"thresh must be a finite float, got {thresh!r}")
    dev = target_device(device, evals)
    x, ragged = _as_batch(evals, float(thresh), dev)
    if bool((x < -1e-8 * x.abs().max()).any()):
        raise ValueError("evals must be non-negative (eigenvalues of W^T W)")
    if choose_backend(backend, dev) == "triton":
        return power_law_fit_triton(x, float(thresh))
    if not ragged:
        return power_law_fit_torch(x, float(thresh))
    # CPU reference on ragged input: one call per group of equal length (no O(n_max^2) padding)
    lengths = [int(torch.as_tensor(e).numel()) for e in evals]
    groups: dict[int, list[int]] = defaultdict(list)
    for k, m in enumerate(lengths):
        groups[m].append(k)
    out: dict[str, torch.Tensor] = {}
    for m, members in groups.items():
        res = power_law_fit_torch(x[members][:, x.shape[1] - m:], float(thresh))
        for key, v in res.items():
            if key not in out:
                out[key] = torch.empty(len(lengths), dtype=v.dtype, device=dev)
            out[key][members] = v
    return out
