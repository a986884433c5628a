"""Per-layer metrics from an ESD: power-law fits of many layers at once, norms, ranks, conditioning.

For the eigenvalues lambda_1 <= ... <= lambda_M of W^T W (squared singular values, no 1/N):

- ``alpha``, ``xmin``, ``ks_distance``, ``tail_size``: power-law tail fit (Clauset, Shalizi &
  Newman 2009, eqs. 3.1 and 3.9; Martin & Mahoney 2021, JMLR 22, Sec. 5);
- ``alpha_weighted`` = alpha · log10 lambda_max (Martin, Peng & Mahoney 2021, Nat. Commun. 12);
- ``log_norm`` = log10 ||W||_F², ``log_spectral_norm`` = log10 lambda_max = log10 ||W||_2²;
- ``stable_rank`` = ||W||_F² / ||W||_2²;
- ``effective_rank`` = exp(H(p)), p_i = sigma_i / sum_j sigma_j (Roy & Vetterli 2007, Def. 1);
- ``condition_number`` = sigma_max / sigma_min = sqrt(lambda_max / lambda_min) (KappaTune: "the
  condition number as a scale-invariant proxy");
- ``num_spikes``, ``sigma_mp``, ``mp_softrank``: the Marchenko–Pastur bulk fit
  (:func:`workbench.spectrum.marchenko_pastur.mp_spikes`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workbench.parallel import WorkerPool
from workbench.spectrum.marchenko_pastur import mp_spikes
from workbench.spectrum.power_law import EVALS_THRESH
from workbench.spectrum.power_law_kernel import power_law_fit

__all__ = ["FIT_KEYS", "METRICS", "effective_rank", "fit_layers", "spectral_metrics"]

METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank",
           "effective_rank", "condition_number", "num_spikes", "xmin", "ks_distance")
FIT_KEYS = ("alpha", "xmin", "ks_distance", "tail_size")


def effective_rank(evals: torch.Tensor) -> torch.Tensor:
    """Effective rank exp(H(p)), p_i = sigma_i / sum_j sigma_j over singular values sigma_i =
    sqrt(lambda_i) (Roy & Vetterli 2007, "The effective rank", Def. 1). Works on the last dim."""
    sv = torch.sqrt(evals.to(torch.float64).clamp(min=0))
    p = sv / sv.sum(-1, keepdim=True)
    h = -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(-1)
    return torch.exp(h)


def fit_layers(evals: Sequence[torch.Tensor], pool: WorkerPool | None = None) -> dict[str, np.ndarray]:
    """Power-law fits of all ``evals`` through :func:`workbench.spectrum.power_law_kernel.power_law_fit`:
    one Triton launch on CUDA; on the CPU the batched torch reference (grouped by length), the
    layers dealt round-robin to the threads of ``pool`` (rows are fitted independently, so the
    numbers are those of one call; torch releases the GIL in its kernels)."""
    n = len(evals)
    out = {k: np.full(n, np.nan) for k in FIT_KEYS}
    if not n:
        return out
    threads = max(1, pool.workers) if pool is not None and evals[0].device.type == "cpu" else 1
    parts = [list(range(k, n, threads)) for k in range(min(threads, n))]

    def fit(part: list[int]) -> None:
        res = power_law_fit([evals[i] for i in part], thresh=EVALS_THRESH)
        for k in FIT_KEYS:
            out[k][part] = res[k].cpu().numpy()

    list(pool.map(fit, parts) if len(parts) > 1 else map(fit, parts))
    return out


def spectral_metrics(evals: torch.Tensor, fro2: float, alpha: float, q: float, m: int,
                     mp_fit: bool = True) -> dict[str, float]:
    """The metrics of one layer from its ascending eigenvalues ``evals``, its ``||W||_F²``
    ``fro2`` (eigenvalue units), its fitted ``alpha`` and shape ratio ``q`` = N/M, ``m`` = M
    (see the module docstring); the MP quantities are NaN without ``mp_fit``."""
    lam_max, lam_min = float(evals[-1]), float(evals[0])
    row = {"log_norm": np.log10(fro2), "log_spectral_norm": np.log10(lam_max),
           "stable_rank": fro2 / lam_max, "alpha_weighted": alpha * np.log10(lam_max),
           "effective_rank": float(effective_rank(evals)),
           "condition_number": np.sqrt(lam_max / lam_min) if lam_min > 0 else np.inf,
           "num_spikes": np.nan, "sigma_mp": np.nan, "mp_softrank": np.nan}
    if mp_fit:
        mp = mp_spikes(evals, q, m)
        row.update(num_spikes=mp["num_spikes"], sigma_mp=mp["sigma_mp"], mp_softrank=mp["mp_softrank"])
    return row
