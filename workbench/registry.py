"""Model registry: the name in a run's ``config["model"]`` → the class that builds it.

Entries are ``"module:Class"`` paths, imported when a model is built (like package entry points),
so the registry depends on no lens and the store can rebuild any run's model through it.
"""
from __future__ import annotations

import importlib
from torch import nn

MODELS: dict[str, str] = {
    "mlp": "workbench.grokking.mlp:MLP",
    "transformer": "workbench.grokking.transformer:Transformer",
    "li2": "workbench.grokking.li2:Li2MLP",
}


def model_class(name: str) -> type[nn.Module]:
    """The class registered under ``name``; clear error for unknown names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    module, _, cls = MODELS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_model(config: dict) -> nn.Module:
    """Instantiate ``MODELS[config["name"]](**rest)``."""
    kwargs = dict(config)
    return model_class(kwargs.pop("name", None))(**kwargs)

