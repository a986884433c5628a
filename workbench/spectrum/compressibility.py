"""Compressibility of the weights under general-purpose compressors, over training.

MoMos ("mosaic of motifs") [1]_ measures how structured a network's weights are by how well
standard lossless compressors shrink them: the compression ratio

.. math:: r = \\frac{|\\text{bytes}(θ)|}{|\\text{compress}(\\text{bytes}(θ))|}

of the float32 parameter vector θ (``payload="float32"``) or of its sign bits, one byte each
(``payload="sign"``), under gzip (level 9), bz2 (level 9) and lzma (preset 9) from the standard
library, as in the reference code's ``metrics.py``. Unstructured weights (i.i.d. floats) give
r ≈ 1 (their low mantissa bits are noise); repeated values give large r; i.i.d. fair signs give
r ≤ 8 (one bit of entropy per byte).

References
----------
.. [1] MoMos, "mosaic of motifs" (2026), arXiv:2602.14896; code github.com/saintslab/MoMos
   (``src/metrics.py``: gzip/bz2/lzma compression rate of the float32 weights, sign bits for BDM).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.spectrum.series import StateLike, layer_name, load_state, select_steps, weight_series
from workbench.store import Run

__all__ = ["CODECS", "compressibility", "compression_ratio", "make_compressibility_probe"]

CODECS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
    "bz2": lambda b: bz2.compress(b, compresslevel=9),
    "lzma": lambda b: lzma.compress(b, preset=9),
}
PAYLOADS = ("float32", "sign")


def _payload(state: StateLike, layers: str | None, payload: str) -> bytes:
    """The selected floating tensors of ``state``, flattened in order and concatenated, as bytes."""
    if isinstance(state, nn.Module):
        state = state.state_dict()
    pattern = re.compile(layers) if layers is not None else None
    parts = [t.detach().to("cpu", torch.float32).reshape(-1).numpy() for name, t in state.items()
             if isinstance(t, torch.Tensor) and t.is_floating_point()
             and (pattern is None or pattern.search(layer_name(name)))]
    if not parts:
        raise ValueError(f"no floating tensor{'' if layers is None else f' matches {layers!r}'} to compress")
    theta = np.concatenate(parts)
    return (theta > 0).astype(np.uint8).tobytes() if payload == "sign" else theta.tobytes()


def compression_ratio(data: bytes, codec: str) -> float:
    """``len(data) / len(compress(data))`` under ``codec`` (one of :data:`CODECS`)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if not data:
        raise ValueError("nothing to compress")
    return len(data) / max(1, len(CODECS[codec](data)))


def compressibility(model_or_run: nn.Module | StateLike | Run | Mapping[int, StateLike], *,
                    codecs: Sequence[str] = ("gzip", "bz2", "lzma"), payload: str = "float32",
                    layers: str | None = None, steps: Sequence[int] | None = None,
                    source: str = "auto") -> xr.Dataset:
    """Compression ratio of the weights under gzip / bz2 / lzma (MoMos [1]_), for one model or over a run.

    Parameters
    ----------
    model_or_run : a module or state dict (one measurement), or a Run / mapping ``{step: state}``
        (one per step; a run's full-parameter trajectory and/or checkpoints, as
        :func:`~workbench.spectrum.delta_spectrum`).
    codecs : compressors from :data:`CODECS`.
    payload : ``"float32"`` (the parameter bytes) or ``"sign"`` (one byte 0/1 per parameter, θ > 0).
    layers : regex (``re.search``) on tensor names (``hidden.weight`` is named ``hidden``); default
        every floating tensor (biases included, like the reference, which compresses all parameters).
    steps, source : which steps of a run or mapping, and where a run's weights come from.

    Returns
    -------
    xr.Dataset with ``ratio`` (codec) for a model, (step, codec) over training; ``n_bytes`` the
    uncompressed size; attr ``payload``.
    """
    bad = [c for c in codecs if c not in CODECS]
    if bad or not codecs:
        raise ValueError(f"codecs must be a non-empty subset of {sorted(CODECS)}, got {list(codecs)}")
    if payload not in PAYLOADS:
        raise ValueError(f"payload must be one of {PAYLOADS}, got {payload!r}")
    attrs = {"payload": payload, "reference": "MoMos arXiv:2602.14896 (saintslab/MoMos metrics.py)"}
    single = isinstance(model_or_run, nn.Module) or (
        isinstance(model_or_run, Mapping) and model_or_run and all(isinstance(k, str) for k in model_or_run))
    if single:
        data = _payload(model_or_run, layers, payload)
        return xr.Dataset({"ratio": ("codec", [compression_ratio(data, c) for c in codecs]),
                           "n_bytes": len(data)}, coords={"codec": list(codecs)}, attrs=attrs)
    states = weight_series(model_or_run, source=source)
    chosen = select_steps(states, steps)
    ratio, size = np.zeros((len(chosen), len(codecs))), np.zeros(len(chosen), dtype=np.int64)
    for i, step in enumerate(chosen):
        data = _payload(load_state(states[step]), layers, payload)
        size[i] = len(data)
        ratio[i] = [compression_ratio(data, c) for c in codecs]
    return xr.Dataset({"ratio": (("step", "codec"), ratio), "n_bytes": ("step", size)},
                      coords={"step": np.asarray(chosen, dtype=np.int64), "codec": list(codecs)}, attrs=attrs)


def make_compressibility_probe(**kwargs):
    """A training probe ``fn(model, task) -> xr.Dataset`` (dim ``codec``; no ``step``) recording
    :func:`compressibility` of the model: ``fit(..., probes={"compress": (make_compressibility_probe(
    codecs=("gzip",)), 100)})``. ``kwargs`` go to :func:`compressibility` (``codecs``, ``payload``, ``layers``)."""

    def compressibility_probe(model: nn.Module, task=None) -> xr.Dataset:
        return compressibility(model, **kwargs)

    return compressibility_probe
