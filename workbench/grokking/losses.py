"""Restricted and excluded loss: how much of the logits the key-frequency circuit explains.

References
----------
.. [1] Nanda et al. (2023). Progress measures for grokking via mechanistic interpretability.
   arXiv:2301.05217, Sec. 5.2.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
import xarray as xr

from workbench.grokking.fourier import PAPER, n_freqs
from workbench.validation import as_tensor


def _logits3(logits: Any) -> torch.Tensor:
    t = as_tensor(logits, "logits", ndim=(2, 3), dtype=torch.float64)
    if t.ndim == 2:  # (p², p) rows in (a, b) row-major order
        p = t.shape[1]
        if t.shape[0] != p * p:
            raise ValueError(f"logits of shape (N, p) need N = p² rows in (a, b) order, got {tuple(t.shape)}")
        t = t.reshape(p, p, p)
    p = t.shape[-1]
    n_freqs(p)  # validates p
    if t.shape != (p, p, p):
        raise ValueError(f"logits must be (p, p, p) indexed [a, b, c], got {tuple(t.shape)}")
    return t


def _key_component(L: torch.Tensor, key_freqs: list[int], sign_b: int) -> torch.Tensor:
    """Projection of logits onto span{cos(w_k(a ± b − c)), sin(w_k(a ± b − c))}, k in key_freqs.

    Both directions depend on ``(s, c)`` with ``s = a ± b mod p`` only, so the projection is computed
    from ``M[s, c] = Σ_{a ± b ≡ s} L[a, b, c]``; each direction has squared norm ``p³/2``.
    """
    p = L.shape[0]
    ar = torch.arange(p)
    s = (ar[:, None] + sign_b * ar[None, :]) % p  # (a, b)
    M = torch.zeros(p, p, dtype=L.dtype).index_add_(0, s.reshape(-1), L.reshape(p * p, p))  # (s, c)
    diff = (ar[:, None] - ar[None, :]).double()  # s − c
    comp = torch.zeros(p, p, dtype=L.dtype)  # (s, c)
    for k in key_freqs:
        if not 1 <= int(k) <= n_freqs(p):
            raise ValueError(f"key frequency {k} outside 1..{n_freqs(p)} for p={p}")
        for u in (torch.cos(2 * math.pi * k * diff / p), torch.sin(2 * math.pi * k * diff / p)):
            comp += (M * u).sum() / (p**3 / 2) * u
    return comp[s]  # (a, b, c)


def _pair_loss(L: torch.Tensor, pairs: Any, sign_b: int) -> float:
    p = L.shape[0]
    if pairs is None:
        a, b = (t.reshape(-1) for t in torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij"))
    else:
        pt = as_tensor(pairs, "pairs", ndim=2, dtype=torch.long)
        a, b = pt[:, 0], pt[:, 1]
        if int(pt[:, :2].min()) < 0 or int(pt[:, :2].max()) >= p:
            raise ValueError(f"pairs must hold residues in 0..{p - 1}")
    return float(F.cross_entropy(L[a, b], (a + sign_b * b) % p))


def _sign(op: str) -> int:
    if op not in ("add", "sub"):
        raise ValueError(f"restricted/excluded loss are defined for op 'add' or 'sub' (a ± b − c), got {op!r}")
    return 1 if op == "add" else -1


def restricted_loss(logits: Any, key_freqs: list[int], pairs: Any = None, op: str = "add") -> xr.DataArray:
    """Loss of the logits restricted to the key-frequency directions ([1], Sec. 5.2).

    ``L_restr[a, b, c] = mean_{a', b'} L[a', b', c] + Σ_{k ∈ key} Proj_{cos/sin(w_k(a + b − c))} L``:
    only the per-output mean (which the softmax sees) and the key directions are kept. Low
    restricted loss means the Fourier circuit alone already does the task.

    Parameters
    ----------
    logits : ``(p, p, p)`` indexed ``[a, b, c]`` or ``(p², p)`` in ``(a, b)`` row-major order.
    key_freqs : frequencies ``k`` (``w_k = 2πk/p``).
    pairs : ``(N, ≥2)`` rows ``(a, b, ...)`` to evaluate on; default all ``p²`` pairs.
    op : ``"add"`` (``a + b``) or ``"sub"`` (``a − b``).
    """
    L = _logits3(logits)
    sign = _sign(op)
    R = L.mean((0, 1), keepdim=True) + _key_component(L, list(key_freqs), sign)
    return xr.DataArray(_pair_loss(R, pairs, sign), name="restricted_loss",
                        attrs={"reference": PAPER, "key_freqs": [int(k) for k in key_freqs]})


def excluded_loss(logits: Any, key_freqs: list[int], pairs: Any = None, op: str = "add") -> xr.DataArray:
    """Loss after removing the key-frequency directions from the logits ([1], Sec. 5.2).

    ``L_excl = L − Σ_{k ∈ key} Proj_{cos/sin(w_k(a + b − c))} L``, evaluated on ``pairs`` (the paper
    uses the training set). It rises during circuit formation: the memorising part of the logits
    alone stops fitting the training data as the generalising circuit takes over.
    """
    L = _logits3(logits)
    sign = _sign(op)
    return xr.DataArray(_pair_loss(L - _key_component(L, list(key_freqs), sign), pairs, sign),
                        name="excluded_loss", attrs={"reference": PAPER, "key_freqs": [int(k) for k in key_freqs]})
