"""Model registry: ``config["model"] = {"name": ..., **kwargs}`` → ``build_model(config)``."""
from __future__ import annotations

from torch import nn

from workbench.grokking.mlp import MLP
from workbench.grokking.transformer import Transformer

MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "transformer": Transformer,
}


def build_model(config: dict) -> nn.Module:
    """Instantiate ``MODELS[config["name"]](**rest)``; clear error for unknown names."""
    kwargs = dict(config)
    name = kwargs.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**kwargs)
