"""Muon: momentum orthogonalised by Newton–Schulz for 2-D weights, AdamW for the rest (Jordan 2024).

For a weight matrix with gradient ``G_t`` ([1]; [2], ``muon_update``):

- momentum ``B_t = β B_{t−1} + (1 − β) G_t``; Nesterov: ``M_t = β B_t + (1 − β) G_t`` (else ``B_t``);
- orthogonalise: ``O_t = NS₅(M_t) ≈ U Vᵀ`` for ``M_t = U S Vᵀ`` (:func:`newton_schulz`);
- shape scaling and decoupled weight decay: ``W ← (1 − η λ) W − η · sqrt(max(1, rows/cols)) · O_t``.

:func:`newton_schulz` normalises ``X = M / ‖M‖_F`` (so every singular value is ≤ 1), works on the
wide orientation (transposing when rows > cols) and iterates the quintic
``X ← a X + (b A + c A²) X``, ``A = X Xᵀ``, with Jordan's coefficients ``(a, b, c) = (3.4445,
−4.7750, 2.0315)``: they maximise the slope at zero, so five steps push every singular value into
roughly [0.7, 1.2] instead of converging to exactly 1 ([1]). Parameters that are not 2-D (biases,
gains) — and any group marked ``use_muon=False`` (embeddings, heads, as [1] advises;
:func:`muon_param_groups` marks them by name) — take AdamW steps with bias correction ([2],
``adam_update``). A parameter with more than two dims in a Muon group is a stack of matrices over its
last two dims (per-head attention weights ``(head, d_model, d_head)``), each orthogonalised on its own.
Everything lives in ``torch.optim.Optimizer`` state, so ``state_dict`` / ``load_state_dict`` resume
exactly.

References
----------
.. [1] Jordan et al. (2024). Muon: An optimizer for hidden layers in neural networks.
   https://kellerjordan.github.io/posts/muon/
.. [2] github.com/KellerJordan/Muon, ``muon.py`` (``zeropower_via_newtonschulz5``,
   ``SingleDeviceMuonWithAuxAdam``).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from workbench.validation import check_range

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximate polar factor ``U Vᵀ`` of a matrix by the quintic Newton–Schulz iteration ([2]).

    Parameters
    ----------
    G : ``(..., rows, cols)``; computed in float32 (bfloat16 in [2], a GPU speed choice).
    steps : iterations (5 in [1]).

    Returns
    -------
    Tensor of ``G``'s shape and dtype, singular vectors of ``G`` and singular values near 1.
    """
    if G.ndim < 2:
        raise ValueError(f"newton_schulz needs a matrix, got shape {tuple(G.shape)}")
    a, b, c = NS_COEFFICIENTS
    X = G.float()
    tall = G.size(-2) > G.size(-1)
    X = X.mT if tall else X
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if tall else X).to(G.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters, AdamW for the others, in one optimizer ([1], [2]).

    Parameters
    ----------
    params : parameters, or param groups (dicts); a group may set ``use_muon`` (without it the
        group's 2-D parameters go to Muon and the others to AdamW) and any of the options below for
        its kind.
    lr : Muon learning rate, in units of spectral norm per step (0.02 in [2]).
    momentum : Muon momentum β (0.95).
    nesterov : Nesterov momentum (on in [2]).
    ns_steps : Newton–Schulz iterations (5).
    weight_decay : decoupled weight decay of the Muon parameters.
    adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay : AdamW for the other parameters.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, weight_decay: float = 0.0, adamw_lr: float = 1e-3,
                 adamw_betas: tuple[float, float] = (0.9, 0.98), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0):
        for name, value in (("lr", lr), ("adamw_lr", adamw_lr)):
            check_range(value, name, 0.0, low_open=True)
        check_range(momentum, "momentum", 0.0, 1.0, high_open=True)
        check_range(ns_steps, "ns_steps", 1)
        muon = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
                "weight_decay": weight_decay}
        adamw = {"lr": adamw_lr, "betas": tuple(adamw_betas), "eps": adamw_eps,
                 "weight_decay": adamw_weight_decay}
        groups = []
        for group in _as_groups(params):
            for use_muon in _split(group):
                members = [q for q in group["params"] if group.get("use_muon", q.ndim == 2) == use_muon]
                if members:
                    opts = {k: v for k, v in group.items() if k not in ("params", "use_muon")}
                    groups.append({**(muon if use_muon else adamw), **opts, "params": members,
                                   "use_muon": use_muon})
        super().__init__(groups, {})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One update of every parameter with a gradient (module docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for q in group["params"]:
                if q.grad is None:
                    continue
                update = self._muon(q, group) if group["use_muon"] else self._adamw(q, group)
                q.mul_(1 - group["lr"] * group["weight_decay"])
                q.add_(update, alpha=-group["lr"])
        return loss

    def _muon(self, q: torch.Tensor, group: dict) -> torch.Tensor:
        if q.ndim < 2:
            raise ValueError(f"use_muon=True needs parameters with >= 2 dims, got shape {tuple(q.shape)}")
        state = self.state[q]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(q)
        buf, beta = state["momentum_buffer"], group["momentum"]
        buf.lerp_(q.grad, 1 - beta)
        m = q.grad.lerp(buf, beta) if group["nesterov"] else buf
        return newton_schulz(m, group["ns_steps"]) * max(1.0, q.size(-2) / q.size(-1)) ** 0.5

    def _adamw(self, q: torch.Tensor, group: dict) -> torch.Tensor:
        state = self.state[q]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(q), torch.zeros_like(q)
        state["step"] += 1
        t = float(state["step"])
        (b1, b2), g = group["betas"], q.grad
        state["exp_avg"].lerp_(g, 1 - b1)
        state["exp_avg_sq"].lerp_(g.square(), 1 - b2)
        return (state["exp_avg"] / (1 - b1**t)) / ((state["exp_avg_sq"] / (1 - b2**t)).sqrt() + group["eps"])


def _as_groups(params: Iterable[Any]) -> list[dict]:
    params = list(params)
    if not params:
        raise ValueError("Muon got an empty parameter list")
    return params if isinstance(params[0], dict) else [{"params": params}]


def _split(group: dict) -> tuple[bool, ...]:
    return (bool(group["use_muon"]),) if "use_muon" in group else (True, False)


EMBEDDING_NAMES = ("embed", "unembed", "W_E", "W_pos", "W_U")


def muon_param_groups(model: torch.nn.Module, adamw_names: tuple[str, ...] = EMBEDDING_NAMES) -> list[dict]:
    """Param groups for :class:`Muon`: hidden matrices (``≥ 2`` dims) on Muon, the rest on AdamW.

    A parameter goes to AdamW when it has fewer than two dims or a component of its dotted name is in
    ``adamw_names`` (embeddings and unembeddings, as [1] advises: their gradients are not
    well-conditioned matrices of a linear map between hidden spaces).
    """
    muon, adamw = [], []
    for name, q in model.named_parameters():
        (adamw if q.ndim < 2 or set(name.split(".")) & set(adamw_names) else muon).append(q)
    return [g for g in ({"params": muon, "use_muon": True}, {"params": adamw, "use_muon": False}) if g["params"]]
