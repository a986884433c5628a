"""SPD panel of the Superposition page: decompose the model being shown, in the background.

**Decompose (SPD)** runs Stochastic Parameter Decomposition (Bushnaq et al. 2025,
:func:`workbench.superposition.spd`) on the sparsest toy model the page shows, at that model's own
feature probability 1 − S, with CI-time settings (:data:`SPD_SETTINGS`; the paper's take minutes:
``workbench spd``). A progress bar follows the steps; then the target columns beside the recovered
subcomponents, the one-hot causal importances, and MMCS / ML2R / alive subcomponents.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import panel as pn
import param
import xarray as xr

from widgets.apps.background import Background, JobPool
from widgets.plots.empty import empty_figure
from widgets.plots.spd import spd_columns, spd_importances
from workbench.superposition import column_match, onehot_importances, spd, spd_summary

SPD_SETTINGS = {"steps": 5000, "batch_size": 256, "lr": 1e-2, "importance_coeff": 1e-2}


def decompose_shown(models: xr.Dataset, *, progress: Callable[[int, int, float], None] | None = None,
                    **settings: object) -> xr.Dataset:
    """SPD of the sparsest instance of ``models`` (``W`` (instance, hidden, feature), ``b``, coord
    ``sparsity``) at feature probability 1 − S, merged with its :func:`spd_summary`."""
    i = int(np.argmax(models["sparsity"].values))
    sparsity = float(models["sparsity"].values[i])
    W = models["W"].isel(instance=[i]).transpose("instance", "hidden", "feature").values
    b = models["b"].isel(instance=[i]).values
    ds = spd((W, b), feature_probability=max(1.0 - sparsity, 1e-3), progress=progress or False,
             **{**SPD_SETTINGS, **settings})
    return ds.merge(spd_summary(ds)).assign_attrs(sparsity=sparsity)


def spd_line(ds: xr.Dataset) -> str:
    """One markdown line with the decomposition's numbers."""
    return (f"SPD of the S = {ds.attrs['sparsity']:.3g} model: MMCS {float(ds['mmcs'][0]):.3f}, "
            f"ML2R {float(ds['ml2r'][0]):.3f}, {int(ds['alive'][0])} of {ds.sizes['component']} "
            f"subcomponents alive for {ds.sizes['feature']} features (paper on TMS 5-2: 1.000, 0.993, 5 of 20)")


class SPDPanel(pn.viewable.Viewer):
    """A button, a progress bar and the SPD figures of the model that ``models()`` returns."""

    decompose = param.Event(label="Decompose (SPD)", doc="Decompose the sparsest model shown")

    def __init__(self, models: Callable[[], xr.Dataset | None], *, jobs: JobPool | None = None, threaded: bool = True,
                 **params):
        super().__init__(**params)
        self._models, self._job = models, Background(pool=jobs, threaded=threaded)
        self._progress = pn.indicators.Progress(value=0, max=SPD_SETTINGS["steps"], visible=False, width=300)
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._panes = {k: pn.pane.Plotly(empty_figure("press Decompose (SPD) to decompose the sparsest model shown"),
                                         height=330, sizing_mode="stretch_width", loading=self._job.param.busy)
                       for k in ("columns", "importances")}

    @param.depends("decompose", watch=True)
    def start(self) -> None:
        """Decompose the sparsest model now shown, in the background."""
        models = self._models()
        if models is None:
            self._status.object = "Train or open toy models first: SPD decomposes the sparsest one shown."
            return
        steps = int(SPD_SETTINGS["steps"])
        self._progress.param.update(value=0, max=steps, visible=True)
        self._status.object = f"⏳ Decomposing ({steps} steps) …"
        def advance(step: int, total: int, loss: float) -> None:
            self._job.check()  # a closed page or a newer request stops the decomposition here
            self._progress.value = step

        self._job.submit(lambda: decompose_shown(models, progress=advance), on_done=self._show)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the decomposition is drawn (tests)."""
        self._job.wait(timeout)

    def _show(self, ds: xr.Dataset) -> None:
        self._panes["columns"].object = spd_columns(ds, column_match(ds))
        self._panes["importances"].object = spd_importances(onehot_importances(ds))
        self._progress.visible = False
        self._status.object = spd_line(ds)

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown("### Stochastic Parameter Decomposition\nBushnaq et al. (2025): W as a sum of rank-one "
                             "subcomponents, each with a causal importance; one alive subcomponent per feature is a "
                             "perfect decomposition."),
            pn.Row(pn.Param(self.param, parameters=["decompose"], show_name=False, width=200), self._progress),
            self._status, pn.pane.Markdown(pn.bind(lambda e: f"⚠️ {e}" if e else "", self._job.param.error)),
            self._panes["columns"], self._panes["importances"],
            sizing_mode="stretch_width")
