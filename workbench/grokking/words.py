"""The 3-tensor a network learns on a word task, ``T[a, b, c]``, and the task's own tensor.

Marchetti et al. (2025) read a network trained on ``c = w(a, b)`` in a finite group as the 3-tensor
of its outputs ``T[a, b, c] = f(a, b)_c``; the target is ``1[w(a, b) = c]``. Softmax and the
argmax ignore anything constant in ``c``, and terms that depend on only one or two of the three
indices carry no interaction, so both tensors are compared after centring every mode,
``T̃ = T ×₁ P ×₂ P ×₃ P`` with ``P = I − 11ᵀ/|G|`` — for the Li² model with ``σ = x²`` this leaves
exactly ``2 Σ_k V̄_{ck} ū_k[a] v̄_k[b]``, a CP decomposition with ``K`` terms. Their claim: the
learned tensor has low CP rank (:func:`workbench.grokking.cp_rank.cp_rank`), built from the irreps
the task needs.

References
----------
.. [1] Marchetti et al. (2025). Learning words in groups: fusion algebras, tensor ranks and grokking.
   arXiv:2509.06931.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from torch import nn

from workbench.grokking.groups_measures import all_group_logits
from workbench.tasks.groups import FiniteGroup, evaluate_word, group_from_name

REFERENCE = "Marchetti et al. 2025, arXiv:2509.06931"


def centre_modes(T: np.ndarray) -> np.ndarray:
    """``T ×₁ P ×₂ P ×₃ P``, ``P = I − 11ᵀ/n``: subtract the mean along each mode in turn."""
    for axis in range(T.ndim):
        T = T - T.mean(axis, keepdims=True)
    return T


def _wrap(T: np.ndarray, group: FiniteGroup, name: str, **attrs: str) -> xr.DataArray:
    labels = list(group.elements)
    return xr.DataArray(T, dims=("a", "b", "c"), coords={"a": labels, "b": labels, "c": labels}, name=name,
                        attrs={"group": group.name, "reference": REFERENCE, **attrs})


def bilinear_tensor(model: nn.Module, group: FiniteGroup | str, centred: bool = True) -> xr.DataArray:
    """The learned tensor ``T[a, b, c]`` = output ``c`` of ``model`` on ``(a, b, =)``, modes centred.

    Works for every grokking model on a :class:`~workbench.tasks.groups.GroupTask` (Li², MLP,
    transformer). Returns dims ``(a, b, c)`` labelled by the group's elements, float64.
    """
    g = group_from_name(group) if isinstance(group, str) else group
    T = all_group_logits(model.eval(), g.order).numpy()
    return _wrap(centre_modes(T) if centred else T, g, "learned_tensor", centred=str(centred))


def task_tensor(group: FiniteGroup | str, word: str = "ab", centred: bool = True) -> xr.DataArray:
    """The target tensor ``1[w(a, b) = c]`` of the word task, modes centred (module docstring)."""
    g = group_from_name(group) if isinstance(group, str) else group
    W = evaluate_word(g, word)
    T = (W[:, :, None] == np.arange(g.order)[None, None, :]).astype(np.float64)
    return _wrap(centre_modes(T) if centred else T, g, "task_tensor", word=word, centred=str(centred))
