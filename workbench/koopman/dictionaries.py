"""Dictionaries of observables ψ(x) for EDMD / ResDMD: identity, monomials, RBFs, random Fourier, delays.

A dictionary maps states ``(n_samples, n_features)`` to observables ``(n_samples, n_functions)``.
``fit(X)`` chooses data-dependent parts (RBF centres, Fourier frequencies) from the training states.

References
----------
.. [1] Williams, Kevrekidis, Rowley (2015). A data-driven approximation of the Koopman operator:
   extending dynamic mode decomposition. J. Nonlinear Sci. 25. doi:10.1007/s00332-015-9258-5
.. [2] Rahimi & Recht (2007). Random features for large-scale kernel machines. NeurIPS.
.. [3] Colbrook & Townsend (2023). Rigorous data-driven computation of spectral properties of
   Koopman operators for dynamical systems. CPAM. doi:10.1002/cpa.22125
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import combinations_with_replacement

import torch

from workbench.validation import check_finite


class Dictionary:
    """Base class: ``fit(X) -> self``, ``transform(X) -> Tensor``; ``delays`` > 1 embeds first."""

    delays: int = 1

    def fit(self, X: torch.Tensor) -> Dictionary:
        """Choose the data-dependent parts from training states ``X`` (n_samples, n_features); returns ``self``."""
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Observables ψ(X): (n_samples, n_features) → (n_samples, n_functions)."""
        raise NotImplementedError(f"{type(self).__name__} must implement transform")

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        out = self.transform(X)
        check_finite(out, f"{type(self).__name__}(X)")
        return out


class Identity(Dictionary):
    """ψ(x) = x: EDMD reduces to (non-truncated) DMD."""

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """ψ(X) = X."""
        return X


class Monomials(Dictionary):
    """All monomials of total degree ≤ ``degree`` (Williams et al. [1]_, §3.1), constant included if ``include_bias``.

    Products of eigenfunctions are eigenfunctions, so a linear map with eigenvalues μ_i observed
    through monomials of degree ≤ k has EDMD eigenvalues ∏ μ_i^{a_i}, Σa_i ≤ k.
    """

    def __init__(self, degree: int = 2, include_bias: bool = True):
        if not isinstance(degree, int) or degree < 1:
            raise ValueError(f"degree must be a positive int, got {degree!r}")
        self.degree, self.include_bias = degree, include_bias

    def fit(self, X: torch.Tensor) -> Monomials:
        """List the exponent tuples ``powers_`` for ``X``'s number of features; returns ``self``."""
        n = X.shape[1]
        self.powers_ = [c for d in range(0 if self.include_bias else 1, self.degree + 1)
                        for c in combinations_with_replacement(range(n), d)]
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """The monomials of ``powers_`` evaluated at ``X``, (n_samples, n_functions)."""
        cols = [X[:, list(c)].prod(dim=1) if c else torch.ones_like(X[:, 0]) for c in self.powers_]
        return torch.stack(cols, dim=1)


class RBF(Dictionary):
    """Gaussian radial basis functions ψ_j(x) = exp(−‖x − c_j‖² / (2ε²)) (Williams et al. [1]_, §3.3).

    Parameters
    ----------
    n_centers : number of centres, drawn from the training states (seeded) unless ``centers`` given.
    epsilon : width; default = median distance between centres.
    centers : explicit centres ``(n_centers, n_features)``.
    include_state : prepend ψ(x) = x (linear observables).
    """

    def __init__(self, n_centers: int = 100, epsilon: float | None = None, *, centers=None,
                 include_state: bool = False, seed: int = 0):
        if not isinstance(n_centers, int) or n_centers < 1:
            raise ValueError(f"n_centers must be a positive int, got {n_centers!r}")
        if epsilon is not None and epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.n_centers, self.epsilon, self.centers, self.include_state, self.seed = \
            n_centers, epsilon, centers, include_state, seed

    def fit(self, X: torch.Tensor) -> RBF:
        """Set ``centers_`` (given, or drawn from ``X``) and the width ``epsilon_``; returns ``self``."""
        if self.centers is not None:
            c = torch.as_tensor(self.centers, dtype=X.dtype, device=X.device)
            if c.ndim != 2 or c.shape[1] != X.shape[1]:
                raise ValueError(f"centers must have shape (n_centers, {X.shape[1]}), got {tuple(c.shape)}")
        else:
            if self.n_centers > X.shape[0]:
                raise ValueError(f"n_centers={self.n_centers} exceeds the number of samples {X.shape[0]}")
            gen = torch.Generator().manual_seed(self.seed)
            c = X[torch.randperm(X.shape[0], generator=gen)[: self.n_centers].to(X.device)]
        self.centers_ = c
        d = torch.cdist(c, c)
        self.epsilon_ = float(self.epsilon if self.epsilon is not None else d[d > 0].median())
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """ψ_j(X) for every centre (after ``X`` itself when ``include_state``)."""
        phi = torch.exp(-torch.cdist(X, self.centers_) ** 2 / (2 * self.epsilon_**2))
        return torch.cat([X, phi], dim=1) if self.include_state else phi


class RandomFourier(Dictionary):
    """Random Fourier features √(2/D) cos(ωᵀx + b), ω ~ N(0, I/ℓ²), b ~ U[0, 2π) (Rahimi & Recht [2]_)."""

    def __init__(self, n_components: int = 100, length_scale: float = 1.0, *, seed: int = 0):
        if not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {n_components!r}")
        if length_scale <= 0:
            raise ValueError(f"length_scale must be > 0, got {length_scale}")
        self.n_components, self.length_scale, self.seed = n_components, length_scale, seed

    def fit(self, X: torch.Tensor) -> RandomFourier:
        """Draw the frequencies ``omega_`` and phases ``phase_`` (seeded); returns ``self``."""
        gen = torch.Generator().manual_seed(self.seed)
        n = X.shape[1]
        self.omega_ = (torch.randn(n, self.n_components, generator=gen, dtype=torch.float64)
                       / self.length_scale).to(X.device)
        self.phase_ = (2 * torch.pi * torch.rand(self.n_components, generator=gen, dtype=torch.float64)).to(X.device)
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """√(2/D) cos(Xω + b), (n_samples, n_components)."""
        return (2.0 / self.n_components) ** 0.5 * torch.cos(X @ self.omega_ + self.phase_)


class Delays(Dictionary):
    """Time-delay observables ψ(x_t) = [x_t, …, x_{t+d−1}], optionally followed by another dictionary.

    The estimator embeds the trajectory before pairing snapshots, so a delay dictionary needs a
    trajectory, not pairs.
    """

    def __init__(self, delays: int = 2, then: Dictionary | None = None):
        if not isinstance(delays, int) or delays < 1:
            raise ValueError(f"delays must be a positive int, got {delays!r}")
        self.delays, self.then = delays, then

    def fit(self, X: torch.Tensor) -> Delays:
        """Fit the following dictionary (if any) on the delay-embedded states ``X``; returns ``self``."""
        if self.then is not None:
            self.then.fit(X)
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """The delay-embedded states ``X``, through the following dictionary if any."""
        return X if self.then is None else self.then.transform(X)


class Function(Dictionary):
    """Wraps a callable ``f(X: Tensor (n, features)) -> Tensor (n, functions)``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(self.fn(X))
        if out.ndim != 2 or out.shape[0] != X.shape[0]:
            raise ValueError(f"dictionary function must return shape ({X.shape[0]}, n_functions), "
                             f"got {tuple(out.shape)}")
        return out.to(torch.float64)


_NAMES = {"identity": Identity, "monomials": Monomials, "rbf": RBF, "fourier": RandomFourier, "delays": Delays}


def make_dictionary(spec: str | Dictionary | Callable | None) -> Dictionary:
    """``"identity" | "monomials" | "rbf" | "fourier" | "delays"``, a :class:`Dictionary`, or a callable."""
    if spec is None:
        return Identity()
    if isinstance(spec, Dictionary):
        return spec
    if isinstance(spec, str):
        if spec not in _NAMES:
            raise ValueError(f"dictionary must be one of {sorted(_NAMES)}, a Dictionary or a callable; got {spec!r}")
        return _NAMES[spec]()
    if callable(spec):
        return Function(spec)
    raise TypeError(f"dictionary must be a name, a Dictionary or a callable, got {type(spec).__name__}")
