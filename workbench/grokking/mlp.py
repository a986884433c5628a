"""MLP for modular tasks: embed a and b, concatenate, one hidden ReLU layer, unembed.

The embedding-concat MLP used by Grokfast (Lee et al. 2024) and by Liu et al. (2022, "Towards
Understanding Grokking") for modular arithmetic: ``logits = W_out · ReLU(W_in [E_a; E_b] + b_in)``.
The ``=`` token is ignored (it carries no information for an MLP).
"""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``(batch, 3)`` token ids ``(a, b, =)`` → ``(batch, p)`` logits."""

    def __init__(self, p: int, d_embed: int = 128, d_hidden: int = 256, seed: int | None = None):
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.p = p
        self.embed = nn.Embedding(p + 1, d_embed)  # E: (vocab, d_embed); row p is "="
        self.hidden = nn.Linear(2 * d_embed, d_hidden)
        self.unembed = nn.Linear(d_hidden, p)

    @property
    def W_E(self) -> torch.Tensor:
        """Token embedding matrix (vocab, d_embed), the input of the Fourier probes."""
        return self.embed.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x[:, :2]).flatten(1)  # (batch, 2·d_embed)
        return self.unembed(torch.relu(self.hidden(e)))  # (batch, p)
