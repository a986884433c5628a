"""Which tensors of a model are analysed, as which N×M matrices: rules for modules and for keys.

A *layer* is one ESD: the eigenvalues of W^T W pooled over one or more N×M matrices cut from one
tensor (Martin & Mahoney 2021, JMLR 22, Sec. 2; weightwatcher 0.7.7's layer types):

- ``nn.Linear`` (and any module whose class name contains "linear"), ``nn.Embedding``, 2-D
  "Conv1D" modules (GPT-2 style): the weight as it is (``dense`` / ``embedding``);
- Conv1d / Conv2d: one (out, in) slice per kernel position, eigenvalues pooled and, for Conv2d,
  multiplied by 1/2 (weightwatcher's ``conv2d_norm``);
- ``nn.MultiheadAttention``'s packed ``in_proj_weight``: split into q, k, v (``<path>.in_proj_q``);
- bare ``W_*`` parameters of other modules (TransformerLens style): 2-D as they are, 3-D
  head-stacked ``(heads, a, b)`` with the heads concatenated on the smaller side.

From a module the layer is named by its path in ``named_modules()``; from a state dict (a file,
no module types) by the key without ``.weight`` (``encoder.layer.0.attention.self.query.weight``
→ ``encoder.layer.0.attention.self.query``), 2-D weights as dense (``embedding`` where the name
says so), 3-D as conv1d, 4-D as conv2d. Both routes give the same layers for Linear/Embedding
models. Every other tensor is reported as skipped, with its reason.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LayerMatrices", "Skipped", "key_layers", "module_layers", "to_matrices"]


@dataclass(frozen=True)
class LayerMatrices:
    """One layer: the tensor ``key`` cut into ``rf`` matrices of shape N×M (N >= M) by ``part``.

    ``part``: ``matrix`` (as is), ``conv`` (one slice per kernel position), ``heads``
    (head-stacked 3-D), ``q`` / ``k`` / ``v`` (a third of a packed in-projection). ``scale``
    multiplies the eigenvalues (1/2 for Conv2d).
    """

    name: str
    kind: str  # dense | embedding | conv1d | conv2d | attention_in | parameter
    key: str
    part: str
    n: int
    m: int
    rf: int = 1
    scale: float = 1.0
    shape: tuple[int, ...] = ()  # of the tensor ``key``

    @property
    def cost(self) -> int:
        """Flops of the Gram products, N·M² per matrix (to schedule the largest first)."""
        return self.rf * self.n * self.m * self.m


@dataclass(frozen=True)
class Skipped:
    """A tensor (or a layer cut from one) that is not analysed, and why."""

    name: str
    reason: str
    shape: tuple[int, ...]
    dtype: str


def to_matrices(w: torch.Tensor, part: str) -> list[torch.Tensor]:
    """The matrices of one layer cut from its tensor ``w`` (see :class:`LayerMatrices`)."""
    if part == "matrix":
        return [w]
    if part in ("q", "k", "v"):
        return [w.chunk(3, dim=0)["qkv".index(part)]]
    if part == "heads":
        h, a, b = w.shape
        return [w.permute(1, 0, 2).reshape(a, h * b) if a > b else w.reshape(h * a, b)]
    if part == "conv":
        return _conv_slices(w)
    raise ValueError(f"unknown matrix part {part!r}")


def _conv_slices(w: torch.Tensor) -> list[torch.Tensor]:
    """One (out, in) matrix per kernel position, as weightwatcher's ``conv2D_Wmats`` (channels
    last is detected when out + in >= the kernel dims)."""
    if w.ndim == 3:
        w = w[..., None]
    o, i, kh, kw = w.shape
    if o + i >= kh + kw:
        return [w[:, :, a, b] for a in range(kh) for b in range(kw)]
    return [w[a, b] for a in range(o) for b in range(i)]


def _layer(name: str, kind: str, key: str, part: str, shape: tuple[int, ...]) -> LayerMatrices:
    """The layer's N, M and rf from the tensor's shape alone (no data read)."""
    if part in ("q", "k", "v"):
        a, b = shape[0] // 3, shape[1]
    elif part == "heads":
        h, a, b = shape
        a, b = (a, h * b) if a > b else (h * a, b)
    elif part == "conv":
        o, i, kh, kw = (*shape, 1) if len(shape) == 3 else shape
        a, b = (o, i) if o + i >= kh + kw else (kh, kw)
        rf = kh * kw if o + i >= kh + kw else o * i
        return LayerMatrices(name, kind, key, part, max(a, b), min(a, b), rf,
                             0.5 if kind == "conv2d" else 1.0, tuple(shape))
    else:
        a, b = shape
    return LayerMatrices(name, kind, key, part, max(a, b), min(a, b), shape=tuple(shape))


def _module_kind(module: nn.Module) -> str | None:
    t = type(module).__name__.lower()
    if isinstance(module, nn.MultiheadAttention):
        return "attention_in"
    if isinstance(module, nn.Linear) or "linear" in t:
        return "dense"
    if isinstance(module, nn.Conv1d) or "conv1d" in t:
        return "conv1d"
    if isinstance(module, nn.Conv2d) or "conv2d" in t:
        return "conv2d"
    if isinstance(module, nn.Embedding) or "embedding" in t:
        return "embedding"
    return None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


ModuleLayer = tuple[LayerMatrices, torch.Tensor]


def _bare_parameters(path: str, module: nn.Module) -> Iterator[ModuleLayer]:
    """``W_*`` parameters (2-D or head-stacked 3-D) of a module of no recognised type."""
    for pname, w in module.named_parameters(recurse=False):
        if pname.startswith("W_") and w.ndim in (2, 3):
            key = _join(path, pname)
            yield _layer(key, "parameter", key, "matrix" if w.ndim == 2 else "heads", tuple(w.shape)), w


def _module_matrices(path: str, module: nn.Module, split_attention: bool) -> Iterator[ModuleLayer]:
    kind = _module_kind(module)
    if kind is None:
        yield from _bare_parameters(path, module)
        return
    if kind == "attention_in":
        w = getattr(module, "in_proj_weight", None)
        if split_attention and isinstance(w, torch.Tensor):
            key = _join(path, "in_proj_weight")
            for part in "qkv":
                yield _layer(f"{path}.in_proj_{part}", kind, key, part, tuple(w.shape)), w
        return
    w = getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor) or w.ndim < 2:
        return
    key = _join(path, "weight")
    if w.ndim == 2:
        yield _layer(path, "dense" if kind == "conv1d" else kind, key, "matrix", tuple(w.shape)), w
    elif kind in ("conv1d", "conv2d") and w.ndim in (3, 4):
        yield _layer(path, kind, key, "conv", tuple(w.shape)), w


def module_layers(model: nn.Module, *, split_attention: bool = True
                  ) -> tuple[dict[str, torch.Tensor], list[LayerMatrices], list[Skipped]]:
    """The tensors of ``model`` (its ``state_dict`` and the layers' weights, detached, no
    copies), its analysable layers in ``named_modules`` order, and every other tensor with the
    reason it is not analysed."""
    tensors = dict(model.state_dict())
    owner = {_join(path, n): type(mod).__name__ for path, mod in model.named_modules()
             for n, _ in mod.named_parameters(recurse=False)}
    found = [pair for path, mod in model.named_modules() for pair in _module_matrices(path, mod, split_attention)]
    tensors.update({lay.key: w.detach() for lay, w in found})
    lays = [lay for lay, _ in found]
    used = {lay.key for lay in lays}
    skipped = [Skipped(k, _tensor_reason(t, f"in a {owner.get(k, 'buffer')} module, whose weights "
                                            "are not analysed"), tuple(t.shape), _dtype_name(t.dtype))
               for k, t in tensors.items() if k not in used]
    return tensors, lays, skipped


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "unknown" if dtype is None else str(dtype).removeprefix("torch.")


def _tensor_reason(t: torch.Tensor | None, fallback: str, *, ndim: int | None = None,
                   floating: bool | None = None) -> str:
    """Why a tensor is not a weight matrix: unsupported dtype, fewer than 2 dims, or ``fallback``."""
    floating = t.is_floating_point() if floating is None else floating
    ndim = t.ndim if ndim is None else ndim
    if not floating:
        return "unsupported dtype (only floating-point weights are analysed)"
    if ndim < 2:
        return f"{ndim}-D (bias, norm scale or buffer: no matrix)"
    return fallback


def key_layers(info: Mapping[str, tuple[tuple[int, ...], torch.dtype | None]], *, split_attention: bool = True
               ) -> tuple[list[LayerMatrices], list[Skipped]]:
    """Layers named from state-dict keys alone, given each tensor's ``(shape, dtype)``
    (no data read): ``<path>.weight`` 2-D → dense (embedding if the path says so), 3-D → conv1d,
    4-D → conv2d; ``<path>.in_proj_weight`` → q, k, v; ``<path>.W_*`` → as in a module."""
    lays, skipped = [], []
    for key, (shape, dtype) in info.items():
        floating = dtype is not None and dtype.is_floating_point
        lay = _key_layer(key, shape, split_attention) if floating else None
        if isinstance(lay, list):
            lays.extend(lay)
            continue
        fallback = f"{len(shape)}-D tensor {key.rsplit('.', 1)[-1]!r}: no rule turns it into a matrix"
        reason = _tensor_reason(None, fallback, ndim=len(shape), floating=floating)
        skipped.append(Skipped(key, reason, tuple(shape), _dtype_name(dtype)))
    return lays, skipped


def _key_layer(key: str, shape: tuple[int, ...], split_attention: bool) -> list[LayerMatrices] | None:
    path, _, leaf = key.rpartition(".")
    if leaf.startswith("W_") and len(shape) in (2, 3):
        return [_layer(key, "parameter", key, "matrix" if len(shape) == 2 else "heads", shape)]
    if leaf == "in_proj_weight" and len(shape) == 2 and split_attention:
        return [_layer(f"{path}.in_proj_{p}", "attention_in", key, p, shape) for p in "qkv"]
    if leaf != "weight" or len(shape) not in (2, 3, 4):
        return None
    if len(shape) == 2:
        return [_layer(path, "embedding" if "embed" in path.lower() else "dense", key, "matrix", shape)]
    return [_layer(path, "conv1d" if len(shape) == 3 else "conv2d", key, "conv", shape)]
