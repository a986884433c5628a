"""Input checks used at every public boundary: clear errors naming the argument.

Convention (DESIGN.md): validate shapes, finiteness and ranges early and raise ``ValueError`` /
``TypeError`` naming the argument and what was expected. Never drop NaNs silently.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence


def as_tensor(
    x: ArrayLike,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    allow_complex: bool = False,
    min_size: int = 1,
) -> torch.Tensor:
    """Convert ``x`` to a tensor and check it: type, dimensionality, size, finiteness.

    Raises ``TypeError`` for non-numeric input and ``ValueError`` (naming ``name``) for the wrong
    number of dimensions, an empty array, complex values where not allowed, or NaN/Inf entries.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists etc.
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex() and not allow_complex:
        raise ValueError(f"{name} is complex; this function expects real input")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {tuple(t.shape)}")
    if t.numel() < min_size:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); need at least {min_size} entries")
    if dtype is not None and not (t.is_complex() and not dtype.is_complex):
        t = t.to(dtype)
    if device is not None:
        t = t.to(device)
    check_finite(t, name)
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or Inf, saying how many and where the first is.

    One reduction first: a sum is NaN/Inf whenever an entry is, so a finite sum proves the tensor
    finite; only a non-finite sum (a bad entry, or a rare overflow) pays for the element-wise check.
    """
    if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t.sum())):
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0].tolist())
            raise ValueError(f"{name} contains {int(bad.sum())} NaN/Inf value(s), first at index {first}")


def check_range(value: float, name: str, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number with ``low <= value <= high``
    (open ends if requested). NaN and ±Inf are refused whatever the bounds: a comparison with NaN
    is always false, so without this check NaN would pass every range."""
    try:
        finite = math.isfinite(value)
    except TypeError:
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}") from None
    if not finite:
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
