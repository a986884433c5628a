"""CPU kernels (Numba) for the toy-model training step: the element-wise stages, one pass each.

On the CPU a step of :meth:`workbench.models.toy.ToyModels.sample_loss_and_grad` is, per chunk of
instances (Elhage et al. 2022, "Toy Models of Superposition"; shapes as in ``workbench.models.toy``)::

    uniforms u, u₀  →  features x  →  z = [WᵀW | b] [x; 1]  →  e, D, loss  →  G = [x; 1] Dᵀ
    (numpy float64)   (this module)   (torch bmm)               (this module)   (torch bmm)

torch runs each element-wise stage as 4–8 memory passes, and numpy's float32 uniforms hold the GIL,
so two threads barely beat one. These kernels do each stage in one pass with the GIL released; the
GEMMs stay in torch (MKL is faster there than loops compiled here), and the small tail (scaling,
G + Gᵀ, W (G + Gᵀ)) is one more kernel instead of five torch calls of ~6 µs each. The torch code
they replace stays as the reference they must match bit for bit (features) or to rounding (loss,
gradients): :meth:`ToyModels._sample_` and :func:`workbench.models.toy.batch_loss_grad` (tests).

The kernels compile on first use (~2 s) and are cached on disk next to this file (Numba's
``cache=True``), so later processes load them in milliseconds.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["batch_loss_grad_cpu", "error_terms_", "gradients_", "sample_features", "uniforms_from_doubles"]

_JIT = {"nogil": True, "cache": True, "boundscheck": False}
_TWO24 = 16777216.0  # 2**24: a float32 in [0, 1) carries 24 random bits, as torch.rand's


@numba.njit(**_JIT)
def uniforms_from_doubles(d: np.ndarray, out: np.ndarray) -> None:
    """Two float32 U[0, 1) per float64 uniform: ``out[2j]``, ``out[2j+1]`` are bits 1–24 and 25–48
    of ``d[j]`` (53 random bits), so ``out`` of length n takes ⌈n/2⌉ doubles; each value is k·2⁻²⁴,
    k uniform on 0..2²⁴−1, and the two halves are independent."""
    n = out.shape[0]
    for j in range(n // 2):
        t = d[j] * _TWO24
        hi = np.floor(t)
        out[2 * j] = np.float32(hi / _TWO24)
        out[2 * j + 1] = np.float32(np.floor((t - hi) * _TWO24) / _TWO24)
    if n % 2:
        out[n - 1] = np.float32(np.floor(d[n // 2] * _TWO24) / _TWO24)


@numba.njit(**_JIT)
def sample_features(u_t: np.ndarray, u0: np.ndarray, prob: np.ndarray, cdf: np.ndarray,
                    nonempty: bool, out: np.ndarray) -> None:
    """Features x (c, F, B) from uniforms ``u_t`` (c, F, B) into ``out[:, :F]`` (``out`` may be the
    (c, F+1, B) buffer [x; 1]): x = u/p where u/p < 1, else 0 — present with probability p and then
    U[0, 1], from one uniform.

    With ``nonempty`` the sample is conditioned on x ≠ 0: K = #{k : C_k < u₀} (``u0`` (c, B),
    ``cdf`` (c, F) from ``ToyModels._first_cdf``) is the first active feature, features before K
    are 0 and feature K is ``u_t`` itself (U[0, 1], independent of K). Same arithmetic, and so the
    same bits, as :meth:`ToyModels._sample_`.
    """
    c, F, B = u_t.shape
    one, zero = np.float32(1.0), np.float32(0.0)
    first = np.empty(B, np.float32)  # K per sample, as a float (compared with f below)
    for i in range(c):
        if nonempty:
            first[:] = zero
            for f in range(F):
                cf = cdf[i, f]
                for b in range(B):
                    first[b] += one if cf < u0[i, b] else zero
        for f in range(F):
            p, ff = prob[i, f], np.float32(f)
            u_row, x_row = u_t[i, f], out[i, f]
            if nonempty:
                for b in range(B):
                    u = u_row[b]
                    q = u / p
                    k = first[b]
                    x_row[b] = zero if ff < k else (u if ff == k else (q if q < one else zero))
            else:
                for b in range(B):
                    q = u_row[b] / p
                    x_row[b] = q if q < one else zero


@numba.njit(fastmath={"reassoc", "contract"}, **_JIT)  # reassoc: the loss sums vectorise
def error_terms_(z: np.ndarray, x1_t: np.ndarray, importance: np.ndarray, relu: bool,
                 loss: np.ndarray) -> None:
    """Given z = M x + b (c, F, B), write D = e ⊙ 1[z > 0] into ``z`` (e = x' − x, x' = ReLU(z);
    linear: D = e = z − x) and the loss L = (1/B) Σ_{f,b} I_f e² into ``loss`` (c,).

    ``x1_t`` is [x; 1] (c, F+1, B) (only its first F rows are read), ``importance`` (c, F).
    """
    c, F, B = z.shape
    zero = np.float32(0.0)
    for i in range(c):
        total = 0.0
        for f in range(F):
            z_row, x_row = z[i, f], x1_t[i, f]
            acc = np.float32(0.0)
            if relu:
                for b in range(B):
                    zb = z_row[b]
                    on = zb > zero
                    e = (zb if on else zero) - x_row[b]
                    acc += e * e
                    z_row[b] = e if on else zero
            else:
                for b in range(B):
                    e = z_row[b] - x_row[b]
                    acc += e * e
                    z_row[b] = e
            total += acc * importance[i, f]
        loss[i] = total / B


@numba.njit(**_JIT)
def gradients_(g: np.ndarray, W: np.ndarray, importance: np.ndarray, batch: int,
               grad_w: np.ndarray, grad_b: np.ndarray) -> None:
    """From g = Σ_b [x; 1] Dᵀ (c, F+1, F): with s = 2 I / B, G = g[:F] diag(s),
    ∂L/∂W = W (G + Gᵀ) into ``grad_w`` (c, H, F) and ∂L/∂b = g[F] ⊙ s into ``grad_b`` (c, F)."""
    c, H, F = W.shape
    G = np.empty((F, F), np.float32)
    s = np.empty(F, np.float32)
    for i in range(c):
        for f in range(F):
            s[f] = importance[i, f] * np.float32(2.0 / batch)
        for f in range(F):
            for k in range(F):
                G[f, k] = g[i, f, k] * s[k]
        for f in range(F):
            grad_b[i, f] = g[i, F, f] * s[f]
            for k in range(f, F):
                G[f, k] = G[k, f] = G[f, k] + G[k, f]                   # G + Gᵀ
        for h in range(H):
            for f in range(F):
                acc = np.float32(0.0)
                for k in range(F):
                    acc += W[i, h, k] * G[k, f]
                grad_w[i, h, f] = acc


def batch_loss_grad_cpu(Mb: torch.Tensor, W: torch.Tensor, importance: torch.Tensor, x1_t: torch.Tensor,
                        *, relu: bool, grad_w: torch.Tensor, grad_b: torch.Tensor) -> torch.Tensor:
    """:func:`workbench.models.toy.batch_loss_grad` for contiguous CPU float32 tensors: the two GEMMs
    in torch, the element-wise pass (:func:`error_terms_`) and the tail (:func:`gradients_`) here."""
    z = torch.bmm(Mb, x1_t)                                             # z = M x + b: (c, F, B)
    loss = torch.empty(z.shape[0])
    error_terms_(z.numpy(), x1_t.numpy(), importance.numpy(), relu, loss.numpy())   # z ← D
    g = torch.bmm(x1_t, z.mT)                                           # Σ_b [x; 1] Dᵀ: (c, F+1, F)
    gradients_(g.numpy(), W.numpy(), importance.numpy(), x1_t.shape[2], grad_w.numpy(), grad_b.numpy())
    return loss
