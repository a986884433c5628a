"""Fused forward + backward of batched toy models of superposition, one Triton program per instance.

Model (Elhage et al. 2022, "Toy Models of Superposition", Transformer Circuits Thread; the
``relu`` and ``linear`` variants of :class:`workbench.superposition.toy.ToyModels`): for instance k with
W_k (H×F), b_k (F), importance I_k (F) and a batch X_k (B×F),

    h = X Wᵀ,  z = h W + b,  x' = ReLU(z) (or z),  e = x' − X
    L_k = (1/B) Σ_{b,f} I_f e_{bf}²
    δ = (2/B) I ⊙ e ⊙ 1[z > 0],   ∂L/∂b = Σ_b δ,   ∂L/∂W = hᵀ δ + (δ Wᵀ)ᵀ X

The kernel streams each instance's batch once in blocks of rows and keeps W, ∂L/∂W and ∂L/∂b in
registers, so one launch does the forward pass, the loss and both gradients for every instance
(torch needs ~8 kernels and writes (I, B, F) intermediates to memory). The optimiser update stays
in torch (``W.grad``/``b.grad`` then ``Adam.step``).

The reference is autograd on the same forward (:func:`toy_loss_grad_torch`); the lens' hand-derived
:meth:`~workbench.superposition.toy.ToyModels.loss_and_grad` must agree with both (tests).
"""
from __future__ import annotations

import torch

from workbench.backend import (
    HAS_TRITON,
    check_runnable,
    choose_backend,
    target_device,
    tl,
    triton,
)
from workbench.validation import as_tensor

__all__ = [
    "TRITON_MAX_FEATURES",
    "TRITON_MAX_HIDDEN",
    "toy_loss_grad",
    "toy_loss_grad_torch",
    "toy_loss_grad_triton",
]

TRITON_MAX_FEATURES = 256  # W (H×F) and ∂L/∂W live in registers: larger models use torch
TRITON_MAX_HIDDEN = 64

if HAS_TRITON:

    @triton.jit
    def _toy_kernel(x_ptr, w_ptr, b_ptr, imp_ptr, loss_ptr, gw_ptr, gb_ptr, B, F, H, scale,
                    RELU: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_F: tl.constexpr,
                    BLOCK_H: tl.constexpr, PRECISION: tl.constexpr):
        k = tl.program_id(0).to(tl.int64)
        offs_f = tl.arange(0, BLOCK_F)
        offs_h = tl.arange(0, BLOCK_H)
        mask_f = offs_f < F
        mask_hf = (offs_h[:, None] < H) & mask_f[None, :]
        w = tl.load(w_ptr + k * H * F + offs_h[:, None] * F + offs_f[None, :], mask=mask_hf, other=0.0)
        bias = tl.load(b_ptr + k * F + offs_f, mask=mask_f, other=0.0)
        imp = tl.load(imp_ptr + k * F + offs_f, mask=mask_f, other=0.0)
        gw = tl.zeros([BLOCK_H, BLOCK_F], dtype=tl.float32)
        gb = tl.zeros([BLOCK_F], dtype=tl.float32)
        loss = tl.zeros([BLOCK_F], dtype=tl.float32)
        for b0 in range(0, B, BLOCK_B):
            offs_b = b0 + tl.arange(0, BLOCK_B)
            mask_bf = (offs_b[:, None] < B) & mask_f[None, :]
            x = tl.load(x_ptr + k * B * F + offs_b[:, None] * F + offs_f[None, :], mask=mask_bf, other=0.0)
            h = tl.dot(x, tl.trans(w), input_precision=PRECISION)                     # (BB, BH)
            z = tl.dot(h, w, input_precision=PRECISION) + bias[None, :]               # (BB, BF)
            y = tl.maximum(z, 0.0) if RELU else z
            e = tl.where(mask_bf, y - x, 0.0)
            loss += tl.sum(e * e, axis=0)
            delta = e * (imp[None, :] * scale)
            if RELU:
                delta = tl.where(z > 0, delta, 0.0)
            gb += tl.sum(delta, axis=0)
            gw += tl.dot(tl.trans(h), delta, input_precision=PRECISION)                # via z = hW
            dh = tl.dot(delta, tl.trans(w), input_precision=PRECISION)                # (BB, BH)
            gw += tl.dot(tl.trans(dh), x, input_precision=PRECISION)                   # via h = XWᵀ
        tl.store(loss_ptr + k, tl.sum(loss * imp, axis=0) / B)
        tl.store(gb_ptr + k * F + offs_f, gb, mask=mask_f)
        tl.store(gw_ptr + k * H * F + offs_h[:, None] * F + offs_f[None, :], gw, mask=mask_hf)


def _next_pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << (int(n) - 1).bit_length())


def toy_loss_grad_torch(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, importance: torch.Tensor,
                        relu: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference: autograd through the plain forward. Returns (loss (I,), ∂ΣL/∂W, ∂ΣL/∂b)."""
    with torch.enable_grad():
        Wr = W.detach().requires_grad_(True)
        br = b.detach().requires_grad_(True)
        z = torch.baddbmm(br[:, None, :], torch.bmm(x, Wr.mT), Wr)
        y = torch.relu(z) if relu else z
        loss = torch.einsum("ibf,if->i", (y - x) ** 2, importance) / x.shape[1]
        gW, gb = torch.autograd.grad(loss.sum(), (Wr, br))
    return loss.detach(), gW, gb


def toy_loss_grad_triton(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, importance: torch.Tensor,
                         relu: bool = True, *, block_b: int = 32,
                         precision: str = "ieee") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused kernel: one program per instance. ``precision="tf32"`` trades accuracy for speed
    on tensor cores (default ``"ieee"``: true float32 products, comparable with the reference)."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not importable; use backend='torch'")
    n_inst, H, F = W.shape
    B = x.shape[1]
    if F > TRITON_MAX_FEATURES or H > TRITON_MAX_HIDDEN:
        raise ValueError(f"the Triton toy kernel holds W in registers: n_features <= {TRITON_MAX_FEATURES}"
                         f" and n_hidden <= {TRITON_MAX_HIDDEN}, got F={F}, H={H}; use backend='torch'")
    check_runnable(_toy_kernel, W.device)
    f32 = {"dtype": torch.float32}
    W, b, x, imp = (t.to(**f32).contiguous() for t in (W, b, x, importance))
    loss = torch.empty(n_inst, device=W.device, **f32)
    gW, gb = torch.empty_like(W), torch.empty_like(b)
    bf, bh = _next_pow2(F), _next_pow2(H)
    _toy_kernel[(n_inst,)](x, W, b, imp, loss, gW, gb, B, F, H, 2.0 / B, RELU=bool(relu),
                           BLOCK_B=block_b, BLOCK_F=bf, BLOCK_H=bh, PRECISION=precision,
                           num_warps=4 if bf * max(bh, block_b) <= 4096 else 8)
    return loss, gW, gb


def toy_loss_grad(W, b, x, importance, *, variant: str = "relu", device=None,
                  backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss per instance and the gradients of its sum for batched toy models (one fused launch).

    Parameters
    ----------
    W : (instance, hidden, feature) ;  b, importance : (instance, feature) ;  x : (instance, batch, feature)
    variant : {"relu", "linear"}
        x' = ReLU(WᵀW x + b) or WᵀW x + b (Elhage et al. 2022).
    device : None keeps W's device; "auto"/"cpu"/"cuda" move the inputs.
    backend : "auto" (Triton on CUDA for float32 models that fit in registers, else torch), "triton",
        "torch".

    Returns
    -------
    loss : (instance,) ;  grad_W : like W ;  grad_b : like b
    """
    if variant not in ("relu", "linear"):
        raise ValueError(f"variant must be 'relu' or 'linear' (the 'abs' variant has no kernel), got {variant!r}")
    dev = target_device(device, W)
    W = as_tensor(W, "W", ndim=3, device=dev)
    n_inst, H, F = W.shape
    b = as_tensor(b, "b", ndim=2, device=dev)
    x = as_tensor(x, "x", ndim=3, device=dev)
    importance = as_tensor(importance, "importance", ndim=2, device=dev)
    for name, t, shape in (("b", b, (n_inst, F)), ("importance", importance, (n_inst, F))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape (instance, feature)={shape}, got {tuple(t.shape)}")
    if x.shape[0] != n_inst or x.shape[2] != F:
        raise ValueError(f"x must have shape (instance={n_inst}, batch, feature={F}), got {tuple(x.shape)}")
    chosen = choose_backend(backend, dev)
    too_big = F > TRITON_MAX_FEATURES or H > TRITON_MAX_HIDDEN
    if chosen == "triton" and backend == "auto" and (too_big or W.dtype != torch.float32):
        chosen = "torch"
    if chosen == "triton":
        return toy_loss_grad_triton(W, b, x, importance, relu=variant == "relu")
    return toy_loss_grad_torch(W, b, x, importance, relu=variant == "relu")
