"""Weight-spectrum lens: ESDs, heavy-tail alpha, norms, ranks and conditioning of every layer.

:func:`analyze` (one row per layer), :func:`esd`, :func:`fit_power_law` (Clauset et al. 2009), the
Marchenko-Pastur pieces (:func:`mp_density`, :func:`mp_spikes`), and the over-training measures
(:func:`delta_rank`, :func:`make_spectrum_probe`). Fast paths beside their references: the ctypes
LAPACK eigensolver (:mod:`~workbench.spectrum.lapack`), batched Gram eigenvalues
(:mod:`~workbench.spectrum.gram_eigvalsh`) and the Triton power-law fit
(:mod:`~workbench.spectrum.power_law_kernel`).

References
----------
Martin & Mahoney (2021), JMLR 22; Clauset, Shalizi & Newman (2009), SIAM Review 51.
"""
from workbench.spectrum.analysis import (
    METRICS,
    analyze,
    esd,
    fit_power_law,
    layer_esds,
    layer_matrices,
)
from workbench.spectrum.over_training import delta_rank, make_spectrum_probe, spectrum_probe
from workbench.spectrum.power_law import effective_rank, mp_density, mp_spikes, power_law_batch

__all__ = [
    "METRICS", "analyze", "delta_rank", "effective_rank", "esd", "fit_power_law", "layer_esds",
    "layer_matrices", "make_spectrum_probe", "mp_density", "mp_spikes", "power_law_batch",
    "spectrum_probe",
]
