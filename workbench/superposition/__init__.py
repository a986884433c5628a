"""Superposition lens: many toy models ReLU(WᵀWx + b) trained at once (Elhage et al. 2022).

:class:`ToyModels` (W shaped (instance, hidden, feature)) with its batched CPU step
(:mod:`~workbench.superposition.cpu_step`, Numba) and Triton step
(:mod:`~workbench.superposition.triton_step`) beside the torch reference; training
(:func:`train_toys`, :func:`train_toy_grid`); pure measures (:func:`feature_dimensionality`,
:func:`interference`, :func:`classify_geometry`, ...); the :func:`phase_diagram`; the run entry
point :func:`train_toy_run`; Stochastic Parameter Decomposition of the toy models (:func:`spd`,
Bushnaq et al. 2025) with its measures (:func:`spd_summary`, :func:`column_match`, ...) and the
end-to-end :func:`decompose_tms`.

References
----------
Elhage et al. (2022), "Toy Models of Superposition", Transformer Circuits Thread.
Bushnaq et al. (2025), "Stochastic Parameter Decomposition", arXiv:2506.20790.
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
from workbench.superposition.spd import SPDConfig, spd, train_targets
from workbench.superposition.spd_measures import (
    alive_components,
    column_match,
    components,
    identity_ci_error,
    onehot_importances,
)
from workbench.superposition.spd_measures import summary as spd_summary
from workbench.superposition.spd_run import decompose_tms
from workbench.superposition.toy import ToyModels, importance_vector
from workbench.superposition.training import evaluate, load, save, train_toy_grid, train_toys

__all__ = [
    "GEOMETRIES", "PHASES", "SPDConfig", "ToyModels", "ToyRunConfig", "alive_components", "analyze",
    "classify_geometry", "classify_phase", "column_match", "components", "decompose_tms",
    "dimensions_per_feature", "evaluate", "feature_dimensionality", "feature_norms", "identity_ci_error",
    "importance_vector", "interference", "load", "onehot_importances", "phase_diagram", "save", "spd",
    "spd_summary", "superposition", "train_targets", "train_toy_grid", "train_toy_run", "train_toys",
]
