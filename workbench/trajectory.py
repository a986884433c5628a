"""Parameter trajectories for the Koopman lens: selected tensors, or a fixed random projection.

Redman et al. (NeurIPS 2024) study the Koopman spectrum of the weights θ_t over training. Storing
every parameter at every recorded step is too large for most models, so by default the recorder
keeps a Johnson–Lindenstrauss sketch ``z_t = R θ_t`` with a fixed, seeded Gaussian ``R`` of shape
(dim, n_params) scaled by 1/√dim, which preserves distances and linear dynamics (z_{t+1} = R A θ_t
spans the same Krylov space). ``R`` is generated block by block per parameter tensor, from a seed
derived from the tensor's name, so it never has to exist in memory as a whole.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn


class ParameterRecorder:
    """Turns a model's parameters into one vector per recorded step.

    Parameters
    ----------
    model : the model whose ``named_parameters()`` are recorded.
    names : record exactly these tensors (flattened, concatenated in this order); ``None`` → all.
    project_dim : if set, record the random projection ``R θ`` of dimension ``project_dim``
        instead of the raw parameters.
    seed : seed of the projection.
    cache_bytes : keep projection blocks in memory while their total stays below this size.
    """

    def __init__(self, model: nn.Module, names: list[str] | None = None, project_dim: int | None = 512,
                 seed: int = 0, cache_bytes: int = 256 * 2**20):
        params = dict(model.named_parameters())
        names = list(params) if names is None else list(names)
        unknown = [n for n in names if n not in params]
        if unknown:
            raise ValueError(f"unknown parameter names {unknown}; the model has {list(params)}")
        if project_dim is not None and project_dim < 1:
            raise ValueError(f"project_dim must be a positive int or None, got {project_dim}")
        self.names, self.project_dim, self.seed = names, project_dim, seed
        self.sizes = [params[n].numel() for n in names]
        total = sum(self.sizes)
        self._cache: dict[str, torch.Tensor] | None = (
            {} if project_dim is not None and project_dim * total * 4 <= cache_bytes else None)

    @property
    def n_params(self) -> int:
        return sum(self.sizes)

    @property
    def dim(self) -> int:
        return self.project_dim if self.project_dim is not None else self.n_params

    def attrs(self) -> dict:
        """JSON description stored with the trajectory (what the ``param`` axis means)."""
        return {"mode": "projection" if self.project_dim else "parameters", "names": self.names,
                "sizes": self.sizes, "project_dim": self.project_dim or 0, "seed": self.seed}

    def _block(self, name: str, size: int) -> torch.Tensor:
        if self._cache is not None and name in self._cache:
            return self._cache[name]
        digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        block = torch.randn(self.project_dim, size, generator=gen) / self.project_dim**0.5
        if self._cache is not None:
            self._cache[name] = block
        return block

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> torch.Tensor:
        """The recorded vector for the model's current parameters, float32 on the CPU."""
        params = dict(model.named_parameters())
        flat = [params[n].detach().float().cpu().reshape(-1) for n in self.names]
        if self.project_dim is None:
            return torch.cat(flat)
        z = torch.zeros(self.project_dim)
        for name, size, theta in zip(self.names, self.sizes, flat):
            z += self._block(name, size) @ theta
        return z
