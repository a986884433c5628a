"""Grokking lens: progress measures of modular arithmetic (Nanda et al. 2023).

Models (:class:`Transformer`, the paper's one-layer model; :class:`MLP`), the Fourier measures
(:func:`fourier_basis`, :func:`key_frequencies`, :func:`restricted_loss`, :func:`excluded_loss`,
:func:`gini`, :func:`weight_norm`, ...), the phase detector (:func:`detect_phases`) and the run
entry points (:func:`train_grokking`, :func:`train_modular`).

References
----------
Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability", arXiv:2301.05217.
"""
from workbench.grokking.fourier import (
    embedding_fourier_norms,
    fourier_basis,
    gini,
    key_frequencies,
    logit_fourier_2d,
    neuron_frequency_clusters,
    neuron_logit_fourier_norms,
    weight_norm,
)
from workbench.grokking.losses import excluded_loss, restricted_loss
from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.grokking.phases import PHASES, detect_phases
from workbench.grokking.probe import grokking_probe
from workbench.grokking.run import GrokkingConfig, finalize_run, train_grokking
from workbench.grokking.transformer import Transformer

__all__ = [
    "MLP", "PHASES", "GrokkingConfig", "ModularConfig", "Transformer", "detect_phases",
    "embedding_fourier_norms", "excluded_loss", "finalize_run", "fourier_basis", "gini",
    "grokking_probe", "key_frequencies", "logit_fourier_2d", "neuron_frequency_clusters",
    "neuron_logit_fourier_norms", "restricted_loss", "train_grokking", "train_modular", "weight_norm",
]
