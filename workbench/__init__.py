"""workbench: analysis primitives for studying how neural networks learn.

One package per lens, each with a façade listing its public API::

    from workbench import grokking, superposition, spectrum, koopman
    from workbench.store import RunStore
    from workbench.record import Recorder
    from workbench.train import fit

Every measurement is an ``xarray.Dataset`` with named dimensions; every training run is a
directory of the :class:`~workbench.store.RunStore`. The short names below are imported lazily so
``import workbench`` stays fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "RunStore": "workbench.store",
    "Run": "workbench.store",
    "fit": "workbench.train",
    "ModularTask": "workbench.tasks.modular",
    "ModularConfig": "workbench.grokking",
    "train_modular": "workbench.grokking",
    "GrokkingConfig": "workbench.grokking",
    "train_grokking": "workbench.grokking",
    "ToyModels": "workbench.superposition",
    "Grokfast": "workbench.optim.grokfast",
    "sweep": "workbench.sweep",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in ("grokking", "superposition", "spectrum", "koopman"):
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
