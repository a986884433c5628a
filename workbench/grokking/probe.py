"""The grokking probe: every progress measure of Nanda et al. (2023) in one Dataset per step.

References
----------
.. [1] Nanda et al. (2023). Progress measures for grokking via mechanistic interpretability. arXiv:2301.05217.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.grokking.fourier import (
    PAPER,
    all_logits,
    embedding_fourier_norms,
    gini,
    key_frequencies,
    logit_fourier_2d,
    n_freqs,
    neuron_activations,
    neuron_frequency_clusters,
    neuron_logit_fourier_norms,
    weight_norm,
)
from workbench.grokking.losses import excluded_loss, restricted_loss


@torch.no_grad()
def grokking_probe(model: nn.Module, task: Any, key_freqs: list[int] | None = None,
                   neurons: bool = True) -> xr.Dataset:
    """All grokking progress measures of ``model`` on ``task`` (no ``step`` dim; ``fit`` adds it).

    Key frequencies are ``key_freqs`` if given, else :func:`key_frequencies` of the current
    embedding (so early in training the set may be empty: restricted loss ≈ ``log p``).

    Returns
    -------
    xr.Dataset with scalars ``restricted_loss`` (all pairs), ``excluded_loss`` (train pairs),
    ``gini`` (of the embedding's per-frequency norms), ``gini_logit``, ``weight_norm``,
    ``key_freq_fraction`` (share of non-constant embedding energy in the key frequencies),
    ``n_key_freqs``; ``embed_norm`` / ``logit_norm`` over ``freq``; ``is_key`` over ``freq``;
    ``logit_fourier_2d`` over ``(freq_a, freq_b)``; and with ``neurons``, ``neuron_freq`` and
    ``neuron_frac`` over ``neuron``.
    """
    p = int(task.p)
    keys = key_frequencies(model) if key_freqs is None else [int(k) for k in key_freqs]
    emb = embedding_fourier_norms(model)
    logit_norm = neuron_logit_fourier_norms(model)
    L = all_logits(model, p)
    energy = emb.values[1:] ** 2
    frac = float(energy[[k - 1 for k in keys]].sum() / energy.sum()) if keys else 0.0
    is_key = np.zeros(n_freqs(p) + 1, dtype=bool)
    is_key[keys] = True
    data: dict[str, Any] = {"weight_norm": weight_norm(model), "key_freq_fraction": frac,
                            "n_key_freqs": len(keys), "embed_norm": emb, "logit_norm": logit_norm,
                            "is_key": ("freq", is_key),
                            "gini": gini(emb.isel(freq=slice(1, None))),
                            "gini_logit": gini(logit_norm.isel(freq=slice(1, None))),
                            "logit_fourier_2d": logit_fourier_2d(L).astype(np.float32)}
    if getattr(task, "op", "add") in ("add", "sub"):
        data["restricted_loss"] = restricted_loss(L, keys, op=task.op)
        data["excluded_loss"] = excluded_loss(L, keys, pairs=task.train_x, op=task.op)
    else:
        data["restricted_loss"] = data["excluded_loss"] = float("nan")
    if neurons:
        cl = neuron_frequency_clusters(neuron_activations(model, p))
        data["neuron_freq"] = cl["cluster"]
        data["neuron_frac"] = cl["frac_explained"].astype(np.float32)
    ds = xr.Dataset({k: v.drop_attrs() if isinstance(v, xr.DataArray) else v for k, v in data.items()})
    return ds.assign_attrs(reference=PAPER, key_freq_rule="E_k >= 3 median(E) on W_E, cut at 95% of the energy")
