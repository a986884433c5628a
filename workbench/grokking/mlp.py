"""MLP for modular tasks: embed a and b, concatenate, one hidden ReLU layer, unembed.

The embedding-concat MLP used by Grokfast (Lee et al. 2024) and by Liu et al. (2022, "Towards
Understanding Grokking") for modular arithmetic: ``logits = W_out · ReLU(W_in [E_a; E_b] + b_in)``.
The ``=`` token is ignored (it carries no information for an MLP).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from workbench.device import init_generator


class MLP(nn.Module):
    """``(batch, 3)`` token ids ``(a, b, =)`` → ``(batch, p)`` logits.

    Parameters
    ----------
    p : modulus; the embedding has ``p + 1`` rows (row ``p`` is ``=``).
    d_embed, d_hidden : embedding and hidden widths.
    seed, generator : initial weights are drawn from ``generator`` or a fresh generator seeded with
        ``seed`` (else torch's global RNG), with PyTorch's default ``Embedding``/``Linear`` init in
        construction order: the weights ``torch.manual_seed(seed)`` + the plain layers would give.
    """

    def __init__(self, p: int, d_embed: int = 128, d_hidden: int = 256, seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        gen = init_generator(seed, generator)
        self.p = p
        with torch.device("meta"):  # shapes only: the weights are drawn below, from `gen`
            self.embed = nn.Embedding(p + 1, d_embed)  # E: (vocab, d_embed); row p is "="
            self.hidden = nn.Linear(2 * d_embed, d_hidden)
            self.unembed = nn.Linear(d_hidden, p)
        self.to_empty(device="cpu")
        nn.init.normal_(self.embed.weight, generator=gen)  # nn.Embedding.reset_parameters
        for layer in (self.hidden, self.unembed):  # nn.Linear.reset_parameters
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=gen)

    @property
    def W_E(self) -> torch.Tensor:
        """Token embedding matrix (vocab, d_embed), the input of the Fourier probes."""
        return self.embed.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x[:, :2]).flatten(1)  # (batch, 2·d_embed)
        return self.unembed(torch.relu(self.hidden(e)))  # (batch, p)
