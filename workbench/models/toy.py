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

import numpy as np
import torch
from torch import nn

from workbench.validation import as_tensor, check_range

VARIANTS = ("relu", "linear", "abs")


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
        or (I, F).
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
    def generate_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample x of shape (I, B, F): each feature is 0 with probability S, else U[0, 1].

        Instance-major layout, so each instance's batch is one contiguous ``bmm`` operand. One
        uniform draw u per entry serves both: the feature is present iff u < p, and then u / p is
        again U[0, 1] — the same distribution as two independent draws, at half the cost.
        For the ``abs`` variant present features are U[-1, 1] ([1]_, computation in superposition).
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        u = torch.rand((self.n_instances, int(batch_size), self.n_features), generator=generator,
                       device=self.W.device)
        p = self.feature_probability[:, None, :]                            # (I, 1, F)
        scaled = u / p
        if self.variant == "abs":
            scaled = scaled * 2 - 1
        return torch.where(u < p, scaled, torch.zeros((), device=u.device))

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

    def loss_per_instance(self, x: torch.Tensor) -> torch.Tensor:
        """Importance-weighted squared error per instance, mean over the batch: shape (I,)."""
        err = (self.target(x) - self(x)) ** 2                               # (I, B, F)
        return torch.einsum("ibf,if->i", err, self.importance) / x.shape[1]

    def extra_repr(self) -> str:
        return (f"n_instances={self.n_instances}, n_features={self.n_features}, "
                f"n_hidden={self.n_hidden}, variant={self.variant!r}")


def importance_vector(n_features: int, decay: float) -> torch.Tensor:
    """Importances I_i = decay**i, i = 0..n−1 ([1]_, e.g. decay 0.9 in the n=20, m=5 figures)."""
    check_range(decay, "importance_decay", 0.0, None, low_open=True)
    return decay ** torch.arange(n_features, dtype=torch.float32)
