"""Power-law tail fit of eigenvalue spectra: alpha, xmin and KS distance, batched over layers.

Batched over layers that share a number of eigenvalues and vectorised over all xmin candidates at
once (sort, cumulative sums, one KS evaluation per cache-sized block of candidates against their
tails only, n²/2 terms) instead of the per-candidate Python loop of WeightWatcher. Conventions
follow weightwatcher 0.7.7 (``WW_powerlaw.WWFit``) so the numbers agree with it:

- eigenvalues ``<= 1e-5`` are dropped before the fit (``EVALS_THRESH``);
- every remaining eigenvalue except the largest is an xmin candidate;
- fewer than 20 remaining eigenvalues switch to the small-sample fit (bias-corrected MLE, tails of
  at least 8 eigenvalues); xmin is then still chosen by minimum D, which is what weightwatcher
  0.7.7 does in effect (``WWFit.__init__`` re-selects by D after its small-sample objective).

The O(n²) step, the KS distance of every candidate, is a parameter of :func:`power_law_batch`
(``ks=``): :func:`ks_distances` here, the Triton kernel in
:mod:`workbench.spectrum.power_law_kernel`, the pruned Numba scan in
:mod:`workbench.spectrum.ks_cpu`. The Dataset-level fit with its bootstrap interval is
:func:`workbench.spectrum.fit.fit_power_law`.

References
----------
Clauset, Shalizi & Newman (2009), "Power-law distributions in empirical data", SIAM Review 51,
eq. (3.1) (continuous MLE) and eq. (3.9) (KS distance). Martin & Mahoney (2021), "Implicit
self-regularization in deep neural networks", JMLR 22, Sec. 5 (heavy-tailed alpha).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

EVALS_THRESH = 1e-5  # weightwatcher: eigenvalues at or below this are not fitted
SMALL_N_CUTOFF = 20  # weightwatcher: below this many eigenvalues use the small-sample fit
SMALL_N_KMIN = 8  # weightwatcher: minimum tail size in the small-sample fit
CHUNK_ELEMS = 1 << 17  # elements per (layer, candidate, eigenvalue) KS block (1 MiB, cache-sized)

KsFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``ks(logx, alpha, n_tail) -> D``: KS distance of every (row, candidate), all ``(b, n)``."""

__all__ = ["CHUNK_ELEMS", "EVALS_THRESH", "KsFunction", "ks_distances", "power_law_batch"]


def ks_distances(logx: torch.Tensor, alpha: torch.Tensor, n_tail: torch.Tensor, *,
                 chunk_elems: int = CHUNK_ELEMS) -> torch.Tensor:
    """KS distance of every (row r, candidate i) (Clauset et al. 2009, eq. 3.9):

        D[r, i] = max_{j >= i} | 1 - (x_j / x_i)^(1 - alpha[r, i]) - (j - i) / n_tail[i] |

    Parameters
    ----------
    logx : (b, n) ln x of the sorted eigenvalues (0 where not fitted).
    alpha : (b, n) the MLE exponent of each candidate tail.
    n_tail : (b, n) with equal rows ``n - i``.
    chunk_elems : size of one block of (row, candidate, eigenvalue) terms.

    Blocks of candidates [i0, i1) against the tail j >= i0 only (the lower triangle is never
    formed), each block sized to stay in cache. Terms with j < i inside a block vanish exactly:
    ln(x_j/x_i) and (j-i)/n_tail are multiplied by 0 there, so they add |expm1(0) + 0| = 0 to the
    max, as masking would.
    """
    b, n = logx.shape
    dev, dt = logx.device, logx.dtype
    out = torch.ones_like(alpha)
    one_m_a = 1.0 - alpha
    i0 = 0
    while i0 < n:
        i1 = i0 + max(1, min(n - i0, chunk_elems // max(1, b * (n - i0))))
        j_minus_i = (torch.arange(i0, n, device=dev, dtype=dt)[None, :]
                     - torch.arange(i0, i1, device=dev, dtype=dt)[:, None])  # (c, n - i0)
        upper = (j_minus_i >= 0).to(dt)
        k = j_minus_i.mul_(upper).div_(n_tail[0, i0:i1, None])  # empirical CDF step (j-i)/n_tail
        t = logx[:, None, i0:] - logx[:, i0:i1, None]  # (b, c, n - i0): ln(x_j / x_i)
        t.mul_(upper).mul_(one_m_a[:, i0:i1, None]).expm1_()  # -(theoretical CDF)
        out[:, i0:i1] = t.add_(k).abs_().amax(-1)
        i0 = i1
    return out


def power_law_batch(evals: torch.Tensor, thresh: float = EVALS_THRESH, *,
                    ks: KsFunction = ks_distances) -> dict[str, torch.Tensor]:
    """Power-law tail fit of each row of ``evals`` (``(batch, n)``, any order, float64).

    alpha(xmin) = 1 + n_tail / sum_{x_j >= xmin} ln(x_j / xmin)   (Clauset et al. 2009, eq. 3.1)
    D(xmin) = max_j |1 - (x_j/xmin)^(1-alpha) - k_j/n_tail|        (eq. 3.9, empirical CDF k/n)

    evaluated for every candidate xmin at once (D by ``ks``, :func:`ks_distances` by default);
    xmin = argmin D. Rows with fewer than ``SMALL_N_CUTOFF`` eigenvalues above ``thresh`` use
    weightwatcher's small-sample variant (bias-corrected alpha = 1 + (n_tail - 1)/sum ln(x/xmin)
    over tails of at least 8; xmin = argmin D as weightwatcher effectively does — its
    ``D - 0.868/sqrt(n_tail)`` objective is overridden by ``WWFit.__init__``).

    Returns tensors of shape ``(batch,)``: ``alpha``, ``xmin``, ``ks_distance``, ``tail_size``
    (eigenvalues >= xmin, weightwatcher's ``num_pl_spikes``), ``n_fit`` (eigenvalues > thresh).
    Rows with fewer than 2 eigenvalues above ``thresh`` get NaN.
    """
    x, _ = torch.sort(evals.to(torch.float64), dim=-1)
    b, n = x.shape
    keep = x > thresh
    first = (~keep).sum(-1)  # index of the first fitted eigenvalue in each row
    n_fit = n - first
    logx = torch.log(torch.where(keep, x, torch.ones_like(x)))
    idx = torch.arange(n, device=x.device)
    suffix = torch.flip(torch.cumsum(torch.flip(logx, [-1]), -1), [-1])  # S_i = sum_{j>=i} ln x_j
    n_tail = (n - idx).to(torch.float64).expand(b, n)
    s = suffix - n_tail * logx  # sum_{j>=i} ln(x_j / x_i)
    small = (n_fit < SMALL_N_CUTOFF)[:, None]
    is_cand = (idx[None, :] >= first[:, None]) & (idx[None, :] < n - 1)
    alpha_std = 1.0 + n_tail / s
    alpha_bc = 1.0 + (n_tail - 1.0) / s
    alpha = torch.where(small, alpha_bc, alpha_std)
    d = ks(logx, alpha, n_tail)
    # weightwatcher: D stays 1 where alpha <= 1; the small-sample fit also skips tails shorter
    # than 8 and degenerate ones (alpha 0 there), and the final choice is argmin D in both cases
    ok_small = (n_tail >= SMALL_N_KMIN) & (s > 1e-12) & (alpha_bc > 1)
    # small-N rows without any admissible tail: the whole fitted range is the tail
    none_ok = small[:, 0] & ~(ok_small & is_cand).any(-1)
    fallback = none_ok[:, None] & (idx[None, :] == first[:, None]) & (s > 1e-12)
    ok_small = ok_small | fallback
    d_used = torch.where(small, torch.where(ok_small, d, torch.ones_like(d)),
                         torch.where(alpha_std > 1, d, torch.ones_like(d)))
    alpha = torch.where(small & ~ok_small, torch.zeros_like(alpha), alpha)
    obj = torch.where(is_cand, torch.nan_to_num(d_used, nan=1.0), torch.full_like(d, math.inf))
    best = torch.argmin(obj, dim=-1)[:, None]  # first minimum, like np.argmin
    a, xm, dist = alpha.gather(1, best)[:, 0], x.gather(1, best)[:, 0], d_used.gather(1, best)[:, 0]
    degenerate = none_ok & ~fallback.any(-1)  # all fitted eigenvalues equal: no power law
    a = torch.where(degenerate, torch.ones_like(a), a)
    dist = torch.where(degenerate, torch.ones_like(dist), dist)
    bad = n_fit < 2
    nan = torch.full_like(a, math.nan)
    return {"alpha": torch.where(bad, nan, a), "xmin": torch.where(bad, nan, xm),
            "ks_distance": torch.where(bad, nan, dist),
            "tail_size": torch.where(bad, 0, (x >= xm[:, None]).sum(-1)), "n_fit": n_fit}
