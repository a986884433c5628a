"""Bootstrap interval of the power-law exponent alpha, xmin re-selected in every replicate.

For a layer with fitted eigenvalues x_1..x_n (those above ``thresh``), replicate b draws n of them
with replacement and fits the power law afresh — xmin by minimum KS distance over the replicate's
own candidates, then alpha(xmin) (Clauset, Shalizi & Newman 2009, SIAM Review 51, eqs. 3.1, 3.9;
their Sec. 3.4 recommends exactly this non-parametric bootstrap, xmin included, for the
uncertainty of alpha). The interval is the percentile interval
[q_{(1-level)/2}, q_{(1+level)/2}] of the B replicate alphas (Efron & Tibshirani 1993, Ch. 13).

All replicates of all layers are fitted by the batched fit
(:func:`workbench.spectrum.power_law.power_law_batch`, rows of equal length in one call) with
the pruned Numba KS step on the CPU (:mod:`workbench.spectrum.ks_cpu`, the same xmin and alpha
as the reference, ~3x fewer operations), spread over the threads of a :class:`WorkerPool`, and
with the Triton kernel on CUDA (:func:`workbench.spectrum.power_law_kernel.power_law_fit`). Draws
come from one seeded generator, layer after layer, so the interval does not depend on threads.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from workbench.parallel import WorkerPool
from workbench.spectrum.ks_cpu import ks_distances_pruned
from workbench.spectrum.power_law import EVALS_THRESH, power_law_batch
from workbench.spectrum.power_law_kernel import power_law_fit

__all__ = ["bootstrap_alpha", "bootstrap_alphas"]

ROWS_PER_CALL = 256  # replicate rows fitted per call (bounds the KS blocks' working set)


def _replicates(spectra: Sequence[torch.Tensor], n_boot: int, thresh: float, seed: int
                ) -> list[torch.Tensor | None]:
    """(B, n_fit) resampled fitted eigenvalues of each layer (None with fewer than 2)."""
    gen = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor | None] = []
    for ev in spectra:
        x = ev.detach().to(torch.float64).cpu()
        x = x[x > thresh]
        if x.numel() < 2:
            out.append(None)
            continue
        out.append(x[torch.randint(x.numel(), (n_boot, x.numel()), generator=gen)])
    return out


def _fit_alpha(rows: torch.Tensor, thresh: float, device) -> torch.Tensor:
    """alpha of each row: the pruned Numba KS step on the CPU, :func:`power_law_fit` elsewhere."""
    if device is None or torch.device(device).type == "cpu":
        ks = ks_distances_pruned((rows <= thresh).sum(-1))
        return power_law_batch(rows, thresh=thresh, ks=ks)["alpha"]
    return power_law_fit(rows, thresh=thresh, device=device)["alpha"].cpu()


def bootstrap_alphas(spectra: Sequence[torch.Tensor], n_boot: int, *, seed: int = 0,
                     thresh: float = EVALS_THRESH, pool: WorkerPool | None = None,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """The ``(layer, n_boot)`` replicate alphas of each spectrum (NaN rows for spectra with fewer
    than 2 eigenvalues above ``thresh``); see the module docstring."""
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"bootstrap must be a positive int (number of replicates), got {n_boot!r}")
    reps = _replicates(spectra, n_boot, thresh, seed)
    alphas = torch.full((len(reps), n_boot), float("nan"), dtype=torch.float64)
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(reps):
        if r is not None:
            by_len[r.shape[1]].append(i)
    groups = [(members, torch.cat([reps[i] for i in members])) for members in by_len.values()]
    fitted = [torch.full((rows.shape[0],), float("nan"), dtype=torch.float64) for _, rows in groups]
    tasks = [(g, s) for g, (_, rows) in enumerate(groups) for s in range(0, rows.shape[0], ROWS_PER_CALL)]

    def fit(task: tuple[int, int]) -> None:  # each task fills its own slice of one group
        g, s = task
        fitted[g][s:s + ROWS_PER_CALL] = _fit_alpha(groups[g][1][s:s + ROWS_PER_CALL], thresh, device)

    list((pool or WorkerPool(0)).map(fit, tasks))
    for (members, _), a in zip(groups, fitted):
        alphas[members] = a.reshape(len(members), n_boot)
    return alphas


def bootstrap_alpha(spectra: Sequence[torch.Tensor], n_boot: int, *, level: float = 0.95, seed: int = 0,
                    thresh: float = EVALS_THRESH, pool: WorkerPool | None = None,
                    device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha_lo, alpha_hi)``, each ``(layer,)``: the ``level`` percentile bootstrap interval
    of alpha for each spectrum in ``spectra`` (1-D eigenvalue tensors of any lengths), from
    ``n_boot`` replicates that each re-select xmin (see the module docstring)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    alphas = bootstrap_alphas(spectra, n_boot, seed=seed, thresh=thresh, pool=pool, device=device)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo_hi = torch.nanquantile(alphas, q, dim=1)
    return lo_hi[0], lo_hi[1]
