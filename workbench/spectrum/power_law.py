"""Fits on eigenvalue spectra: power-law tail (alpha, xmin, KS distance) and Marchenko–Pastur bulk.

Both are batched over layers that share a number of eigenvalues and vectorised over all xmin / sigma
candidates at once (sort, cumulative sums, one KS evaluation per cache-sized block of candidates
against their tails only, n²/2 terms) instead of the per-candidate Python loop of WeightWatcher. Conventions follow weightwatcher 0.7.7
(``WW_powerlaw.WWFit``, ``RMT_Util.fit_density_with_range``) so the numbers agree with it:

- eigenvalues ``<= 1e-5`` are dropped before the power-law fit (``EVALS_THRESH``);
- every remaining eigenvalue except the largest is an xmin candidate;
- fewer than 20 remaining eigenvalues switch to the small-sample fit (bias-corrected MLE, tails of
  at least 8 eigenvalues); xmin is then still chosen by minimum D, which is what weightwatcher
  0.7.7 does in effect (``WWFit.__init__`` re-selects by D after its small-sample objective).

References
----------
Clauset, Shalizi & Newman (2009), "Power-law distributions in empirical data", SIAM Review 51,
eq. (3.1) (continuous MLE) and eq. (3.9) (KS distance). Martin & Mahoney (2021), "Implicit
self-regularization in deep neural networks", JMLR 22 — Sec. 3 (Marchenko–Pastur bulk, spikes,
eq. (7)) and Sec. 5 (heavy-tailed alpha).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from workbench.validation import as_tensor

EVALS_THRESH = 1e-5  # weightwatcher: eigenvalues at or below this are not fitted
SMALL_N_CUTOFF = 20  # weightwatcher: below this many eigenvalues use the small-sample fit
SMALL_N_KMIN = 8  # weightwatcher: minimum tail size in the small-sample fit
_CHUNK_ELEMS = 1 << 17  # elements per (layer, candidate, eigenvalue) KS block (1 MiB, cache-sized)

__all__ = [
    "EVALS_THRESH",
    "effective_rank",
    "fit_power_law",
    "mp_density",
    "mp_spikes",
    "power_law_batch",
]


def power_law_batch(evals: torch.Tensor, thresh: float = EVALS_THRESH) -> dict[str, torch.Tensor]:
    """Power-law tail fit of each row of ``evals`` (``(batch, n)``, any order, float64).

    alpha(xmin) = 1 + n_tail / sum_{x_j >= xmin} ln(x_j / xmin)   (Clauset et al. 2009, eq. 3.1)
    D(xmin) = max_j |1 - (x_j/xmin)^(1-alpha) - k_j/n_tail|        (eq. 3.9, empirical CDF k/n)

    evaluated for every candidate xmin at once; xmin = argmin D. Rows with fewer than
    ``SMALL_N_CUTOFF`` eigenvalues above ``thresh`` use weightwatcher's small-sample variant
    (bias-corrected alpha = 1 + (n_tail - 1)/sum ln(x/xmin) over tails of at least 8; xmin =
    argmin D as weightwatcher effectively does — its ``D - 0.868/sqrt(n_tail)`` objective is
    overridden by ``WWFit.__init__``).

    Returns tensors of shape ``(batch,)``: ``alpha``, ``xmin``, ``ks_distance``, ``tail_size``
    (eigenvalues >= xmin, weightwatcher's ``num_pl_spikes``), ``n_fit`` (eigenvalues > thresh).
    Rows with fewer than 2 eigenvalues above ``thresh`` get NaN.
    """
    x, _ = torch.sort(evals.to(torch.float64), dim=-1)
    b, n = x.shape
    dev = x.device
    keep = x > thresh
    first = (~keep).sum(-1)  # index of the first fitted eigenvalue in each row
    n_fit = n - first
    logx = torch.log(torch.where(keep, x, torch.ones_like(x)))
    idx = torch.arange(n, device=dev)
    # suffix sums of log x: S_i = sum_{j >= i} ln x_j
    suffix = torch.flip(torch.cumsum(torch.flip(logx, [-1]), -1), [-1])
    n_tail = (n - idx).to(torch.float64).expand(b, n)
    s = suffix - n_tail * logx  # sum_{j>=i} ln(x_j / x_i)
    small = (n_fit < SMALL_N_CUTOFF)[:, None]
    is_cand = (idx[None, :] >= first[:, None]) & (idx[None, :] < n - 1)
    with torch.no_grad():
        alpha_std = 1.0 + n_tail / s
        alpha_bc = 1.0 + (n_tail - 1.0) / s
    alpha = torch.where(small, alpha_bc, alpha_std)
    ks = _ks_all(logx, alpha, n_tail)
    # weightwatcher: D stays 1 where alpha <= 1; the small-sample fit also skips tails shorter
    # than 8 and degenerate ones (alpha 0 there), and the final choice is argmin D in both cases
    # (WWFit.__init__ re-selects by D after fit_powerlaw_smallN, so its J objective is overridden)
    ok_small = (n_tail >= SMALL_N_KMIN) & (s > 1e-12) & (alpha_bc > 1)
    # small-N rows without any admissible tail: the whole fitted range is the tail
    row_first = idx[None, :] == first[:, None]
    none_ok = small[:, 0] & ~(ok_small & is_cand).any(-1)
    fallback = none_ok[:, None] & row_first & (s > 1e-12)
    ok_small = ok_small | fallback
    ks_used = torch.where(small, torch.where(ok_small, ks, torch.ones_like(ks)),
                          torch.where(alpha_std > 1, ks, torch.ones_like(ks)))
    alpha = torch.where(small & ~ok_small, torch.zeros_like(alpha), alpha)
    obj = torch.where(is_cand, torch.nan_to_num(ks_used, nan=1.0), torch.full_like(ks, math.inf))
    best = torch.argmin(obj, dim=-1)  # first minimum, like np.argmin
    pick = lambda t: t.gather(1, best[:, None])[:, 0]
    a, xm, d = pick(alpha), pick(x), pick(ks_used)
    degenerate = none_ok & ~fallback.any(-1)  # all fitted eigenvalues equal: no power law
    a = torch.where(degenerate, torch.ones_like(a), a)
    d = torch.where(degenerate, torch.ones_like(d), d)
    tail = (x >= xm[:, None]).sum(-1)
    bad = n_fit < 2
    nan = torch.full_like(a, math.nan)
    return {"alpha": torch.where(bad, nan, a), "xmin": torch.where(bad, nan, xm),
            "ks_distance": torch.where(bad, nan, d), "tail_size": torch.where(bad, 0, tail),
            "n_fit": n_fit}


def _ks_all(logx: torch.Tensor, alpha: torch.Tensor, n_tail: torch.Tensor) -> torch.Tensor:
    """KS distance for every (row, candidate i): max_{j>=i} |1-(x_j/x_i)^(1-a_i) - (j-i)/n_tail_i|.

    ``n_tail`` (b, n) has equal rows (n - i). Blocks of candidates [i0, i1) against the tail
    j >= i0 only (the lower triangle is never formed), each block sized to stay in cache
    (``_CHUNK_ELEMS``). Terms with j < i inside a block vanish exactly: ln(x_j/x_i) and (j-i)/n_tail
    are multiplied by 0 there, so they add |expm1(0) + 0| = 0 to the max, as masking would.
    """
    b, n = logx.shape
    dev, dt = logx.device, logx.dtype
    out = torch.ones_like(alpha)
    one_m_a = 1.0 - alpha
    i0 = 0
    while i0 < n:
        i1 = i0 + max(1, min(n - i0, _CHUNK_ELEMS // max(1, b * (n - i0))))
        j_minus_i = (torch.arange(i0, n, device=dev, dtype=dt)[None, :]
                     - torch.arange(i0, i1, device=dev, dtype=dt)[:, None])  # (c, n - i0)
        upper = (j_minus_i >= 0).to(dt)
        k = j_minus_i.mul_(upper).div_(n_tail[0, i0:i1, None])  # empirical CDF step (j-i)/n_tail
        t = logx[:, None, i0:] - logx[:, i0:i1, None]  # (b, c, n - i0): ln(x_j / x_i)
        t.mul_(upper).mul_(one_m_a[:, i0:i1, None]).expm1_()  # -(theoretical CDF)
        out[:, i0:i1] = t.add_(k).abs_().amax(-1)
        i0 = i1
    return out


def fit_power_law(evals, *, thresh: float = EVALS_THRESH) -> xr.Dataset:
    """Fit a power law ``p(x) ∝ x^(-alpha)`` to the tail of an eigenvalue spectrum.

    Parameters
    ----------
    evals : array-like, shape ``(eig,)`` or ``(layer, eig)``
        Eigenvalues (e.g. from :func:`workbench.spectrum.analysis.esd`); finite and non-negative.
        Values ``<= thresh`` are ignored, as in weightwatcher.
    thresh : float
        Eigenvalue floor below which values are not fitted (weightwatcher's ``EVALS_THRESH``).

    Returns
    -------
    xr.Dataset
        ``alpha`` (Clauset et al. 2009 eq. 3.1), ``xmin`` (argmin of the KS distance eq. 3.9 over
        every eigenvalue but the largest), ``ks_distance``, ``tail_size`` (eigenvalues >= xmin);
        scalars for 1-D input, dim ``layer`` for 2-D input.
    """
    t = as_tensor(evals, "evals", ndim=(1, 2), dtype=torch.float64)
    if bool((t < -1e-8 * t.abs().max()).any()):
        raise ValueError("evals must be non-negative (eigenvalues of W^T W)")
    one = t.ndim == 1
    res = power_law_batch(t[None] if one else t, thresh=thresh)
    dims = () if one else ("layer",)
    data = {k: (dims, (v[0] if one else v).cpu().numpy()) for k, v in res.items() if k != "n_fit"}
    return xr.Dataset(data, attrs={"method": "continuous power-law MLE, xmin by min KS distance",
                                   "reference": "Clauset, Shalizi & Newman 2009, eqs. 3.1, 3.9"})


def mp_density(x: np.ndarray, q: float, sigma: float) -> np.ndarray:
    """Marchenko–Pastur density of the eigenvalues of W^T W / N for W (N×M) with iid entries of
    variance sigma², Q = N/M >= 1: rho(x) = Q/(2 pi sigma² x) sqrt((b-x)(x-a)),
    a, b = sigma² (1 ∓ 1/sqrt(Q))² (Martin & Mahoney 2021, eq. 7)."""
    x = np.asarray(x, dtype=np.float64)
    a = (sigma * (1 - 1 / np.sqrt(q))) ** 2
    b = (sigma * (1 + 1 / np.sqrt(q))) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        val = q / (2 * np.pi * sigma**2 * x) * np.sqrt(np.clip((b - x) * (x - a), 0, None))
    return np.nan_to_num(val)


def mp_spikes(evals: torch.Tensor, q: float, m: int, bw: float = 0.1) -> dict[str, float]:
    """Fit the Marchenko–Pastur bulk variance and count the spikes above its edge.

    weightwatcher's ``mp_fit`` (``RMT_Util.fit_density_with_range``), vectorised: rescale the
    eigenvalues to unit mean, estimate their density with a linear-kernel KDE (bandwidth ``bw``)
    on 1000 grid points, and choose sigma minimising the squared residual to the MP density over
    the grid sigma in [0.05, 2] · sigma_0 (step 0.01 sigma_0, sigma_0 from lambda_max = bulk edge),
    all candidates in one array op, then refine on a 20x finer grid around the best (instead of
    scipy's Nelder–Mead polish). Spikes are eigenvalues above the bulk edge
    ``lambda_+ = sigma² (1 + 1/sqrt(Q))²`` plus the Tracy–Widom margin
    ``sqrt(Q^(-1/2) lambda_+^(2/3) M^(-2/3))`` (Martin & Mahoney 2021, Sec. 3.2, eq. 7).

    Returns ``num_spikes``, ``sigma_mp``, ``bulk_max`` (in the original eigenvalue units),
    ``mp_softrank`` (lambda_+ / lambda_max).
    """
    ev = evals.to(torch.float64)
    n = ev.numel()
    wscale2 = n / float(ev.sum())
    to_plot = ev * wscale2
    to_fit = torch.sqrt(to_plot.clamp(min=0)) if q == 1.0 else to_plot
    lam_max = float(to_plot.max())
    xde = torch.linspace(0, float(to_fit.max()) + 0.5, 1000, dtype=torch.float64, device=ev.device)
    # linear (triangular) kernel density, normalised: (1/(n bw)) sum (1 - |x-e|/bw)_+
    yde = torch.zeros_like(xde)
    for j0 in range(0, n, 4096):
        yde += (1 - (xde[:, None] - to_fit[None, j0:j0 + 4096]).abs() / bw).clamp(min=0).sum(-1)
    yde /= n * bw
    good = yde > 0.01
    xg, yg = xde[good], yde[good]
    sigma0 = math.sqrt(float(to_fit.max()) / (1 + 1 / math.sqrt(q)) ** 2)

    def resid(sig: torch.Tensor) -> torch.Tensor:
        s2 = sig[:, None] ** 2
        if q == 1.0:
            mp = torch.nan_to_num(1 / (math.pi * s2) * torch.sqrt(4 - xg[None] ** 2))
            return ((mp - yg[None]) ** 2).sum(-1)
        a = s2 * (1 - 1 / math.sqrt(q)) ** 2
        b = s2 * (1 + 1 / math.sqrt(q)) ** 2
        mp = torch.nan_to_num(q / (2 * math.pi * s2 * xg[None]) * torch.sqrt((b - xg[None]) * (xg[None] - a)))
        r = ((mp - yg[None]) ** 2).sum(-1)
        x_peak = float(xg[torch.argmax(yg)])
        bad = (b[:, 0] < x_peak) | (b[:, 0] > float(xg.max())) | (a[:, 0] > x_peak)
        return torch.where(bad, torch.full_like(r, 1e6 * (xde.numel())), r)

    step = 0.01 * sigma0
    grid = torch.arange(0.05 * sigma0, 2.0 * sigma0, step, dtype=torch.float64, device=ev.device)
    s_best = float(grid[torch.argmin(resid(grid))])
    fine = torch.linspace(max(s_best - step, 1e-12), s_best + step, 41, dtype=torch.float64, device=ev.device)
    r_fine = resid(fine)
    if float(r_fine.min()) < float(resid(torch.tensor([s_best], dtype=torch.float64, device=ev.device))[0]):
        s_best = float(fine[torch.argmin(r_fine)])
    bulk_max = (s_best * (1 + 1 / math.sqrt(q))) ** 2
    tw = 1 / math.sqrt(q) * bulk_max ** (2 / 3) * m ** (-2 / 3)
    spikes = int((to_plot > bulk_max + math.sqrt(tw)).sum())
    return {"num_spikes": spikes, "sigma_mp": s_best, "bulk_max": bulk_max / wscale2,
            "mp_softrank": bulk_max / lam_max}


def effective_rank(evals: torch.Tensor) -> torch.Tensor:
    """Effective rank exp(H(p)), p_i = sigma_i / sum_j sigma_j over singular values sigma_i =
    sqrt(lambda_i) (Roy & Vetterli 2007, "The effective rank", Def. 1). Works on the last dim."""
    sv = torch.sqrt(evals.to(torch.float64).clamp(min=0))
    p = sv / sv.sum(-1, keepdim=True)
    h = -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(-1)
    return torch.exp(h)
