"""CPU kernels (Numba) for the toy-model training step: a chunk of instances in one call.

On the CPU a step of :meth:`workbench.superposition.toy.ToyModels.sample_loss_and_grad` runs, per chunk of
instances (Elhage et al. 2022, "Toy Models of Superposition"; shapes as in ``workbench.superposition.toy``),
all in compiled code with the GIL released (:func:`chunks_loss_grad_`, one call per thread)::

    uniforms → x    h = W x    z = Wᵀh + b    D, loss, ΣD    u = W diag(s) D    h Dᵀ, u xᵀ → ∂W, ∂b
    draw_features   matmul_rows_ (×3)         error_terms_                  outer_sums_ (×2)

Uniforms come row by row from SIMD lanes of SFC64 streams (:mod:`workbench.superposition.lane_rng`) and
are used while in L1; the products run along the batch axis with register-blocked loops (faster
than torch's MKL ``bmm`` on these thin shapes) and go through the hidden layer, (5H + 1)
multiply-adds per batch entry instead of the 2F + 2 of the route through M = WᵀW. A chunk is about
one instance of 20 features × 1024 samples, so its arrays stay in L2. Measured per batch entry on
one core here: 0.53 ns drawing, 0.96 ns the five products, 0.13 ns the element-wise pass. The torch
code they replace stays as the reference they must match bit for bit (features) or to rounding
(loss, gradients): :meth:`ToyModels._sample_` and :func:`workbench.superposition.toy.batch_loss_grad`.

The kernels compile on first use (~15–25 s on 2 cores) and are cached on disk next to this file
(Numba's ``cache=True``); a later process's first step, loading them, takes ~1 s.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from workbench.parallel import WorkerPool
from workbench.superposition.lane_rng import LANES, draw_row
from workbench.superposition.work_queue import claim, new_counter

__all__ = ["batch_loss_grad_cpu", "chunks_loss_grad_", "draw_features", "error_terms_", "given_loss_grad_",
           "loss_grad_", "loss_grad_scratch", "matmul_rows_", "outer_sums_"]

_JIT = {"nogil": True, "cache": True, "boundscheck": False}
_SUMS = {"reassoc", "contract", "nsz"}  # lets sums vectorise (reordered); NaN and Inf still propagate


@numba.njit(**_JIT)
def draw_features(state: np.ndarray, inv_prob: np.ndarray, cdf: np.ndarray, nonempty: bool,
                  out: np.ndarray) -> None:
    """Draw features x (c, F, B) into ``out[:, :F]`` (``out`` may be the (c, F+1, B) buffer
    [x; 1]) from the lane stream ``state`` ((4, LANES), advanced): what
    :meth:`ToyModels.generate_batch` draws from a :class:`~workbench.superposition.lane_rng.LaneStream`
    with that state, bit for bit, each row of B uniforms drawn into L1 and used at once.

    A feature is x = u·(1/p) where that is < 1, else 0 (u uniform; ``inv_prob`` = 1/p (c, F)):
    present with probability p and then U[0, 1], from one uniform. With ``nonempty`` the sample
    is conditioned on x ≠ 0: first one uniform u₀ per sample (c rows of B, drawn before the
    features), K = #{k : C_k < u₀} (``cdf`` (c, F) from ``ToyModels._first_cdf``) is the first
    active feature, features before K are 0 and feature K is u itself (U[0, 1], independent of K).
    """
    c, B = out.shape[0], out.shape[2]
    F = inv_prob.shape[1]
    one, zero = np.float32(1.0), np.float32(0.0)
    a, b, cc, w = state[0].copy(), state[1].copy(), state[2].copy(), state[3].copy()
    spare, u_row = np.empty(2 * LANES, np.float32), np.empty(B, np.float32)
    u0 = np.empty((c if nonempty else 0, B), np.float32)
    for i in range(u0.shape[0]):
        draw_row(a, b, cc, w, u0[i], spare)
    for i in range(c):
        for f in range(F):
            draw_row(a, b, cc, w, u_row, spare)
            r, x_row = inv_prob[i, f], out[i, f]
            if nonempty:  # f < K iff C_f < u₀; f = K iff also f = 0 or C_{f−1} < u₀
                c_f, c_before, u0_row = cdf[i, f], cdf[i, f - 1] if f else np.float32(-1.0), u0[i]
                for k in range(B):
                    u, v = u_row[k], u0_row[k]
                    q = u * r
                    x_row[k] = zero if c_f < v else (u if c_before < v else (q if q < one else zero))
            else:
                for k in range(B):
                    q = u_row[k] * r
                    x_row[k] = q if q < one else zero
    state[0], state[1], state[2], state[3] = a, b, cc, w


@numba.njit(fastmath=_SUMS, **_JIT)
def matmul_rows_(m: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out = M X per instance, along the batch: ``out[i, k, b]`` = Σ_r m[i, k, r] x[i, r, b] for
    m (c, K, R), x (c, ≥R, B) (its first R rows are read) and out (c, K, B).

    Rows of X go in groups of four (the last one padded with zero rows), rows of ``out`` in
    blocks of four, then one at a time: per batch position a block does 16 multiply-adds on four
    loaded values, and each output row is written ⌈R/4⌉ times while in L1. A remainder of two
    rows (R = 4q + 2 > 4) joins the first group as a group of six, which saves a pass over
    ``out``: z = Wᵀh + b with H = 5 (R = 6) takes one pass instead of two (4.0 vs 6.0 µs at
    F = 20, B = 1024).
    """
    c, K, R = m.shape
    B = x.shape[2]
    six = R > 4 and R % 4 == 2
    R4 = R if six else R + (-R) % 4  # padded width
    zero_row, Mp = np.zeros(B, np.float32), np.zeros((K, R4), np.float32)   # padding
    for i in range(c):
        X, Z = x[i], out[i]
        Mp[:, :R] = m[i]
        if six:
            _six_rows(X, Z, Mp)
        for r in range(6 if six else 0, R4, 4):
            x0 = X[r]
            x1 = X[r + 1] if r + 1 < R else zero_row
            x2 = X[r + 2] if r + 2 < R else zero_row
            x3 = X[r + 3] if r + 3 < R else zero_row
            for k in range(0, K - 3, 4):
                z0, z1, z2, z3 = Z[k], Z[k + 1], Z[k + 2], Z[k + 3]
                a00, a01, a02, a03 = Mp[k, r], Mp[k, r + 1], Mp[k, r + 2], Mp[k, r + 3]
                a10, a11, a12, a13 = Mp[k + 1, r], Mp[k + 1, r + 1], Mp[k + 1, r + 2], Mp[k + 1, r + 3]
                a20, a21, a22, a23 = Mp[k + 2, r], Mp[k + 2, r + 1], Mp[k + 2, r + 2], Mp[k + 2, r + 3]
                a30, a31, a32, a33 = Mp[k + 3, r], Mp[k + 3, r + 1], Mp[k + 3, r + 2], Mp[k + 3, r + 3]
                if r == 0:  # (two loops: a branch inside stops the vectoriser)
                    for t in range(B):
                        v0, v1, v2, v3 = x0[t], x1[t], x2[t], x3[t]
                        z0[t] = a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3
                        z1[t] = a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3
                        z2[t] = a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3
                        z3[t] = a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3
                else:
                    for t in range(B):
                        v0, v1, v2, v3 = x0[t], x1[t], x2[t], x3[t]
                        z0[t] += a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3
                        z1[t] += a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3
                        z2[t] += a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3
                        z3[t] += a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3
            for k in range(K - K % 4, K):
                z0, a00, a01, a02, a03 = Z[k], Mp[k, r], Mp[k, r + 1], Mp[k, r + 2], Mp[k, r + 3]
                if r == 0:
                    for t in range(B):
                        z0[t] = a00 * x0[t] + a01 * x1[t] + a02 * x2[t] + a03 * x3[t]
                else:
                    for t in range(B):
                        z0[t] += a00 * x0[t] + a01 * x1[t] + a02 * x2[t] + a03 * x3[t]


@numba.njit(inline="always", fastmath=_SUMS, **_JIT)
def _six_rows(X: np.ndarray, Z: np.ndarray, Mp: np.ndarray) -> None:
    """Z = Mp[:, :6] X[:6]: the first group of :func:`matmul_rows_` when it has six rows, output
    rows in blocks of four, then one at a time (Z may have more rows than Mp: only Mp's are written)."""
    K, B = Mp.shape[0], Z.shape[1]
    x0, x1, x2, x3, x4, x5 = X[0], X[1], X[2], X[3], X[4], X[5]
    for k in range(0, K - 3, 4):
        z0, z1, z2, z3 = Z[k], Z[k + 1], Z[k + 2], Z[k + 3]
        m0, m1, m2, m3 = Mp[k], Mp[k + 1], Mp[k + 2], Mp[k + 3]
        a00, a01, a02, a03, a04, a05 = m0[0], m0[1], m0[2], m0[3], m0[4], m0[5]
        a10, a11, a12, a13, a14, a15 = m1[0], m1[1], m1[2], m1[3], m1[4], m1[5]
        a20, a21, a22, a23, a24, a25 = m2[0], m2[1], m2[2], m2[3], m2[4], m2[5]
        a30, a31, a32, a33, a34, a35 = m3[0], m3[1], m3[2], m3[3], m3[4], m3[5]
        for t in range(B):
            v0, v1, v2, v3, v4, v5 = x0[t], x1[t], x2[t], x3[t], x4[t], x5[t]
            z0[t] = a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3 + a04 * v4 + a05 * v5
            z1[t] = a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3 + a14 * v4 + a15 * v5
            z2[t] = a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3 + a24 * v4 + a25 * v5
            z3[t] = a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3 + a34 * v4 + a35 * v5
    for k in range(K - K % 4, K):
        z0, m0 = Z[k], Mp[k]
        a00, a01, a02, a03, a04, a05 = m0[0], m0[1], m0[2], m0[3], m0[4], m0[5]
        for t in range(B):
            z0[t] = a00 * x0[t] + a01 * x1[t] + a02 * x2[t] + a03 * x3[t] + a04 * x4[t] + a05 * x5[t]


@numba.njit(fastmath=_SUMS, **_JIT)
def error_terms_(z: np.ndarray, x1_t: np.ndarray, importance: np.ndarray, relu: bool,
                 loss: np.ndarray, d_sum: np.ndarray) -> None:
    """Given z = Wᵀh + b (c, F, B), write D = e ⊙ 1[z > 0] into ``z`` (e = x' − x, x' = ReLU(z);
    linear: D = e = z − x), the loss L = (1/B) Σ_{f,b} I_f e² into ``loss`` (c,) and Σ_b D into
    ``d_sum`` (c, F).

    ``x1_t`` is [x; 1] (c, F+1, B) (only its first F rows are read), ``importance`` (c, F).
    """
    c, F, B = z.shape
    zero = np.float32(0.0)
    for i in range(c):
        total = 0.0
        for f in range(F):
            z_row, x_row = z[i, f], x1_t[i, f]
            acc, acc_d = np.float32(0.0), np.float32(0.0)
            if relu:
                for b in range(B):
                    zb = z_row[b]
                    on = zb > zero
                    e = (zb if on else zero) - x_row[b]
                    d = e if on else zero
                    acc += e * e
                    acc_d += d
                    z_row[b] = d
            else:
                for b in range(B):
                    e = z_row[b] - x_row[b]
                    acc += e * e
                    acc_d += e
                    z_row[b] = e
            total += acc * importance[i, f]
            d_sum[i, f] = acc_d
        loss[i] = total / B


@numba.njit(inline="always", fastmath=_SUMS, **_JIT)
def _dot(a: np.ndarray, b: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for t in range(a.shape[0]):
        acc += a[t] * b[t]
    return acc


@numba.njit(fastmath=_SUMS, **_JIT)
def outer_sums_(a: np.ndarray, d: np.ndarray, g: np.ndarray) -> None:
    """g = Σ_b a dᵀ per instance: ``g[i, r, k]`` = Σ_b a[i, r, b] d[i, k, b] for g (c, R, K),
    a (c, ≥R, B) and d (c, ≥K, B) (their first R and K rows), both read along the batch.

    The hot loop keeps a 5×2 block of g in ten vector accumulators and reads each of the seven
    rows once per batch position: ~2x torch's (MKL) ``bmm`` on these shapes (4×4 and 2×5 blocks
    were slower). Edge rows and columns are dots.
    """
    c, R, K = g.shape
    for i in range(c):
        X, D, G = a[i], d[i], g[i]
        for r in range(0, R - 4, 5):
            x0, x1, x2, x3, x4 = X[r], X[r + 1], X[r + 2], X[r + 3], X[r + 4]
            for k in range(0, K - 1, 2):
                d0, d1 = D[k], D[k + 1]
                a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = a40 = a41 = np.float32(0.0)
                for t in range(X.shape[1]):
                    e0, e1 = d0[t], d1[t]
                    v = x0[t]
                    a00 += v * e0
                    a01 += v * e1
                    v = x1[t]
                    a10 += v * e0
                    a11 += v * e1
                    v = x2[t]
                    a20 += v * e0
                    a21 += v * e1
                    v = x3[t]
                    a30 += v * e0
                    a31 += v * e1
                    v = x4[t]
                    a40 += v * e0
                    a41 += v * e1
                G[r, k], G[r, k + 1], G[r + 1, k], G[r + 1, k + 1] = a00, a01, a10, a11
                G[r + 2, k], G[r + 2, k + 1], G[r + 3, k], G[r + 3, k + 1] = a20, a21, a30, a31
                G[r + 4, k], G[r + 4, k + 1] = a40, a41
            if K % 2:
                for j in range(5):
                    G[r + j, K - 1] = _dot(X[r + j], D[K - 1])
        for r in range(R - R % 5, R):
            for k in range(K):
                G[r, k] = _dot(X[r], D[k])


@numba.njit(**_JIT)
def loss_grad_(x1_t: np.ndarray, W: np.ndarray, b: np.ndarray, importance: np.ndarray, relu: bool,
               scratch: tuple, loss: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray) -> None:
    """Loss (c,) and gradients of x' = ReLU(WᵀW x + b) on the batch [x; 1] = ``x1_t`` (c, F+1, B),
    through the hidden layer h = W x (Elhage et al. 2022; L = (1/B) Σ_{b,f} I_f (x'_f − x_f)²):
    with z = Wᵀh + b, D = e ⊙ 1[z > 0] (e = x' − x; linear: D = e), s = 2 I / B and u = W diag(s) D,

        ∂L/∂W = (h Dᵀ) diag(s) + u xᵀ,    ∂L/∂b = s ⊙ Σ_b D,

    five products along the batch (:func:`matmul_rows_` for h, z, u; :func:`outer_sums_` for
    h Dᵀ and u xᵀ; Σ_b D comes with the element-wise pass): 5H + 1 multiply-adds per batch entry
    instead of the 2F + 2 of the route through M = WᵀW that
    :func:`workbench.superposition.toy.batch_loss_grad` (the reference) takes. ``scratch`` is
    :func:`loss_grad_scratch` of at least c instances.
    """
    c, H, F = W.shape
    B = x1_t.shape[2]
    h1, z, u, WTb, Ws, g1, g2, d_sum = scratch
    for i in range(c):
        for k in range(F):
            sk = importance[i, k] * np.float32(2.0 / B)
            for j in range(H):
                WTb[i, k, j] = W[i, j, k]
                Ws[i, j, k] = W[i, j, k] * sk
            WTb[i, k, H] = b[i, k]
    matmul_rows_(W, x1_t, h1)                                         # h = W x (rows :H of [h; 1])
    matmul_rows_(WTb[:c], h1, z)                                      # z = Wᵀh + b
    error_terms_(z[:c], x1_t, importance, relu, loss, d_sum)          # z ← D, and Σ_b D
    matmul_rows_(Ws[:c], z, u)                                        # u = W diag(s) D
    outer_sums_(h1, z, g1[:c])                                        # h Dᵀ
    outer_sums_(u, x1_t, g2[:c])                                      # u xᵀ
    for i in range(c):
        for k in range(F):
            sk = importance[i, k] * np.float32(2.0 / B)
            for j in range(H):
                grad_w[i, j, k] = g1[i, j, k] * sk + g2[i, j, k]
            grad_b[i, k] = d_sum[i, k] * sk


@numba.njit(**_JIT)
def loss_grad_scratch(n: int, F: int, H: int, B: int) -> tuple:
    """Work arrays of :func:`loss_grad_` for ``n`` instances: [h; 1], z (then D), u, [Wᵀ | b],
    W diag(s), h Dᵀ, u xᵀ and Σ_b D."""
    h1 = np.ones((n, H + 1, B), np.float32)
    return (h1, np.empty((n, F, B), np.float32), np.empty((n, H, B), np.float32),
            np.empty((n, F, H + 1), np.float32), np.empty((n, H, F), np.float32),
            np.empty((n, H, F), np.float32), np.empty((n, H, F), np.float32), np.empty((n, F), np.float32))


@numba.njit(**_JIT)
def chunks_loss_grad_(states: np.ndarray, per: int, counter: np.ndarray, inv_prob: np.ndarray, cdf: np.ndarray,
                      nonempty: bool, W: np.ndarray, b: np.ndarray, importance: np.ndarray, relu: bool,
                      batch: int, loss: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray) -> None:
    """Batch loss and gradients of the chunks of a step this thread claims from ``counter``
    (:func:`~workbench.superposition.work_queue.claim`; every thread of the step shares it), in one call:
    chunk j holds instances j·per … (j+1)·per − 1, draws its batch of ``batch`` samples from lane
    state ``states[j]`` (:func:`draw_features`) and runs :func:`loss_grad_` on it while it is in
    cache. ``inv_prob`` (1/p), ``cdf``, ``importance``, ``b`` and ``grad_b`` (I, F), ``W`` and ``grad_w``
    (I, H, F) and ``loss`` (I,) are the whole model's; each chunk writes its own rows only."""
    I, H, F = W.shape
    x1_t = np.ones((per, F + 1, batch), np.float32)                    # [x; 1]
    scratch = loss_grad_scratch(per, F, H, batch)
    while True:
        j = claim(counter)
        if j >= states.shape[0]:
            break
        lo, hi = j * per, min(I, (j + 1) * per)
        draw_features(states[j], inv_prob[lo:hi], cdf[lo:hi], nonempty, x1_t[:hi - lo])
        loss_grad_(x1_t[:hi - lo], W[lo:hi], b[lo:hi], importance[lo:hi], relu, scratch, loss[lo:hi],
                   grad_w[lo:hi], grad_b[lo:hi])


@numba.njit(**_JIT)
def given_loss_grad_(x1_t: np.ndarray, counter: np.ndarray, W: np.ndarray, b: np.ndarray,
                     importance: np.ndarray, relu: bool, loss: np.ndarray, grad_w: np.ndarray,
                     grad_b: np.ndarray) -> None:
    """:func:`loss_grad_` of the instances of a given batch [x; 1] (I, F+1, B) this thread claims
    from ``counter``, one instance at a time so its work arrays stay in cache."""
    I, H, F = W.shape
    scratch = loss_grad_scratch(1, F, H, x1_t.shape[2])
    while True:
        i = claim(counter)
        if i >= I:
            break
        loss_grad_(x1_t[i:i + 1], W[i:i + 1], b[i:i + 1], importance[i:i + 1], relu, scratch, loss[i:i + 1],
                   grad_w[i:i + 1], grad_b[i:i + 1])


def batch_loss_grad_cpu(W: torch.Tensor, b: torch.Tensor, importance: torch.Tensor, x1_t: torch.Tensor,
                        *, relu: bool, grad_w: torch.Tensor, grad_b: torch.Tensor,
                        threads: int | None = None) -> torch.Tensor:
    """The loss (c,) and gradients of :func:`workbench.superposition.toy.batch_loss_grad` (same inputs
    but W and b for [WᵀW | b]) for contiguous CPU float32 tensors, by :func:`given_loss_grad_`,
    the instances spread over ``threads`` threads (default ``torch.get_num_threads()``)."""
    loss = torch.empty(W.shape[0])
    args = (W.numpy(), b.numpy(), importance.numpy(), relu, loss.numpy(), grad_w.numpy(), grad_b.numpy())
    workers = max(1, min(threads or torch.get_num_threads(), W.shape[0]))
    counter = new_counter()
    with WorkerPool(workers - 1) as pool:
        pool.run(lambda: given_loss_grad_(x1_t.numpy(), counter, *args), workers)
    return loss
