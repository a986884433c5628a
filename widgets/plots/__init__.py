"""Figure builders: ``xr.Dataset`` → ``plotly.graph_objects.Figure``, one function per view.

Shared by notebooks, ipywidgets explorers and Panel pages. One module per lens keeps files small;
everything is re-exported here so callers write ``from widgets.plots import loss_curves``.
"""
from .dynamics import (  # noqa: F401
    compressibility_curves,
    delta_rank_curves,
    embedded_cmd_curves,
    gradual_rank_figure,
    kappa_bars,
)
from .grokking import (  # noqa: F401
    fourier_spectrum,
    grokfast_comparison,
    grokking_curves,
    irrep_spectrum,
    logit_heatmap,
    neuron_clusters,
    neuron_concentration,
    progress_measures,
)
from .koopman import (  # noqa: F401
    koopman_distance_matrix,
    koopman_eigenvalues,
    koopman_forecast,
    koopman_modes,
    koopman_pseudospectrum,
    koopman_window_spectra,
)
from .overlay import overlay_curves  # noqa: F401
from .spd import spd_columns, spd_importances  # noqa: F401
from .spectrum import alpha_by_layer, esd_plot, metric_table, spectrum_over_training  # noqa: F401
from .superposition import (  # noqa: F401
    PHASE_COLORS,
    dimensionality_scatter,
    feature_directions,
    phase_diagram_plot,
    superposition_grid,
)
from .sweep import sweep_heatmap, sweep_variables  # noqa: F401
from .training import accuracy_curves, curve_variables, loss_curves, metric_curves  # noqa: F401
