"""Batched spectra: eigenvalues of W^T W for many layers, one ``eigvalsh`` per group of equal shapes.

For W (N×M) the ESD is the spectrum of the smaller Gram matrix (W^T W if N >= M, else W W^T; the
non-zero eigenvalues are the same), i.e. the squared singular values (Martin & Mahoney 2021, JMLR
22, Sec. 2). Forming the Gram matrix costs N·M² flops and its eigendecomposition M³/… instead of
the SVD's N·M², and equally shaped matrices (the q/k/v/o projections of every block, all MLP
layers of one width) go through one batched ``torch.linalg.eigvalsh`` — cuSOLVER's batched
``syevj`` on CUDA, LAPACK in a loop on CPU. No Triton kernel: a symmetric eigensolver is not a
tile-local computation, and the Gram product is a cuBLAS GEMM.

Reference: one ``torch.linalg.svdvals`` per matrix, squared (:func:`eigvalsh_loop`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from workbench.backend import choose_backend, target_device
from workbench.validation import as_tensor

__all__ = ["eigvalsh_loop", "gram_eigvalsh"]


def eigvalsh_loop(mats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Reference: squared singular values (ascending, float64) of each matrix, one call each."""
    return [torch.sort(torch.linalg.svdvals(m.to(torch.float64)) ** 2).values for m in mats]


def gram_eigvalsh(mats: Sequence, *, gram_dtype: torch.dtype = torch.float64, device=None,
                  backend: str = "auto", max_batch_bytes: int = 256 << 20) -> list[torch.Tensor]:
    """Eigenvalues of the smaller Gram matrix of every matrix, batched over equal shapes.

    Parameters
    ----------
    mats : sequence of 2-D array-likes (any shapes)
    gram_dtype : dtype of the Gram product (float32 is ~2x faster on GPU but resolves only
        eigenvalues above ~eps_32·lambda_max); the eigensolver always runs in float64.
    device : None keeps the first matrix's device; "auto" → CUDA if available.
    backend : "auto" or "torch" (there is no Triton kernel for this one; "triton" raises).
    max_batch_bytes : bound on one stacked group (larger groups are split).

    Returns
    -------
    list of 1-D float64 tensors, ascending, ``min(N, M)`` eigenvalues each, in input order.
    """
    if backend == "triton":
        raise ValueError("gram_eigvalsh has no Triton kernel (batched cuSOLVER eigvalsh is the GPU "
                         "path); use backend='auto' or 'torch'")
    dev = target_device(device, list(mats))
    choose_backend(backend, dev)
    ts = [as_tensor(m, f"mats[{k}]", ndim=2, device=dev) for k, m in enumerate(mats)]
    if not ts:
        raise ValueError("mats must hold at least one matrix")
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, t in enumerate(ts):
        groups[tuple(t.shape)].append(k)
    out: list[torch.Tensor | None] = [None] * len(ts)
    item = torch.finfo(gram_dtype).bits // 8
    for (n, m), members in groups.items():
        per = max(1, max_batch_bytes // (n * m * item))
        for s in range(0, len(members), per):
            idx = members[s:s + per]
            w = torch.stack([ts[k].to(gram_dtype) for k in idx])
            g = w.mT @ w if n >= m else w @ w.mT
            ev = torch.linalg.eigvalsh(g.to(torch.float64)).clamp_min(0)
            for k, e in zip(idx, ev):
                out[k] = e
    return out  # type: ignore[return-value]
