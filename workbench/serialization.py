"""Pickle-free (de)serialisation of nested states: tensors → safetensors keys, the rest → JSON.

Optimizer and RNG states are nested dicts/lists of tensors and scalars, sometimes with integer
keys. ``encode_state`` replaces each tensor by ``{"__tensor__": key}`` (the tensor goes into
``tensors[key]``) and keeps key types, so ``decode_state(encode_state(s, t), t) == s``.
"""
from __future__ import annotations

from typing import Any

import torch

JSON_SCALARS = (bool, int, float, str, type(None))


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """JSON skeleton of ``obj``; tensors are moved into ``tensors`` under their path."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (int, str)):
                raise TypeError(f"state key {k!r} at {path} must be int or str")
        return {"__dict__": [[k, encode_state(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, JSON_SCALARS):
        return obj
    raise TypeError(f"cannot serialise {type(obj).__name__} at {path}: only tensors, dicts, lists, tuples and scalars")


def decode_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__tuple__" in skeleton:
            return tuple(decode_state(v, tensors) for v in skeleton["__tuple__"])
        return {k: decode_state(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [decode_state(v, tensors) for v in skeleton]
    return skeleton
