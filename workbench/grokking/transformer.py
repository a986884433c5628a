"""The one-layer transformer of "Progress measures for grokking" with a hook/cache API and a fast path.

Architecture (Nanda et al. 2023, Sec. 3 and App. A): inputs ``(a, b, =)`` (3 tokens, vocabulary
``p + 1``), learned token and positional embeddings, ``d_model = 128``, 4 heads of 32, a ReLU MLP of
width 512, **no LayerNorm**, an unembedding read at the last position (``p`` output classes).
Parameter names and shapes follow TransformerLens: ``W_E (vocab, d_model)``, ``W_pos (ctx, d_model)``,
``blocks.0.attn.W_Q/W_K/W_V (head, d_model, d_head)``, ``W_O (head, d_head, d_model)``,
``blocks.0.mlp.W_in (d_model, d_mlp)``, ``b_in``, ``W_out (d_mlp, d_model)``, ``b_out``,
``W_U (d_model, p)``.

Every activation of the full computation passes through a named :class:`HookPoint`
(``hook_embed``, ``blocks.0.attn.hook_pattern``, ``blocks.0.mlp.hook_post``, ...), readable with
:meth:`Transformer.run_with_cache` or modifiable with :meth:`Transformer.hooks`.

**Fast path** (default for training, one layer only). The logits are read at the last position, so
only the ``=`` query, the attention output there, the MLP there and the unembedding are needed.
In a one-layer model the residual stream entering attention at position ``i`` is
``W_E[token] + W_pos[i]``: keys, values (times ``W_O``) and attention scores against the ``=`` query
depend only on (token, position). They are computed once per vocabulary entry (``(p+1) × …``
tables) and gathered per example, in the forward pass and — through autograd of the gather — in the
backward pass. The unembedding is folded into the MLP output (``W_out W_U``), which removes one
``d_mlp × d_model`` matmul per example. Logits equal the full computation up to float rounding.

References
----------
.. [1] Nanda, Chan, Lieberum, Smith, Steinhardt (2023). Progress measures for grokking via
   mechanistic interpretability. ICLR. arXiv:2301.05217.
.. [2] Elhage et al. (2021). A Mathematical Framework for Transformer Circuits (OV/QK circuits).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from workbench.device import init_generator
from workbench.grokking.sparse_mix import sparse_mix


class HookPoint(nn.Module):
    """Identity module wrapping an activation so forward hooks can read or replace it (TransformerLens)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _randn(*shape: int, scale: float, generator: torch.Generator | None) -> nn.Parameter:
    # Nanda et al.'s init: N(0, 1) / sqrt(fan) for every matrix, zero biases.
    return nn.Parameter(torch.randn(*shape, generator=generator) * scale)


class Attention(nn.Module):
    """Causal multi-head attention without biases (heads × d_head)."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, generator: torch.Generator | None = None):
        super().__init__()
        s = 1 / math.sqrt(d_model)
        self.W_Q = _randn(n_heads, d_model, d_head, scale=s, generator=generator)
        self.W_K = _randn(n_heads, d_model, d_head, scale=s, generator=generator)
        self.W_V = _randn(n_heads, d_model, d_head, scale=s, generator=generator)
        self.W_O = _randn(n_heads, d_head, d_model, scale=s, generator=generator)
        self.hook_q = HookPoint()  # (batch, pos, head, d_head)
        self.hook_k = HookPoint()  # (batch, pos, head, d_head)
        self.hook_v = HookPoint()  # (batch, pos, head, d_head)
        self.hook_attn_scores = HookPoint()  # (batch, head, query_pos, key_pos)
        self.hook_pattern = HookPoint()  # (batch, head, query_pos, key_pos)
        self.hook_z = HookPoint()  # (batch, pos, head, d_head)

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        T = resid.shape[1]
        q = self.hook_q(torch.einsum("btd,hde->bthe", resid, self.W_Q))
        k = self.hook_k(torch.einsum("btd,hde->bthe", resid, self.W_K))
        v = self.hook_v(torch.einsum("btd,hde->bthe", resid, self.W_V))
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])
        mask = torch.ones(T, T, dtype=torch.bool, device=resid.device).triu(1)
        scores = self.hook_attn_scores(scores.masked_fill(mask, float("-inf")))
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O)  # (batch, pos, d_model)


class MLP(nn.Module):
    """``W_out ReLU(W_in x + b_in) + b_out`` applied per position."""

    def __init__(self, d_model: int, d_mlp: int, generator: torch.Generator | None = None):
        super().__init__()
        self.W_in = _randn(d_model, d_mlp, scale=1 / math.sqrt(d_model), generator=generator)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = _randn(d_mlp, d_model, scale=1 / math.sqrt(d_model), generator=generator)
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.hook_pre = HookPoint()  # (batch, pos, d_mlp)
        self.hook_post = HookPoint()  # (batch, pos, d_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        post = self.hook_post(torch.relu(self.hook_pre(x @ self.W_in + self.b_in)))
        return post @ self.W_out + self.b_out


class Block(nn.Module):
    """Attention then MLP, both added to the residual stream (no LayerNorm, as in [1])."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.attn = Attention(d_model, n_heads, d_head, generator)
        self.mlp = MLP(d_model, d_mlp, generator)
        self.hook_resid_pre = HookPoint()  # (batch, pos, d_model)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(resid)))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(resid)))


class Transformer(nn.Module):
    """Nanda et al.'s modular-arithmetic transformer: ``(batch, 3)`` tokens → ``(batch, p)`` logits.

    Parameters
    ----------
    p : modulus; vocabulary is ``p + 1`` (token ``p`` is ``=``), outputs are the ``p`` residues.
    d_model, n_heads, d_head, d_mlp, n_layers, n_ctx : sizes (paper: 128, 4, 32, 512, 1, 3).
    seed, generator : parameters are drawn from ``generator``, or from a fresh
        ``torch.Generator().manual_seed(seed)``; with neither, from torch's global RNG (as any
        ``nn.Module``). The global RNG is never seeded here. A seed gives the weights that
        ``torch.manual_seed(seed)`` followed by ``Transformer(...)`` gives.
    fast : use the vocabulary-table fast path when it applies (one layer, no hooks attached, the
        same token at the last position of every row). Set ``False`` to force the full computation.
    """

    def __init__(self, p: int = 113, d_model: int = 128, n_heads: int = 4, d_head: int = 32,
                 d_mlp: int = 512, n_layers: int = 1, n_ctx: int = 3, seed: int | None = None,
                 fast: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        for name, val in {"p": p, "d_model": d_model, "n_heads": n_heads, "d_head": d_head, "d_mlp": d_mlp,
                              "n_layers": n_layers, "n_ctx": n_ctx}.items():
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if p < 2:
            raise ValueError(f"p must be >= 2, got {p}")
        gen = init_generator(seed, generator)
        self.p, self.d_model, self.n_heads, self.d_head = p, d_model, n_heads, d_head
        self.d_mlp, self.n_layers, self.n_ctx, self.fast = d_mlp, n_layers, n_ctx, fast
        self.W_E = _randn(p + 1, d_model, scale=1 / math.sqrt(d_model), generator=gen)
        self.W_pos = _randn(n_ctx, d_model, scale=1 / math.sqrt(d_model), generator=gen)
        self.blocks = nn.ModuleList([Block(d_model, n_heads, d_head, d_mlp, gen) for _ in range(n_layers)])
        self.W_U = _randn(d_model, p, scale=1 / math.sqrt(p + 1), generator=gen)
        self.hook_embed = HookPoint()  # (batch, pos, d_model)
        self.hook_pos_embed = HookPoint()  # (batch, pos, d_model)
        self.hook_dict: dict[str, HookPoint] = {n: m for n, m in self.named_modules() if isinstance(m, HookPoint)}

    # ------------------------------------------------------------------ convenience views
    @property
    def W_in(self) -> torch.Tensor:
        """First-layer MLP input weights ``(d_model, d_mlp)``."""
        return self.blocks[0].mlp.W_in

    @property
    def W_logit(self) -> torch.Tensor:
        """Neuron → logit map ``W_out W_U`` of the first layer, ``(d_mlp, p)`` (Nanda et al. Sec. 5.1)."""
        return self.blocks[0].mlp.W_out @ self.W_U

    # ------------------------------------------------------------------ forward passes
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the last position, ``(batch, p)``; fast path when :meth:`can_use_fast`."""
        if self.can_use_fast(x):
            return self.forward_fast(x)
        return self.forward_full(x)

    def can_use_fast(self, x: torch.Tensor) -> bool:
        """True when the table fast path gives the same logits as :meth:`forward_full`."""
        return (self.fast and self.n_layers == 1 and x.ndim == 2 and x.shape[1] == 3
                and not any(h._forward_hooks or h._forward_pre_hooks for h in self.hook_dict.values())
                and bool((x[:, 2] == x[0, 2]).all()))

    def _check_tokens(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"x must be an integer token tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
        if x.ndim != 2 or not 1 <= x.shape[1] <= self.n_ctx:
            raise ValueError(f"x must have shape (batch, pos) with pos <= {self.n_ctx}, got {tuple(x.shape)}")

    def forward_full(self, x: torch.Tensor) -> torch.Tensor:
        """The plain full-sequence computation, every activation through its hook point."""
        self._check_tokens(x)
        resid = self.hook_embed(self.W_E[x]) + self.hook_pos_embed(self.W_pos[: x.shape[1]].expand(x.shape[0], -1, -1))
        for block in self.blocks:
            resid = block(resid)
        return resid[:, -1] @ self.W_U

    def _fast_read(self, x: torch.Tensor) -> torch.Tensor:
        """``resid_mid @ [W_in | W_U] + [b_in | b_out W_U]`` at the last position from vocabulary tables.

        With ``r_i(t) = W_E[t] + W_pos[i]`` and the query ``q_h = r_2(=) W_Q^h / sqrt(d_head)``:
        scores ``s_i^h(t) = r_i(t) W_K^h q_h`` and value-outputs ``o_i^h(t) = r_i(t) W_V^h W_O^h``
        are ``(vocab, head)`` and ``(vocab, head, d_model)`` tables; per example we gather rows,
        softmax over the 3 positions, and sum ``pattern · o``. Everything downstream reads the
        residual ``r_mid`` linearly through ``W_read = [W_in | W_U]``, so the value-output tables are
        pre-multiplied by ``W_read`` (``((2·vocab + 1)·head, d_mlp + p)``; the ``+ 1`` is the ``=`` key)
        and mixed, together with the constant ``r_2(=) W_read + [b_in | b_out W_U]`` as one more row
        of weight 1, by one sparse gather (:func:`~workbench.grokking.sparse_mix.sparse_mix`, 3·head + 1
        rows per example); then ``logits = r_mid W_U + b_out W_U + ReLU(r_mid W_in + b_in) (W_out W_U)``.
        """
        self._check_tokens(x)
        if self.n_layers != 1 or x.shape[1] != 3:
            raise ValueError("forward_fast needs a one-layer model and inputs of 3 tokens; use forward_full")
        attn, mlp = self.blocks[0].attn, self.blocks[0].mlp
        H, D, V = self.n_heads, self.d_model, self.p + 1
        a, b, eq = x[:, 0], x[:, 1], x[0, 2]
        # 1. per-vocabulary tables (tiny: (p+1) x ...), rebuilt from the parameters every call
        R = self.W_E.unsqueeze(0) + self.W_pos.unsqueeze(1)  # (pos, vocab, d_model)
        r2 = R[2, eq]  # (d_model,) residual stream at the "=" query position
        q = torch.einsum("d,hde->he", r2, attn.W_Q) / math.sqrt(self.d_head)  # (head, d_head)
        S = R @ torch.einsum("hde,he->dh", attn.W_K, q)  # (pos, vocab, head) scores vs the query
        W_OV = torch.einsum("hde,hef->dhf", attn.W_V, attn.W_O).reshape(D, H * D)  # (d_model, head*d_model)
        keys = torch.cat([R[:2].reshape(2 * V, D), r2[None]])  # key residuals: a, b (any token) and "="
        OV = keys @ W_OV  # (2*vocab + 1, head*d_model) value-outputs of every key
        # everything after attention is read from resid_mid linearly: MLP input and the direct path
        W_read = torch.cat([mlp.W_in, self.W_U], dim=1)  # (d_model, d_mlp + p)
        const = r2 @ W_read + torch.cat([mlp.b_in, mlp.b_out @ self.W_U])  # (d_mlp + p,)
        table = torch.cat([(OV.reshape(-1, H, D) @ W_read).reshape(-1, W_read.shape[1]), const[None]])
        # 2. per example: gather the 3 key positions' scores, softmax, mix table rows
        n = len(a)
        scores = torch.stack([S[0, a], S[1, b], S[2, eq].expand(n, H)], dim=1)  # (batch, pos, head)
        pattern = torch.softmax(scores, dim=1)
        heads = torch.arange(H, device=x.device)
        rows = torch.stack([a, V + b, torch.full_like(a, 2 * V)], dim=1)  # (batch, pos) row of OV
        idx = torch.cat([(rows[:, :, None] * H + heads).reshape(n, 3 * H),
                         torch.full_like(a, (2 * V + 1) * H)[:, None]], dim=1)  # the last: const
        weights = torch.cat([pattern.reshape(n, 3 * H), pattern.new_ones(n, 1)], dim=1)
        return sparse_mix(idx, weights, table)  # (batch, d_mlp + p) = resid_mid @ W_read

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """Last-position logits from per-vocabulary tables (see :meth:`_fast_read`); one layer only."""
        # split, not two slices: its backward is one cat instead of two zero-filled full-size grads
        pre, direct = torch.split(self._fast_read(x), [self.d_mlp, self.p], dim=1)
        mlp = self.blocks[0].mlp
        return torch.addmm(direct, torch.relu(pre), mlp.W_out @ self.W_U)  # (batch, p)

    def neuron_acts_last(self, x: torch.Tensor) -> torch.Tensor:
        """Post-ReLU MLP activations at the last position, ``(batch, d_mlp)``, via the fast path.

        Equals ``run_with_cache(x)[1]["blocks.0.mlp.hook_post"][:, -1]`` (falls back to it when the
        fast path does not apply).
        """
        if not self.can_use_fast(x):
            return self.run_with_cache(x, names=["blocks.0.mlp.hook_post"])[1]["blocks.0.mlp.hook_post"][:, -1]
        return torch.relu(self._fast_read(x)[:, : self.d_mlp])

    # ------------------------------------------------------------------ hooks and caches
    @contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[str, Callable]] = ()) -> Iterator[Transformer]:
        """Attach ``(hook_name, fn(activation, hook_name) -> activation | None)`` pairs for the block.

        Hooks are removed in ``finally`` (TransformerLens: "hooks are GLOBAL state"). While hooks
        are attached, the forward pass uses the full computation so every hook fires.
        """
        handles = []
        try:
            for name, fn in fwd_hooks:
                if name not in self.hook_dict:
                    raise ValueError(f"unknown hook {name!r}; known: {sorted(self.hook_dict)}")
                handles.append(self.hook_dict[name].register_forward_hook(
                    lambda _m, _inp, out, fn=fn, name=name: fn(out, name)))
            yield self
        finally:
            for h in handles:
                h.remove()

    def run_with_cache(self, x: torch.Tensor, names: Sequence[str] | Callable[[str], bool] | None = None
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the full computation and return ``(logits, {hook_name: activation})``.

        ``names``: a list of hook names or a predicate on names; ``None`` caches every hook point.
        """
        if names is None:
            keep = list(self.hook_dict)
        elif callable(names):
            keep = [n for n in self.hook_dict if names(n)]
        else:
            keep = list(names)
        cache: dict[str, torch.Tensor] = {}

        def store(act: torch.Tensor, name: str) -> None:
            cache[name] = act.detach()

        with self.hooks([(n, store) for n in keep]):
            logits = self.forward_full(x)
        return logits, cache


def naive_logits(model: Transformer, x: torch.Tensor) -> torch.Tensor:
    """Full-sequence computation without hook overhead: the benchmark's reference implementation.

    Computes every position's q/k/v, attention, MLP and unembedding as a plain implementation
    (e.g. Nanda et al.'s original code) does, and returns the last position's logits.
    """
    blk = model.blocks[0]
    resid = model.W_E[x] + model.W_pos[: x.shape[1]]
    for blk in model.blocks:
        resid = resid + blk.attn(resid)
        resid = resid + blk.mlp(resid)
    return (resid @ model.W_U)[:, -1]
