"""Snapshot Gram matrix X Xᵀ in float64 for DMD's method of snapshots, streamed over features.

DMD on training trajectories has few snapshots (time, m ~ 10²–10³) and many features (parameters,
n ~ 10⁶–10⁹). The method of snapshots (Sirovich 1987; Tu et al. 2014, J. Comput. Dyn. 1(2), §2.2)
needs only the m×m Gram matrix G = X Xᵀ (rows of X are snapshots). This accumulates G in float64
over column chunks, up-casting one chunk at a time on the target device, so a float32 X that fits
the GPU never needs a full float64 copy (peak extra memory: one chunk), and CPU-resident X is
streamed to the GPU chunk by chunk.

No Triton kernel: G is a float64 GEMM/SYRK, which cuBLAS runs on the FP64 tensor cores of
A100/H100; Triton's ``tl.dot`` has no float64 tensor-core path (elementwise float64 Triton code
does work, e.g. :mod:`workbench.spectrum.power_law_kernel`). Randomized SVD (Halko et al. 2011) is already
device-agnostic in :func:`workbench.koopman.linalg.svd_randomized` (pass a CUDA tensor).

Reference: ``X.double() @ X.double().T`` (:func:`snapshot_gram_torch`).
"""
from __future__ import annotations

import torch

from workbench.backend import target_device
from workbench.validation import as_tensor

__all__ = ["snapshot_gram", "snapshot_gram_torch"]


def snapshot_gram_torch(X: torch.Tensor) -> torch.Tensor:
    """Reference: the whole float64 product at once."""
    x = X.to(torch.float64)
    return x @ x.mT


def snapshot_gram(X, *, device=None, backend: str = "auto", chunk_bytes: int = 1 << 27) -> torch.Tensor:
    """G = X Xᵀ (float64, ``time × time``) for snapshots X (``time × feature``), chunked.

    Parameters
    ----------
    X : array-like (time, feature), any float dtype, finite.
    device : None keeps X's device; "auto"/"cuda" streams CPU-resident X to the GPU chunk by chunk.
    backend : "auto" or "torch" (no Triton kernel; "triton" raises ValueError).
    chunk_bytes : float64 bytes of one feature chunk on the device.
    """
    if backend not in ("auto", "torch"):
        raise ValueError(f"snapshot_gram has only a torch implementation (cuBLAS float64 GEMM); "
                         f"backend must be 'auto' or 'torch', got {backend!r}")
    dev = target_device(device, X)
    x = as_tensor(X, "X", ndim=2)
    m, n = x.shape
    cols = max(1, int(chunk_bytes) // (8 * m))
    G = torch.zeros(m, m, dtype=torch.float64, device=dev)
    for j in range(0, n, cols):
        blk = x[:, j:j + cols].to(device=dev, dtype=torch.float64, non_blocking=True)
        G.addmm_(blk, blk.mT)
    return G
