"""From what the user passes to the layers an analysis reads, and the report of everything else.

:func:`open_model` accepts an ``nn.Module`` (module rules), a state dict, or a path (a
``.safetensors`` file, a Hugging Face model directory, single or sharded, or a torch checkpoint;
key rules, :mod:`workbench.spectrum.weights`). :func:`select_layers` applies weightwatcher's size
rules (Martin & Mahoney 2021; weightwatcher 0.7.7 ``min_evals``, ``max_evals``, ``max_N``) and the
user's layer filter; every tensor or layer left out is a :class:`Skipped` with its reason.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from workbench.spectrum.layers import LayerMatrices, Skipped, key_layers, module_layers
from workbench.spectrum.weights import StateDictReader, TensorInfo, TensorReader, open_weights

__all__ = ["ModelLike", "ModelWeights", "open_model", "select_layers"]

ModelLike = nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike


@dataclass
class ModelWeights:
    """A model's tensor reader, its layer candidates and the tensors already set aside."""

    reader: TensorReader
    info: TensorInfo
    layers: list[LayerMatrices]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def from_disk(self) -> bool:
        return not isinstance(self.reader, StateDictReader)


def open_model(model: ModelLike, *, split_attention: bool = True) -> ModelWeights:
    """The :class:`ModelWeights` of a module, a state dict or a path (see the module docstring)."""
    if isinstance(model, nn.Module):
        if next(iter(model.parameters()), None) is None:
            raise ValueError("model is empty: it has no parameters")
        tensors, lays, skipped = module_layers(model, split_attention=split_attention)
        reader: TensorReader = StateDictReader(tensors, type(model).__name__)
        return ModelWeights(reader, reader.info(), lays, skipped)
    if isinstance(model, Mapping):
        if not model:
            raise ValueError("the state dict is empty: it has no tensors")
        reader = StateDictReader(model)
    elif isinstance(model, (str, os.PathLike)):
        reader = open_weights(model)
    else:
        raise TypeError(f"model must be a torch.nn.Module, a state dict or a path to weights "
                        f"(.safetensors, a model directory, .pt/.bin), got {type(model).__name__}")
    info = reader.info()
    return ModelWeights(reader, info, *key_layers(info, split_attention=split_attention))


def _size_reason(lay: LayerMatrices, min_evals: int, max_evals: int, max_n: int) -> str | None:
    evals = lay.m * lay.rf
    if evals < min_evals:
        return f"too small: {evals} eigenvalues < min_evals={min_evals}"
    if evals > max_evals:
        return f"over max size: {evals} eigenvalues > max_evals={max_evals}"
    if lay.n > max_n:
        return f"over max size: N={lay.n} > max_N={max_n}"
    return None


def layer_skipped(weights: ModelWeights, lay: LayerMatrices, reason: str) -> Skipped:
    """A layer set aside (its tensor's shape and dtype, the layer's name)."""
    dtype = weights.info.get(lay.key, ((), None))[1]
    return Skipped(lay.name, reason, lay.shape, "unknown" if dtype is None else str(dtype).removeprefix("torch."))


def _wanted(names: list[str], layers: Sequence[str] | str) -> set[str]:
    """``layers``: exact layer names, or one regular expression (``re.search``)."""
    if isinstance(layers, str):
        pattern = re.compile(layers)
        wanted = {n for n in names if pattern.search(n)}
        if not wanted:
            raise ValueError(f"no analysable layer matches layers={layers!r}; analysable: {names[:20]}")
        return wanted
    missing = [n for n in layers if n not in names]
    if missing:
        raise ValueError(f"layers not found or skipped by the size rules: {missing}; analysable: {sorted(names)}")
    return set(layers)


def select_layers(weights: ModelWeights, layers: Sequence[str] | str | None = None, *, min_evals: int = 8,
                  max_evals: int = 15000, max_n: int = 50000) -> tuple[list[LayerMatrices], list[Skipped]]:
    """The layers to analyse, and every tensor or layer left out with its reason."""
    skipped = list(weights.skipped)
    kept = []
    for lay in weights.layers:
        reason = _size_reason(lay, min_evals, max_evals, max_n)
        if reason is None:
            kept.append(lay)
        else:
            skipped.append(layer_skipped(weights, lay, reason))
    if layers is not None:
        wanted = _wanted([lay.name for lay in kept], layers)
        skipped += [layer_skipped(weights, lay, "not selected (layers=...)") for lay in kept if lay.name not in wanted]
        kept = [lay for lay in kept if lay.name in wanted]
    if not kept:
        sized = [f"{lay.name or type(weights).__name__}: {_size_reason(lay, min_evals, max_evals, max_n)}" for lay in weights.layers
                 if _size_reason(lay, min_evals, max_evals, max_n)]
        if sized:  # there were weight matrices: say which size rule left each out
            raise ValueError(f"{weights.reader.source} has no layer within the size rules: {'; '.join(sized[:5])}"
                             f"{' ...' if len(sized) > 5 else ''} (change min_evals, max_evals or max_N)")
        raise ValueError(f"{weights.reader.source} has no layer with a weight matrix of at least "
                         f"min_evals={min_evals} eigenvalues (Linear, Embedding, Conv1d/2d, "
                         "MultiheadAttention; from files: 2-D to 4-D '*.weight' tensors)")
    return kept, skipped
