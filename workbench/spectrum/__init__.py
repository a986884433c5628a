"""Weight-spectrum lens: ESDs, heavy-tail alpha, norms, ranks and conditioning of every layer.

:func:`analyze` (one row per layer, of a module, a state dict, a safetensors file, a Hugging Face
model directory or a torch checkpoint; a ``skipped`` report of everything else; bootstrap
intervals of alpha; Dask tasks per layer), :func:`esd`, :func:`fit_power_law` (Clauset et al.
2009), the Marchenko-Pastur pieces (:func:`mp_density`, :func:`mp_spikes`), and the
over-training measures (:func:`delta_rank`, :func:`make_spectrum_probe`), the spectra of
ΔW = W_t − W_0 over a run (:func:`delta_spectrum`, Boix-Adsera et al. 2023) with the gradual-rank
toy (:func:`gradual_rank_toy`), KappaTune's selection by condition number (:func:`kappa_select`)
and the compressibility of the weights (:func:`compressibility`) with MoMos' motif projection
(:func:`motif_project`, :func:`project_model_`). Fast paths beside their
references: the ctypes LAPACK eigensolver (:mod:`~workbench.spectrum.lapack`), batched Gram
eigenvalues (:mod:`~workbench.spectrum.gram_eigvalsh`) and the Triton power-law fit
(:mod:`~workbench.spectrum.power_law_kernel`). The guide: docs/spectrum.md.

References
----------
Martin & Mahoney (2021), JMLR 22; Clauset, Shalizi & Newman (2009), SIAM Review 51.
"""
from workbench.spectrum.analysis import SKIPPED_VARS, analyze, esd, layer_esds
from workbench.spectrum.bootstrap import bootstrap_alpha
from workbench.spectrum.compressibility import (
    compressibility,
    compression_ratio,
    make_compressibility_probe,
)
from workbench.spectrum.delta import delta_spectrum, make_delta_probe
from workbench.spectrum.export import skipped_table, summary_table, write_result
from workbench.spectrum.fit import fit_power_law
from workbench.spectrum.kappa import kappa_select
from workbench.spectrum.marchenko_pastur import mp_density, mp_spikes
from workbench.spectrum.metrics import METRICS, effective_rank
from workbench.spectrum.motifs import motif_k, motif_project, project_model_
from workbench.spectrum.over_training import (
    as_probe_dataset,
    delta_rank,
    make_spectrum_probe,
    spectrum_probe,
)
from workbench.spectrum.power_law import power_law_batch
from workbench.spectrum.rank_toy import gradual_rank_toy
from workbench.spectrum.weights import WeightsError, open_weights

__all__ = [
    "METRICS", "SKIPPED_VARS", "WeightsError", "analyze", "as_probe_dataset", "bootstrap_alpha", "compressibility",
    "compression_ratio", "delta_rank", "delta_spectrum", "effective_rank", "esd", "fit_power_law",
    "gradual_rank_toy", "kappa_select", "layer_esds", "make_compressibility_probe", "make_delta_probe",
    "make_spectrum_probe", "motif_k", "motif_project", "mp_density", "mp_spikes", "open_weights",
    "power_law_batch", "project_model_", "skipped_table", "spectrum_probe", "summary_table", "write_result",
]
