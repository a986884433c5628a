"""Koopman lens: the DMD family with residual certificates, training-trajectory spectra, run comparison.

Estimators (scikit-learn shaped; rows = time, ``X`` is ``(n_time, n_features)``, a ``(step, param)``
DataArray or a Run; torch float64 on ``device``): :class:`DMD`, :class:`HankelDMD`, :class:`EDMD`,
:class:`ResDMD`, with dictionaries in :mod:`workbench.koopman.dictionaries`; all share one exact-DMD
core (:mod:`workbench.koopman.core`). Training dynamics: :func:`trajectory_spectrum`,
:func:`run_distance`, :func:`distance_matrix`, :func:`forecast`, :func:`piecewise_dmd` and the
correlated modes of :func:`cmd` / :class:`CMD`, and training through them
(:func:`embedded_cmd_train`).

References
----------
Schmid (2010) JFM 656; Tu et al. (2014) doi:10.3934/jcd.2014.1.391; Williams, Kevrekidis, Rowley
(2015) doi:10.1007/s00332-015-9258-5; Colbrook & Townsend (2023) doi:10.1002/cpa.22125; Colbrook,
Mezić, Stepanenko (2024) arXiv:2409.05467; Redman et al. (NeurIPS 2024) arXiv:2302.09160; Dogra &
Redman (2020) arXiv:2006.14111; Brokman et al. (ICLR 2024) arXiv:2312.13247; Alla, Monti, Sgura
(2024) doi:10.1016/j.camwa.2024.02.022.
"""
from workbench.koopman.cmd import CMD, cmd
from workbench.koopman.cmd_embed import embedded_cmd_train
from workbench.koopman.dictionaries import (
    RBF,
    Delays,
    Dictionary,
    Identity,
    Monomials,
    RandomFourier,
)
from workbench.koopman.dmd import DMD, HankelDMD, KoopmanEstimator
from workbench.koopman.edmd import EDMD, ResDMD
from workbench.koopman.over_training import (
    distance_matrix,
    forecast,
    run_distance,
    trajectory_gram,
    trajectory_spectrum,
    wasserstein_eigs,
)
from workbench.koopman.piecewise import piecewise_dmd

__all__ = [
    "CMD",
    "DMD",
    "EDMD",
    "RBF",
    "Delays",
    "Dictionary",
    "HankelDMD",
    "Identity",
    "KoopmanEstimator",
    "Monomials",
    "RandomFourier",
    "ResDMD",
    "cmd",
    "distance_matrix",
    "embedded_cmd_train",
    "forecast",
    "piecewise_dmd",
    "run_distance",
    "trajectory_gram",
    "trajectory_spectrum",
    "wasserstein_eigs",
]
