"""workbench: analysis primitives for studying how neural networks learn.

Short public API (imported lazily, so ``import workbench`` stays fast)::

    from workbench import RunStore, fit, train_grokking, train_modular, sweep
    from workbench.probes import fourier, spectrum, superposition, koopman

Four lenses live in :mod:`workbench.probes`: grokking progress measures (``fourier``, ``phases``),
superposition toy models (``superposition``, with :mod:`workbench.models.toy`), weight spectra
(``spectrum``) and Koopman spectra (``koopman``). Every measurement is an ``xarray.Dataset``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "RunStore": "workbench.store",
    "Run": "workbench.store",
    "fit": "workbench.train",
    "ModularTask": "workbench.tasks.modular",
    "ModularConfig": "workbench.modular_run",
    "train_modular": "workbench.modular_run",
    "GrokkingConfig": "workbench.grokking",
    "train_grokking": "workbench.grokking",
    "ToyModels": "workbench.models.toy",
    "Grokfast": "workbench.optim.grokfast",
    "sweep": "workbench.sweep",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
