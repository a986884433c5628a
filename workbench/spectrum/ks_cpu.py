"""KS distances of the power-law fit on the CPU with pruning: the fast path of the bootstrap.

The fit picks xmin = argmin_i D_i over the candidates (Clauset, Shalizi & Newman 2009, SIAM
Review 51, eq. 3.9):

    D_i = max_{j >= i} | 1 - (x_j / x_i)^(1 - alpha_i) - (j - i) / n_i |

Only the minimum matters, so a candidate's scan over j can stop as soon as its running maximum
reaches the smallest complete D of an admissible candidate so far (alpha_i > 1): that candidate
can no longer be the first minimum, and the partial maximum it returns is still >= that bound.
Coarse passes over the candidates come first, so the bound is tight before most scans start. Compiled
with Numba (``nogil``: rows run in parallel on a :class:`~workbench.parallel.WorkerPool`), one
pass per term instead of torch's seven, no (b, c, n) temporaries.

The chosen xmin, alpha and D are those of the reference
(:func:`workbench.spectrum.power_law.ks_distances` inside
:func:`~workbench.spectrum.power_law.power_law_batch`) up to libm's ``expm1`` against torch's
(≤ 1 ulp); the test beside it compares the two. Rows fitted with the small-sample rule (fewer
than ``SMALL_N_CUTOFF`` eigenvalues) are scanned in full: their admissibility rules differ.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from workbench.spectrum.power_law import SMALL_N_CUTOFF, KsFunction

__all__ = ["ks_distances_pruned", "ks_pruned_"]

STRIDES = np.array([64, 16, 4, 1])  # candidate passes, coarse to fine (the last must be 1)
BLOCK = 8  # terms per block of a scan (one expm1 bounds a block)
_JIT = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_JIT)
def _scan(lx: np.ndarray, alpha: float, i: int, bound: float) -> float:
    """max_{j>=i} |e_j + k_j|, e_j = expm1((ln x_j - ln x_i)(1 - alpha)), k_j = (j-i)/(n-i),
    stopping once it reaches ``bound`` (NaN as soon as a term is NaN, as torch's amax).

    e_j falls and k_j rises with j (x sorted, alpha > 1), so over a block j0..j1 every term lies
    in [e_j1 + k_j0, e_j0 + k_j1]: blocks whose bound cannot raise the running maximum are
    skipped after one ``expm1`` (the bound is exact in floating point: rounding is monotone).
    """
    n = lx.shape[0]
    one_m_a = 1.0 - alpha
    n_tail = float(n - i)
    li = lx[i]
    best = 0.0
    e_hi = math.expm1((lx[i] - li) * one_m_a)  # >= every e_j of the block
    j0 = i
    while j0 < n:
        j1 = min(j0 + BLOCK, n) - 1
        e_lo = math.expm1((lx[j1] - li) * one_m_a)
        ub = max(abs(e_lo + (j0 - i) / n_tail), abs(e_hi + (j1 - i) / n_tail))
        if not ub <= best:  # also when NaN: evaluate, and return the NaN
            for j in range(j0, j1 + 1):
                v = abs(math.expm1((lx[j] - li) * one_m_a) + (j - i) / n_tail)
                if v != v:  # noqa: PLR0124 (NaN test)
                    return v
                if v > best:
                    best = v
            if best >= bound:
                return best
        e_hi = e_lo
        j0 = j1 + 1
    return best


@numba.njit(**_JIT)
def ks_pruned_(logx: np.ndarray, alpha: np.ndarray, first: np.ndarray, prune: np.ndarray,
               out: np.ndarray) -> None:
    """Fill ``out`` (b, n) with the KS distance of every candidate first[r] <= i < n-1 of each
    row (1 elsewhere); rows with ``prune[r]`` stop scans that can no longer give the minimum.
    Candidates go coarse to fine (every 64th, 16th, 4th, then the rest): D varies slowly with
    i, so the coarse passes find a bound close to the minimum before most scans start."""
    b, n = logx.shape
    done = np.empty(n, dtype=np.bool_)
    for r in range(b):
        f = first[r]
        out[r, :] = 1.0
        done[:] = False
        bound = np.inf
        for stride in STRIDES if prune[r] else STRIDES[-1:]:
            for i in range(f, n - 1, stride):
                if done[i]:
                    continue
                done[i] = True
                d = _scan(logx[r], alpha[r, i], i, bound)
                out[r, i] = d
                if prune[r] and alpha[r, i] > 1.0 and d < bound:
                    bound = d


def ks_distances_pruned(first: torch.Tensor) -> KsFunction:
    """The ``ks=`` step of :func:`~workbench.spectrum.power_law.power_law_batch` for sorted rows
    whose first fitted index is ``first`` (b,): :func:`ks_pruned_` on the CPU."""
    first_np = first.cpu().numpy().astype(np.int64)

    def ks(logx: torch.Tensor, alpha: torch.Tensor, n_tail: torch.Tensor) -> torch.Tensor:
        n = logx.shape[1]
        prune = (n - first_np) >= SMALL_N_CUTOFF
        out = np.empty(tuple(logx.shape))
        ks_pruned_(np.ascontiguousarray(logx.cpu().numpy()), np.ascontiguousarray(alpha.cpu().numpy()),
                   first_np, prune, out)
        return torch.from_numpy(out).to(logx.device)

    return ks
