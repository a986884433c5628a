"""Grokking lens: progress measures of modular arithmetic (Nanda et al. 2023) and of finite groups.

Models (:class:`Transformer`, the paper's one-layer model; :class:`MLP`; :class:`Li2MLP`), the Fourier
measures (:func:`fourier_basis`, :func:`key_frequencies`, :func:`restricted_loss`, :func:`excluded_loss`,
:func:`gini`, :func:`weight_norm`, ...), the phase detector (:func:`detect_phases`) and the run
entry points (:func:`train_grokking`, :func:`train_modular`, :func:`train_groups`). Finite groups:
irreps and the group Fourier transform (:func:`irreps`, :func:`group_fourier`, :func:`irrep_basis`),
the irrep measures (:func:`irrep_energy`, :func:`key_irreps`, :func:`irrep_concentration`,
:func:`irrep_restricted_loss`, :func:`irrep_excluded_loss`, :func:`group_probe`), Li² (:func:`li2_energy`,
:func:`li2_ascent`, :func:`train_li2`, :func:`gradient_structure`, :func:`detect_li2_stages`), margins
(:func:`normalized_margin`) and the learned 3-tensor of word tasks (:func:`bilinear_tensor`,
:func:`task_tensor`, :func:`cp_als`, :func:`cp_rank`).

References
----------
Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability", arXiv:2301.05217.
"""
from workbench.grokking.cp_rank import cp_als, cp_rank, matrix_multiplication_tensor
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
from workbench.grokking.groups_measures import (
    group_probe,
    irrep_concentration,
    irrep_energy,
    irrep_excluded_loss,
    irrep_restricted_loss,
    key_irreps,
    neuron_key_irreps,
)
from workbench.grokking.groups_run import GroupsConfig, train_groups
from workbench.grokking.irreps import group_fourier, irrep_basis, irreps
from workbench.grokking.li2 import Li2MLP, li2_ascent, li2_energy
from workbench.grokking.li2_stages import detect_li2_stages, gradient_structure
from workbench.grokking.li2_train import Li2Config, train_li2
from workbench.grokking.losses import excluded_loss, restricted_loss
from workbench.grokking.margin import irrep_usage, normalized_margin
from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.grokking.phases import PHASES, current_phases, detect_phases
from workbench.grokking.probe import grokking_probe
from workbench.grokking.run import GrokkingConfig, finalize_run, train_grokking
from workbench.grokking.transformer import Transformer
from workbench.grokking.words import bilinear_tensor, task_tensor

__all__ = [
    "MLP", "PHASES", "GrokkingConfig", "GroupsConfig", "Li2Config", "Li2MLP", "ModularConfig", "Transformer",
    "bilinear_tensor", "cp_als", "cp_rank", "current_phases", "detect_li2_stages", "detect_phases",
    "embedding_fourier_norms", "excluded_loss", "finalize_run", "fourier_basis", "gini", "gradient_structure", "grokking_probe",
    "group_fourier", "group_probe", "irrep_basis", "irrep_concentration", "irrep_energy", "irrep_excluded_loss",
    "irrep_restricted_loss", "irrep_usage", "irreps", "key_frequencies", "key_irreps", "li2_ascent", "li2_energy",
    "logit_fourier_2d", "matrix_multiplication_tensor", "neuron_frequency_clusters", "neuron_key_irreps",
    "neuron_logit_fourier_norms", "normalized_margin", "restricted_loss", "task_tensor", "train_grokking",
    "train_groups", "train_li2", "train_modular", "weight_norm",
]
