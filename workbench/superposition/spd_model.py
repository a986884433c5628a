"""Rank-one subcomponents and causal-importance functions of many toy models at once (SPD [1]_).

:class:`SPDModel` holds, for I target toy models ``x̂ = ReLU(Wᵀ [I] W x + b)`` (W shaped
(instance, hidden, feature) as in :class:`~workbench.superposition.toy.ToyModels`; the identity
``I`` only in the "+ identity" variant), one decomposition per target matrix

.. math:: W^l ≈ \\sum_{c=1}^C \\vec U^l_{:,c} \\vec V^l_{c,:}   \\qquad ([1]_, eq. 1)

and one causal-importance MLP per subcomponent ([1]_, Appendix "Architecture of Causal Importance
Function MLPs"). Matrices use the paper's (out, in) convention; the layers are

``W_in``      W (H×F): the embedding, its subcomponents ``U_in`` (I, H, C), ``V_in`` (I, C, F);
``identity``  the inserted H×H identity (``U_id``, ``V_id``), "+ identity" variant only;
``W_out``     Wᵀ (F×H), tied to W as in the target: U = V_inᵀ, V = U_inᵀ (the reference code ties
              the two layers' subcomponents the same way), with its own causal importances.

Everything carries a leading instance axis and runs as batched matrix products: decomposing
many seeds is one program. Shapes: I instance, B batch, F feature, H hidden, C component,
L layer, G gate neurons.

References
----------
.. [1] Bushnaq, L., Braun, D., Sharkey, L. et al. (2025). Stochastic Parameter Decomposition.
   arXiv:2506.20790. Reference code: github.com/goodfire-ai/spd, branch ``spd-paper``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F

LEAK = 0.01  # slope of the leaky hard sigmoids ([1]_, "Avoiding dead gradients")


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """σ_H(x) = min(max(x, 0), 1) ([1]_, Appendix, eq. of σ_H)."""
    return x.clamp(0.0, 1.0)


def lower_leaky_hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """σ_H,lower: 0.01·x for x ≤ 0, else min(x, 1): the masks of the forward pass ([1]_, Appendix)."""
    return torch.where(x > 0, x.clamp(max=1.0), LEAK * x)


def upper_leaky_hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """σ_H,upper: 1 + 0.01·(x − 1) for x ≥ 1, else max(x, 0): the importance-minimality loss ([1]_)."""
    return torch.where(x > 1, 1.0 + LEAK * (x - 1.0), x.clamp(min=0.0))


def _unit_columns(shape: tuple[int, ...], dim: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(shape, generator=generator)
    return x / x.norm(dim=dim, keepdim=True)


def _init_rank_one(target: torch.Tensor, C: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """U (I, out, C), V (I, C, in): unit random directions, U_c scaled by ⟨U_c V_cᵀ, W⟩ (as the
    reference code's ``init_As_and_Bs_``), so each subcomponent starts at its overlap with W."""
    I, d_out, d_in = target.shape
    V = _unit_columns((I, C, d_in), 2, generator)
    U = _unit_columns((I, d_out, C), 1, generator)
    overlap = torch.einsum("koc,kcj,koj->kc", U, V, target)
    return U * overlap[:, None, :], V


class SPDModel(nn.Module):
    """Subcomponents and causal-importance MLPs of I toy models (see the module docstring).

    Parameters
    ----------
    W : torch.Tensor
        Target weights (I, H, F), float32; ``b`` the target biases (I, F).
    identity : bool
        Decompose the "+ identity" target ReLU(Wᵀ I W x + b) (three matrices instead of two).
    C : int
        Subcomponents per matrix.
    gate_hidden : int
        d_gate, GELU neurons of each causal-importance MLP (paper: 16).
    generator : torch.Generator
        Seeds the subcomponents and the MLP weights.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, *, identity: bool, C: int,
                 gate_hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        I, H, _ = W.shape
        self.identity, self.C = bool(identity), int(C)
        self.register_buffer("W", W.detach().clone())
        self.register_buffer("b", b.detach().clone())
        self.layers = ("W_in", "identity", "W_out") if identity else ("W_in", "W_out")
        U, V = _init_rank_one(self.W, C, generator)
        self.U_in, self.V_in = nn.Parameter(U), nn.Parameter(V)
        if identity:
            U, V = _init_rank_one(torch.eye(H).expand(I, H, H), C, generator)
            self.U_id, self.V_id = nn.Parameter(U), nn.Parameter(V)
        shape = (I, len(self.layers), C, gate_hidden)
        # reference init: Kaiming normal, fan 1 (ReLU gain) into the MLP, fan d_gate out of it
        self.gate_w_in = nn.Parameter(torch.randn(shape, generator=generator) * math.sqrt(2.0))
        self.gate_b_in = nn.Parameter(torch.zeros(shape))
        self.gate_w_out = nn.Parameter(torch.randn(shape, generator=generator) / math.sqrt(gate_hidden))
        self.gate_b_out = nn.Parameter(torch.zeros(shape[:3]))

    # -- the target and its layers ----------------------------------------------------------
    def targets(self) -> list[torch.Tensor]:
        """Target matrices W^l, (I, out, in) each, in the order of :attr:`layers`."""
        W = self.W
        eye = [torch.eye(W.shape[1], device=W.device).expand(W.shape[0], -1, -1)] if self.identity else []
        return [W, *eye, W.mT]

    def factors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(U^l (I, out, C), V^l (I, C, in)) per layer; ``W_out``'s are the tied U = V_inᵀ, V = U_inᵀ."""
        ident = [(self.U_id, self.V_id)] if self.identity else []
        return [(self.U_in, self.V_in), *ident, (self.V_in.mT, self.U_in.mT)]

    @torch.no_grad()
    def target_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target output ReLU(Wᵀ W x + b) (I, B, F) and its hidden activation W x (I, B, H)."""
        hid = torch.bmm(x, self.W.mT)
        return torch.relu(torch.baddbmm(self.b[:, None], hid, self.W)), hid

    def inner_acts(self, x: torch.Tensor, hid: torch.Tensor) -> torch.Tensor:
        """h^l_c = Σ_j V^l_{c,j} a^l_j on the target's activations a^l ([1]_, eq. of h^l_c): (I, L, B, C).

        a^1 = x; every later matrix reads the target's hidden activation (the identity keeps it)."""
        acts = [x] + [hid] * (len(self.layers) - 1)
        return torch.stack([torch.bmm(a, V.mT) for a, (_, V) in zip(acts, self.factors())], 1)

    def gate_logits(self, h: torch.Tensor) -> torch.Tensor:
        """γ^l_c(h^l_c): one 1 → d_gate → 1 GELU MLP per subcomponent, before the hard sigmoid, (I, L, B, C)."""
        pre = h[..., None] * self.gate_w_in[:, :, None] + self.gate_b_in[:, :, None]   # (I, L, B, C, G)
        out = torch.einsum("ilbcg,ilcg->ilbc", F.gelu(pre), self.gate_w_out)
        return out + self.gate_b_out[:, :, None]

    def causal_importances(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g = σ_H,lower(γ(h(x))) and σ_H,upper(γ(h(x))), (I, L, B, C) each ([1]_, eq. of g^l_c)."""
        _, hid = self.target_forward(x)
        raw = self.gate_logits(self.inner_acts(x, hid))
        return lower_leaky_hard_sigmoid(raw), upper_leaky_hard_sigmoid(raw)

    def masked_forward(self, x: torch.Tensor, masks: list[torch.Tensor | None]) -> torch.Tensor:
        """Output of the model with W'^l = U^l diag(m^l) V^l where ``masks[l]`` (I, B, C) is given,
        and the target's W^l where it is None ([1]_, eq. 2 and the layerwise loss), (I, B, F)."""
        h = x
        for target, (U, V), m in zip(self.targets(), self.factors(), masks):
            h = torch.bmm(h, target.mT) if m is None else torch.bmm(torch.bmm(h, V.mT) * m, U.mT)
        return torch.relu(h + self.b[:, None])


def to_dataset(model: SPDModel) -> xr.Dataset:
    """The decomposition as a Dataset: target ``W`` (instance, hidden, feature) and ``b``; the
    subcomponents ``U`` (instance, layer, component, out) and ``V`` (instance, layer, component, in)
    of every layer (NaN-padded where a layer is narrower than F; coords ``d_out``/``d_in`` give each
    layer's sizes); the MLP weights ``gate_*`` (instance, layer, component[, gate])."""
    I, H, F_ = model.W.shape
    n = max(F_, H)
    U = np.full((I, len(model.layers), model.C, n), np.nan, np.float32)
    V = np.full_like(U, np.nan)
    for l, (u, v) in enumerate(model.factors()):
        U[:, l, :, :u.shape[1]] = u.detach().mT.cpu().numpy()
        V[:, l, :, :v.shape[2]] = v.detach().cpu().numpy()
    lcg = ("instance", "layer", "component", "gate")
    ds = xr.Dataset(
        {"W": (("instance", "hidden", "feature"), model.W.cpu().numpy()),
         "b": (("instance", "feature"), model.b.cpu().numpy()),
         "U": (lcg[:3] + ("out",), U), "V": (lcg[:3] + ("in",), V),
         **{name: (lcg, getattr(model, name).detach().cpu().numpy())
            for name in ("gate_w_in", "gate_b_in", "gate_w_out")},
         "gate_b_out": (lcg[:3], model.gate_b_out.detach().cpu().numpy())},
        coords={"instance": np.arange(I), "layer": list(model.layers), "component": np.arange(model.C),
                "feature": np.arange(F_), "hidden": np.arange(H), "out": np.arange(n), "in": np.arange(n),
                "d_out": ("layer", [t.shape[1] for t in model.targets()]),
                "d_in": ("layer", [t.shape[2] for t in model.targets()])},
        attrs={"identity": int(model.identity), "C": model.C, "method": "SPD",
               "reference": "Bushnaq et al. 2025, Stochastic Parameter Decomposition, arXiv:2506.20790"})
    return ds


def from_dataset(ds: xr.Dataset) -> SPDModel:
    """Rebuild the :class:`SPDModel` stored by :func:`to_dataset` (for causal importances)."""
    missing = [k for k in ("W", "b", "U", "V", "gate_w_in", "gate_b_in", "gate_w_out", "gate_b_out")
               if k not in ds.variables]
    if missing:
        raise ValueError(f"ds lacks {missing}: pass the Dataset returned by workbench.superposition.spd")
    W = torch.from_numpy(ds["W"].transpose("instance", "hidden", "feature").values.astype(np.float32))
    b = torch.from_numpy(ds["b"].values.astype(np.float32))
    layers = [str(v) for v in ds["layer"].values]
    model = SPDModel(W, b, identity="identity" in layers, C=ds.sizes["component"],
                     gate_hidden=ds.sizes["gate"], generator=torch.Generator())
    H = W.shape[1]
    with torch.no_grad():
        for name, l, n_out, n_in in (("in", 0, H, W.shape[2]), ("id", 1, H, H))[:len(layers) - 1]:
            U = ds["U"].transpose("instance", "layer", "component", "out").values[:, l, :, :n_out]
            V = ds["V"].transpose("instance", "layer", "component", "in").values[:, l, :, :n_in]
            getattr(model, f"U_{name}").copy_(torch.from_numpy(U).mT)
            getattr(model, f"V_{name}").copy_(torch.from_numpy(V))
        for name in ("gate_w_in", "gate_b_in", "gate_w_out", "gate_b_out"):
            getattr(model, name).copy_(torch.from_numpy(ds[name].values))
    return model
