"""Superposition lens: many toy models ReLU(WᵀWx + b) trained at once (Elhage et al. 2022).

:class:`ToyModels` (W shaped (instance, hidden, feature)) with its batched CPU step
(:mod:`~workbench.superposition.cpu_step`, Numba) and Triton step
(:mod:`~workbench.superposition.triton_step`) beside the torch reference; training
(:func:`train_toys`, :func:`train_toy_grid`); pure measures (:func:`feature_dimensionality`,
:func:`interference`, :func:`classify_geometry`, ...); the :func:`phase_diagram`; the run entry
point :func:`train_toy_run`.

References
----------
Elhage et al. (2022), "Toy Models of Superposition", Transformer Circuits Thread.
"""
from workbench.superposition.measures import (
    GEOMETRIES,
    PHASES,
    analyze,
    classify_geometry,
    classify_phase,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    interference,
    superposition,
)
from workbench.superposition.phase_diagram import phase_diagram
from workbench.superposition.run import ToyRunConfig, train_toy_run
from workbench.superposition.toy import ToyModels, importance_vector
from workbench.superposition.training import evaluate, load, save, train_toy_grid, train_toys

__all__ = [
    "GEOMETRIES", "PHASES", "ToyModels", "ToyRunConfig", "analyze", "classify_geometry",
    "classify_phase", "dimensions_per_feature", "evaluate", "feature_dimensionality", "feature_norms",
    "importance_vector", "interference", "load", "phase_diagram", "save", "superposition",
    "train_toy_grid", "train_toy_run", "train_toys",
]
