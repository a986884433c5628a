"""Batched toy models of superposition: many independent small models in one tensor program.

Each instance ``k`` is the paper's toy model [1]_ with its own weights, feature probability and
feature importances, and all instances train together: every operation is an ``einsum`` over a
leading ``instance`` axis, never a Python loop.

Variants (``variant=``):

``"relu"``   h = W x,  x' = ReLU(Wᵀ h + b)                      ([1]_, section "Demonstrating Superposition")
``"linear"`` h = W x,  x' = Wᵀ h + b                            (the paper's linear baseline)
``"abs"``    h = ReLU(W x),  y' = ReLU(W_out h + b),  target |x|  ([1]_, "Computation in Superposition";
             inputs are uniform on [-1, 1] when present)

Shapes use the short names I (instance), F (feature), H (hidden), B (batch); batches are (I, B, F):
``W`` is (I, H, F), ``b`` is (I, F), ``W_out`` (abs only) is (I, F, H).

References
----------
.. [1] Elhage, N. et al. (2022). Toy Models of Superposition. Transformer Circuits Thread.
   https://transformer-circuits.pub/2022/toy_model/index.html
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from workbench.parallel import WorkerPool, torch_threads
from workbench.validation import as_tensor, check_range

if TYPE_CHECKING:  # workbench.kernels is imported where used: its Triton kernels read TRITON_INTERPRET then
    from workbench.superposition.lane_rng import LaneStream

    RandomSource = torch.Generator | np.random.Generator | LaneStream | None

VARIANTS = ("relu", "linear", "abs")
MIN_CHUNKS_PER_THREAD = 4  # sample_loss_and_grad: fewer chunks run on the calling thread


def fill_uniform(out: torch.Tensor, generator: RandomSource = None) -> torch.Tensor:
    """Fill ``out`` in place with U[0, 1) float32 (24 random bits each, as ``torch.rand``).

    A :class:`~workbench.superposition.lane_rng.LaneStream` (contiguous CPU float32 ``out`` only) draws
    from its 16 SIMD lanes of SFC64 and continues its stream, ~0.3 ns a value with the GIL
    released; a ``numpy.random.Generator`` seeds a fresh ``LaneStream`` from its next 768 bits and
    draws from that (numpy's own float32 draws take ~2.4 ns and hold the GIL). A
    ``torch.Generator`` (or None: torch's default) draws exactly ``torch.rand``'s numbers.
    """
    from workbench.superposition.lane_rng import LaneStream

    if isinstance(generator, np.random.Generator):
        generator = LaneStream.spawn(generator)
    if isinstance(generator, LaneStream):
        generator.fill(out.numpy())
    else:
        out.uniform_(generator=generator)
    return out


def augmented_weights(W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[WᵀW | b], shape (c, F, F+1): z = WᵀW x + b = [WᵀW | b] [x; 1] (see :func:`batch_loss_grad`)."""
    return torch.cat((W.mT @ W, b[:, :, None]), 2)


def batch_loss_grad(Mb: torch.Tensor, W: torch.Tensor, importance: torch.Tensor, x1_t: torch.Tensor, *,
                    relu: bool, grad_w: torch.Tensor, grad_b: torch.Tensor) -> torch.Tensor:
    r"""Loss per instance (c,) of x' = ReLU(Wᵀ W x + b) (or linear); ∂ΣL/∂W, ∂ΣL/∂b into ``grad_*``.

    ``x1_t`` is the batch feature-major with a row of ones appended, [x; 1] of shape (c, F+1, B),
    so element-wise work runs along the long batch axis and the bias rides in the matrix products;
    ``Mb`` is :func:`augmented_weights` (W, b). Hand-derived backward pass ([1]_, loss
    L = (1/B) Σ_{b,f} I_f (x'_f − x_f)²) through the symmetric M = WᵀW: with z = M x + b,
    e = x' − x, D = e ⊙ 1[z > 0] (relu) and s = 2 I / B,

    .. math:: [G; ∂L/∂b] = (Σ_b [x; 1] Dᵀ) \operatorname{diag}(s),\qquad ∂L/∂W = W (G + Gᵀ),

    where G = ∂L/∂M: two GEMMs, and s scales the small (F+1)×F result, not the batch. This is the
    reference of :func:`workbench.superposition.cpu_step.batch_loss_grad_cpu` (the CPU path), which goes
    through the hidden layer instead (:func:`workbench.superposition.cpu_step.loss_grad_`).
    """
    F, B = W.shape[2], x1_t.shape[2]
    x_t = x1_t[:, :F]
    z = torch.bmm(Mb, x1_t)                                             # z = M x + b: (c, F, B)
    if relu:
        z.clamp_min_(0.0)                                               # x' = ReLU(z) in place
    e = torch.sub(z, x_t) if relu else z.sub_(x_t)                      # e = x' − x
    loss = (torch.linalg.vecdot(e, e) * importance).sum(-1) / B         # (c,)
    if relu:                                                            # D: 0 where x' = 0
        e = torch.ops.aten.threshold_backward.grad_input(e, z, 0.0, grad_input=e)
    s = importance * (2.0 / B)                                          # (c, F)
    g = torch.bmm(x1_t, e.mT).mul_(s[:, None, :])                       # [∂L/∂M; ∂L/∂b]: (c, F+1, F)
    torch.bmm(W, g[:, :F] + g[:, :F].mT, out=grad_w)
    grad_b.copy_(g[:, F])
    return loss


def _per_instance_feature(value: float | Sequence | np.ndarray | torch.Tensor, name: str,
                          n_instances: int, n_features: int) -> torch.Tensor:
    """Broadcast a scalar, (F,), (I,) or (I, F) value to an (I, F) float32 tensor."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = [float(value)] * n_features  # as_tensor makes 0-d input 1-d
    t = as_tensor(value, name, ndim=(1, 2), dtype=torch.float32)
    if t.ndim == 1:
        if t.shape[0] == n_features:
            return t[None, :].expand(n_instances, n_features).clone()
        if t.shape[0] == n_instances:
            return t[:, None].expand(n_instances, n_features).clone()
        raise ValueError(f"{name} of length {t.shape[0]} matches neither n_features={n_features} "
                         f"nor n_instances={n_instances}")
    if tuple(t.shape) != (n_instances, n_features):
        raise ValueError(f"{name} must have shape (n_instances, n_features)=({n_instances}, "
                         f"{n_features}), got {tuple(t.shape)}")
    return t.clone()


class ToyModels(nn.Module):
    """``n_instances`` independent toy models of superposition, trained in one batch.

    Parameters
    ----------
    n_instances, n_features, n_hidden : int
        Number of independent models I, input features n (F) and hidden dimensions m (H).
    feature_probability : float or array, default 1.0
        Probability 1 − S that a feature is non-zero; scalar, per feature (F,), per instance (I,)
        or (I, F). A 1-D value of length I = F is read as per feature.
    importance : float or array, default 1.0
        Importance I_i weighting each feature's squared error; same broadcasting rules.
    variant : {"relu", "linear", "abs"}
        Model family (see the module docstring).
    seed : int
        Seeds the weight initialisation (Xavier-normal ``W``, zero ``b``, as in the paper's code).

    Notes
    -----
    Loss per instance ([1]_, eq. "L = Σ_x Σ_i I_i (x_i − x'_i)²"), averaged over the batch:

    .. math:: L_k = \\mathbb{E}_x \\sum_i I_{k,i} (y_i - x'_i)^2,

    where y = x (relu, linear) or y = |x| (abs). Instances never interact: the total loss is a sum
    over instances and Adam is element-wise, so batched training equals a loop over instances.
    """

    def __init__(self, n_instances: int, n_features: int, n_hidden: int, *,
                 feature_probability: float | Sequence | np.ndarray | torch.Tensor = 1.0,
                 importance: float | Sequence | np.ndarray | torch.Tensor = 1.0,
                 variant: str = "relu", seed: int = 0) -> None:
        super().__init__()
        for name, val in (("n_instances", n_instances), ("n_features", n_features),
                          ("n_hidden", n_hidden)):
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.n_instances, self.n_features, self.n_hidden = int(n_instances), int(n_features), int(n_hidden)
        self.variant = variant
        prob = _per_instance_feature(feature_probability, "feature_probability", self.n_instances, self.n_features)
        if bool(((prob <= 0) | (prob > 1)).any()):
            raise ValueError("feature_probability must lie in (0, 1]")
        imp = _per_instance_feature(importance, "importance", self.n_instances, self.n_features)
        if bool((imp < 0).any()):
            raise ValueError("importance must be non-negative")
        self.register_buffer("feature_probability", prob)
        self.register_buffer("importance", imp)
        gen = torch.Generator().manual_seed(int(seed))
        std = (2.0 / (self.n_hidden + self.n_features)) ** 0.5  # xavier_normal_ on each (H, F)
        self.W = nn.Parameter(torch.randn(self.n_instances, self.n_hidden, self.n_features, generator=gen) * std)
        self.b = nn.Parameter(torch.zeros(self.n_instances, self.n_features))
        if variant == "abs":
            self.W_out = nn.Parameter(
                torch.randn(self.n_instances, self.n_features, self.n_hidden, generator=gen) * std)

    # --- data --------------------------------------------------------------------------------
    def empty_probability(self) -> torch.Tensor:
        """P(x = 0) = Π_i S_i per instance, shape (I,)."""
        return (1 - self.feature_probability).prod(-1)

    def generate_batch(self, batch_size: int, generator: RandomSource = None, *,
                       nonempty: bool = False) -> torch.Tensor:
        """Sample x of shape (I, B, F): each feature is 0 with probability S, else U[0, 1].

        Stored feature-major (the result is the transpose of a contiguous (I, F, B) tensor), so
        element-wise work runs along the batch and each instance is one ``bmm`` operand. One
        uniform draw u per entry serves both: the feature is present iff u/p < 1 (u/p computed as
        u·(1/p), a multiplication), and then u/p is again U[0, 1] — the same distribution as two
        independent draws, at half the cost.
        For the ``abs`` variant present features are U[-1, 1] ([1]_, computation in superposition).
        ``generator`` is a ``torch.Generator`` or (CPU only) a ``numpy.random.Generator`` or
        :class:`~workbench.superposition.lane_rng.LaneStream`, whose uniforms come from SIMD lanes of
        SFC64, ~7x faster than numpy's own float32 ones (see :func:`fill_uniform`).

        With ``nonempty=True`` the samples are drawn conditioned on x ≠ 0: the first active
        feature K has P(K = k) ∝ p_k Π_{j<k} S_j (inverse-CDF sampled), features after K are
        independent as usual. Combined with the exact loss of the empty sample (see
        :meth:`loss_per_instance`), this is an unbiased, much lower-variance estimate of the same
        loss when features are sparse (at S = 0.99, n = 2, 98 % of plain samples are empty).
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        shape, device = (self.n_instances, self.n_features, int(batch_size)), self.W.device
        u0 = fill_uniform(torch.empty(shape[::2], device=device), generator) if nonempty else None
        u_t = fill_uniform(torch.empty(shape, device=device), generator)
        return self._sample_(u_t, self.feature_probability, self._first_cdf() if nonempty else None,
                             u0, torch.empty_like(u_t)).mT

    def _sample_(self, u_t: torch.Tensor, prob: torch.Tensor, cdf: torch.Tensor | None,
                 u0: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
        """Write a feature-major batch (c, F, B) into ``out`` from uniforms ``u_t`` (c, F, B, overwritten).

        ``prob`` (c, F) are the feature probabilities; ``cdf`` (c, F) from :meth:`_first_cdf` and
        one uniform per sample ``u0`` (c, B) condition the samples on x ≠ 0 (None: plain samples).
        This is the reference of :func:`workbench.superposition.cpu_step.draw_features` (the CPU path).
        """
        r = prob.reciprocal()[:, :, None]                                    # 1/p: (c, F, 1)
        if cdf is not None:
            first = self._before_first_(cdf, u0, out)                        # out = −1[f < K]
            u_first = u_t.gather(1, first)                                   # U[0, 1], independent of K
        if self.variant == "abs":
            q = u_t.mul_(r)
            x = torch.mul(q, 2).sub_(1).mul_(q < 1)
            out.copy_(x if cdf is None else x.mul_(out.add_(1)))
        else:  # v = −u/p (−1 less before K); keep v where v > −1 (u < p, f ≥ K) else 0; x = −v
            v = torch.mul(u_t, r.neg(), out=out) if cdf is None else out.addcmul_(u_t, r, value=-1.0)
            torch.nn.functional.threshold_(v, -1.0, 0.0).neg_()
        if cdf is None:
            return out
        return out.scatter_(1, first, u_first.mul_(2).sub_(1) if self.variant == "abs" else u_first)

    def _first_cdf(self) -> torch.Tensor:
        """C_k = P(K ≤ k) of the first active feature K of a sample x ≠ 0, (I, F): C_k ∝ 1 − Π_{j≤k} S_j."""
        cdf = 1 - torch.cumprod(1 - self.feature_probability, -1)
        return cdf / cdf[:, -1:]                                             # last = 1

    @staticmethod
    def _before_first_(cdf: torch.Tensor, u0: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """K (c, 1, B) by inverting ``cdf`` with one uniform u₀ per sample (c, B); ``out`` = −1[f < K].

        K = #{k : C_k < u₀}, so f < K exactly when C_f < u₀; float subtraction is exact about zero,
        so min(sign(C_f − u₀), 0) is that indicator (negated) without a bool tensor.
        """
        torch.sub(cdf[:, :, None], u0[:, None, :], out=out).sign_().clamp_max_(0.0)
        return out.sum(1, keepdim=True).neg_().long()

    # --- model -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction x' (I, B, F) of a batch x (I, B, F)."""
        h = torch.bmm(x, self.W.transpose(1, 2))                            # (I, B, H)
        if self.variant == "abs":
            return torch.relu(torch.baddbmm(self.b[:, None, :], torch.relu(h), self.W_out.transpose(1, 2)))
        out = torch.baddbmm(self.b[:, None, :], h, self.W)                   # (I, B, F)
        return out if self.variant == "linear" else torch.relu(out)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the model should output: x itself, or |x| for the ``abs`` variant."""
        return x.abs() if self.variant == "abs" else x

    def empty_loss(self) -> torch.Tensor:
        """Exact loss of the sample x = 0: Σ_i I_i f(b_i)², f = ReLU (identity if linear), (I,)."""
        out = self.b if self.variant == "linear" else torch.relu(self.b)
        return (out.square() * self.importance).sum(-1)

    def loss_per_instance(self, x: torch.Tensor, *, nonempty: bool = False) -> torch.Tensor:
        """Importance-weighted squared error per instance, mean over the batch: shape (I,).

        With ``nonempty=True`` (x drawn by ``generate_batch(..., nonempty=True)``) the result is
        P(x≠0)·mean + P(x=0)·:meth:`empty_loss`, the same expectation as for plain samples.
        """
        err = (self.target(x) - self(x)) ** 2                               # (I, B, F)
        loss = torch.einsum("ibf,if->i", err, self.importance) / x.shape[1]
        if nonempty:
            p0 = self.empty_probability()
            loss = (1 - p0) * loss + p0 * self.empty_loss()
        return loss

    @torch.no_grad()
    def loss_and_grad(self, x: torch.Tensor, *, nonempty: bool = False, backend: str = "auto") -> torch.Tensor:
        r"""Per-instance loss (I,) with the gradients of its sum written to ``W.grad``/``b.grad``.

        Hand-derived backward pass for the ``relu`` and ``linear`` variants (the ``abs`` variant
        uses autograd): with h = W x, z = Wᵀh + b, e = ReLU(z) − x and δ = 2 I ⊙ e ⊙ 1[z>0] / B,

        .. math:: ∂L/∂b = Σ_b δ,\qquad ∂L/∂W = h δᵀ + (W δ) xᵀ .

        On CUDA (or with ``backend="triton"``) the batch term comes from the fused Triton kernel
        :func:`workbench.kernels.toy_loss_grad`; on the CPU, with ``backend="auto"``, from the
        compiled kernels of :mod:`workbench.superposition.cpu_step`, which take the route of the formula
        above (``"torch"``: the torch reference :func:`batch_loss_grad`, through M = WᵀW, in about a
        third of autograd's memory passes). With ``nonempty`` the
        batch was drawn conditioned on x ≠ 0 and the exact x = 0 term is added (weight P(x = 0)).
        """
        if self.variant == "abs":
            with torch.enable_grad():
                self.zero_grad(set_to_none=True)
                loss = self.loss_per_instance(x, nonempty=nonempty)
                loss.sum().backward()
            return loss.detach()
        if backend == "triton" or (backend == "auto" and self.W.is_cuda):
            from workbench.superposition.triton_step import toy_loss_grad

            loss, grad_w, grad_b = toy_loss_grad(self.W.detach(), self.b.detach(), x, self.importance,
                                                 variant=self.variant, backend=backend)
        else:
            on_cpu = self.W.device.type == "cpu"
            loss, grad_w, grad_b = self._batch_loss_grad(x, numba=backend == "auto" and on_cpu)
        if nonempty:
            loss, grad_w, grad_b = self._add_empty_term(loss, grad_w, grad_b)
        self.W.grad, self.b.grad = grad_w, grad_b
        return loss

    @torch.no_grad()
    def _batch_loss_grad(self, x: torch.Tensor, *, numba: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch loss (I,) and its gradients (W, b), hand-derived: :func:`batch_loss_grad`, or with
        ``numba`` its CPU kernel :func:`workbench.superposition.cpu_step.batch_loss_grad_cpu`."""
        W, b = self.W.detach(), self.b.detach()
        gW, gb = torch.empty_like(W), torch.empty_like(b)
        x1_t = torch.cat((x.mT, x.new_ones(x.shape[0], 1, x.shape[1])), 1)
        relu = self.variant == "relu"
        if numba:
            from workbench.superposition.cpu_step import batch_loss_grad_cpu

            loss = batch_loss_grad_cpu(W, b, self.importance, x1_t, relu=relu, grad_w=gW, grad_b=gb)
        else:
            loss = batch_loss_grad(augmented_weights(W, b), W, self.importance, x1_t, relu=relu, grad_w=gW, grad_b=gb)
        return loss, gW, gb

    def _add_empty_term(self, loss: torch.Tensor, grad_w: torch.Tensor,
                        grad_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """E[L] = (1 − p0) E[L | x ≠ 0] + p0 L(x = 0), and its gradients (p0 = P(x = 0))."""
        p0 = self.empty_probability()
        keep = 1 - p0
        loss, grad_w, grad_b = keep * loss, keep[:, None, None] * grad_w, keep[:, None] * grad_b
        out0 = (self.b if self.variant == "linear" else torch.relu(self.b)).detach()
        loss = loss + p0 * (out0.square() * self.importance).sum(-1)
        grad_b = grad_b + (2 * p0)[:, None] * self.importance * out0
        return loss, grad_w, grad_b

    @torch.no_grad()
    def sample_loss_and_grad(self, batch_size: int, generator: RandomSource = None, *,
                             nonempty: bool = True, chunk_elements: int = 1 << 15,
                             threads: int | None = None, pool: WorkerPool | None = None) -> torch.Tensor:
        """Draw a fresh batch and return the loss per instance (I,) with gradients set, as
        ``loss_and_grad(generate_batch(...))`` does, in chunks of instances on the CPU.

        Each chunk (about ``chunk_elements`` batch entries: one instance of 20 features × 1024
        samples) is drawn and consumed while it is still in L2, so the (I, B, F) batch and its
        intermediates never go to main memory; a thread's chunks run in one call of compiled code
        (:func:`workbench.superposition.cpu_step.chunks_loss_grad_`). With a ``numpy.random.Generator``
        the chunks are spread over ``threads`` threads (default ``torch.get_num_threads()``; at
        most one per ``MIN_CHUNKS_PER_THREAD`` chunks; the helpers come from ``pool``, which a
        training loop creates once, or from a pool made for this call), and each chunk draws from its own
        :class:`~workbench.superposition.lane_rng.LaneStream`, seeded from ``generator``: the numbers do
        not depend on the thread count. A chunk draws what ``generate_batch`` draws for its
        instances from that stream, so the result equals the unchunked path on those draws. On
        CUDA, for the ``abs`` variant and with another random source this is exactly
        ``generate_batch`` + ``loss_and_grad``.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if (self.variant == "abs" or self.W.device.type != "cpu"
                or not isinstance(generator, np.random.Generator)):
            return self.loss_and_grad(self.generate_batch(batch_size, generator, nonempty=nonempty),
                                      nonempty=nonempty)
        per = max(1, min(self.n_instances, chunk_elements // (int(batch_size) * self.n_features)))
        n_chunks = -(-self.n_instances // per)
        # at least MIN_CHUNKS_PER_THREAD chunks per thread, so a step's hand-off to the pool pays off
        workers = max(1, min(threads or torch.get_num_threads(), n_chunks // MIN_CHUNKS_PER_THREAD))
        # with a pool, this thread's own ops are tiny, and its idle OpenMP team would spin on a core
        with torch_threads(1) if workers > 1 else nullcontext(), (
                WorkerPool(workers - 1) if pool is None else nullcontext(pool)) as helpers:
            loss, gW, gb = self._chunked_loss_and_grad(int(batch_size), generator, n_chunks, per,
                                                       helpers, workers, nonempty)
        self.W.grad, self.b.grad = gW, gb
        return loss

    def _chunked_loss_and_grad(self, B: int, generator: np.random.Generator, n_chunks: int, per: int,
                               pool: WorkerPool, workers: int, nonempty: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss and gradients of :meth:`sample_loss_and_grad`: chunk ``j`` holds instances ``j·per``
        to ``(j+1)·per − 1`` and draws from the j-th lane state seeded from ``generator``."""
        from workbench.superposition.cpu_step import chunks_loss_grad_
        from workbench.superposition.lane_rng import LaneStream
        from workbench.superposition.work_queue import new_counter

        states = LaneStream.spawn_states(generator, n_chunks)
        W, b = self.W.detach(), self.b.detach()
        gW, gb, loss = torch.empty_like(W), torch.empty_like(b), torch.empty(self.n_instances)
        cdf = self._first_cdf() if nonempty else None
        inv_prob = self.feature_probability.reciprocal().numpy()
        args = (inv_prob, inv_prob if cdf is None else cdf.numpy(), nonempty, W.numpy(), b.numpy(),
                self.importance.numpy(), self.variant == "relu", B, loss.numpy(), gW.numpy(), gb.numpy())

        counter = new_counter()  # the workers claim chunks from it: a late or slow thread takes fewer
        # one call per worker, no Python (or GIL) per chunk; chunks write disjoint rows of loss/gW/gb
        pool.run(lambda: chunks_loss_grad_(states, per, counter, *args), workers)
        if nonempty:
            loss, gW, gb = self._add_empty_term(loss, gW, gb)
        return loss, gW, gb

    def extra_repr(self) -> str:
        return (f"n_instances={self.n_instances}, n_features={self.n_features}, "
                f"n_hidden={self.n_hidden}, variant={self.variant!r}")


def importance_vector(n_features: int, decay: float) -> torch.Tensor:
    """Importances I_i = decay**i, i = 0..n−1 ([1]_, e.g. decay 0.9 in the n=20, m=5 figures)."""
    check_range(decay, "importance_decay", 0.0, None, low_open=True)
    return decay ** torch.arange(n_features, dtype=torch.float32)
