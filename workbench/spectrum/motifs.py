"""The MoMos motif projection: every block of s consecutive weights snapped to the nearest of k motifs.

MoMos ("mosaic of motifs", arXiv:2602.14896; reference ``src/quantizers.py``) makes weights
compressible by construction: each parameter tensor, flattened and cut into blocks of ``s``
values (zero-padded), is replaced block by block by the nearest (Euclidean) of ``k`` motifs — the
zero block and ``k − 1`` blocks of the tensor drawn at random — so the tensor holds at most ``k``
distinct blocks. ``k`` is set from a capacity c as ``k = max(1, min(⌊c · n_blocks⌋, n_blocks))``
with ``n_blocks`` counted over all trainable tensors. Applied after optimizer steps it is a training
constraint; :func:`~workbench.spectrum.compressibility` measures its effect on the compression ratio.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["motif_k", "motif_project", "project_model_"]


def motif_project(tensor: torch.Tensor, block: int, k: int, *, force_zero: bool = True,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``tensor`` with every block of ``block`` values replaced by its nearest motif (MoMos).

    Parameters
    ----------
    tensor : any floating tensor (flattened in memory order; the last block zero-padded).
    block, k : block size s and number of motifs (at most the number of blocks).
    force_zero : the zero block is one of the motifs (the reference's ``force_zero``).
    generator : draws the ``k − 1`` (or ``k``) random motif blocks.

    Returns
    -------
    (projected tensor of the same shape, ``{"distortion": Σ‖x − motif‖², "changed": fraction of
    values changed, "k": motifs used}``).
    """
    if block < 1 or k < 1:
        raise ValueError(f"block and k must be >= 1, got {block}, {k}")
    flat = tensor.detach().reshape(-1)
    pad = (-flat.numel()) % block
    blocks = torch.cat([flat, flat.new_zeros(pad)]).view(-1, block)
    k_eff = max(1, min(k, blocks.shape[0]))
    n_random = k_eff - 1 if force_zero else k_eff
    idx = torch.randperm(blocks.shape[0], generator=generator)[:n_random]
    motifs = torch.cat([blocks.new_zeros(1, block), blocks[idx]]) if force_zero else blocks[idx]
    projected = motifs[torch.cdist(blocks, motifs).argmin(dim=1)]
    stats = {"distortion": float(((blocks - projected) ** 2).sum()),
             "changed": float((projected != blocks).reshape(-1)[: flat.numel()].float().mean()), "k": k_eff}
    return projected.reshape(-1)[: flat.numel()].reshape(tensor.shape), stats


def motif_k(model: nn.Module, block: int, capacity: float) -> int:
    """``k = max(1, min(⌊capacity · n_blocks⌋, n_blocks))`` over the model's trainable tensors (MoMos)."""
    if capacity <= 0:
        raise ValueError(f"capacity must be > 0, got {capacity}")
    n_blocks = sum(-(-q.numel() // block) for q in model.parameters() if q.requires_grad and q.numel())
    return max(1, min(int(capacity * n_blocks), n_blocks))


@torch.no_grad()
def project_model_(model: nn.Module, block: int = 4, *, k: int | None = None, capacity: float = 0.01,
                   force_zero: bool = True, generator: torch.Generator | None = None) -> dict[str, float]:
    """Project every trainable tensor of ``model`` in place (:func:`motif_project`); ``k`` defaults to
    :func:`motif_k` of ``capacity``. Returns the summed distortion and the fraction of values changed."""
    k = motif_k(model, block, capacity) if k is None else k
    total, changed, n = 0.0, 0.0, 0
    for q in model.parameters():
        if q.requires_grad and q.numel():
            projected, stats = motif_project(q, block, k, force_zero=force_zero, generator=generator)
            q.copy_(projected)
            total, changed, n = total + stats["distortion"], changed + stats["changed"] * q.numel(), n + q.numel()
    return {"distortion": total, "changed": changed / max(n, 1), "k": k}
