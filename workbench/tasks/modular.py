"""Modular arithmetic tasks a∘b mod p (Power et al. 2022; Nanda et al. 2023).

Every input is the token sequence ``(a, b, =)`` with ``=`` encoded as token ``p`` (vocabulary
``p + 1``); the label is ``a ∘ b mod p`` for the operation ``∘``. All ``p²`` pairs (``p(p-1)`` for
``div``, which excludes ``b = 0``) are split into train/test by a seeded permutation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from workbench.validation import check_range


def is_prime(n: int) -> bool:
    """Trial division; p is small (≤ a few thousand) for these tasks."""
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def _div(a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    # a / b mod p = a · b^(p-2) mod p (Fermat's little theorem; p prime, b ≠ 0)
    inv = torch.tensor([pow(int(x), p - 2, p) for x in range(p)])
    return (a * inv[b]) % p


OPERATIONS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": _div,
    "x2xyy2": lambda a, b, p: (a * a + a * b + b * b) % p,
}


@dataclass
class ModularTask:
    """All pairs ``(a, b)`` of Z_p with labels ``a ∘ b mod p``, split into train and test.

    Parameters
    ----------
    p : prime modulus (vocabulary is ``p + 1`` with ``=`` = token ``p``).
    op : one of ``add, sub, mul, div, x2xyy2``.
    frac : fraction of pairs used for training, in (0, 1).
    seed : seed of the split permutation.
    """

    p: int = 113
    op: str = "add"
    frac: float = 0.3
    seed: int = 0
    train_x: torch.Tensor = field(init=False, repr=False)
    train_y: torch.Tensor = field(init=False, repr=False)
    test_x: torch.Tensor = field(init=False, repr=False)
    test_y: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.p, int) or not is_prime(self.p):
            raise ValueError(f"p must be a prime number, got {self.p!r}")
        if self.op not in OPERATIONS:
            raise ValueError(f"op must be one of {sorted(OPERATIONS)}, got {self.op!r}")
        check_range(self.frac, "frac", 0.0, 1.0, low_open=True, high_open=True)
        x, y = self.all_pairs()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        n_train = int(round(self.frac * len(x)))
        if not 0 < n_train < len(x):
            raise ValueError(f"frac={self.frac} leaves an empty train or test set for p={self.p}")
        self.train_x, self.train_y = x[perm[:n_train]], y[perm[:n_train]]
        self.test_x, self.test_y = x[perm[n_train:]], y[perm[n_train:]]

    @property
    def vocab_size(self) -> int:
        return self.p + 1

    @property
    def n_classes(self) -> int:
        return self.p

    def all_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(a, b, =)`` of shape (N, 3) in row-major order of (a, b), and labels (N,)."""
        a, b = torch.meshgrid(torch.arange(self.p), torch.arange(self.p), indexing="ij")
        a, b = a.reshape(-1), b.reshape(-1)
        if self.op == "div":
            keep = b != 0
            a, b = a[keep], b[keep]
        x = torch.stack([a, b, torch.full_like(a, self.p)], dim=1)
        return x, OPERATIONS[self.op](a, b, self.p)

    def config(self) -> dict:
        return {"name": "modular", "p": self.p, "op": self.op, "frac": self.frac, "seed": self.seed}


TASKS = {"modular": ModularTask}


def build_task(config: dict) -> ModularTask:
    """Rebuild a task from its ``config()`` dict."""
    kwargs = dict(config)
    name = kwargs.pop("name", "modular")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name](**kwargs)
