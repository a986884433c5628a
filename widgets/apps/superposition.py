"""Superposition page: sliders → a small batch of toy models trained live; a precomputed phase diagram.

Sliders (n, m, largest sparsity, importance decay, steps) train a handful of instances spanning
sparsity 0 … S_max in a background thread (progress bar, the server never blocks) and show WᵀW and
b, the feature polygon for m = 2, and feature dimensionalities. Below, the n=2/m=1 phase diagram
(Elhage et al. 2022, "Phase Change"), hover showing each cell's W. It is read from
``<data root>/superposition/phase_diagram_2_1.zarr``; when absent it is computed once in the
background and saved there.

Page logic lives in plain functions (:func:`sparsity_levels`, :func:`train_live`,
:func:`live_figures`, :func:`load_or_compute_phase_diagram`) that tests call without a browser.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr

from widgets.apps import require_store
from widgets.plots.superposition import (
    dimensionality_scatter,
    feature_directions,
    phase_diagram_plot,
    superposition_grid,
)
from workbench.store import RunStore
from workbench.superposition import analyze, load, phase_diagram, save, train_toy_grid

POLL_MS = 300
PHASE_GRID = {"n_features": 2, "n_hidden": 1, "densities": np.geomspace(0.01, 1, 16),
                  "importance_ratios": np.geomspace(0.1, 10, 16), "n_inits": 3, "steps": 1000, "seed": 0}
_phase_lock = threading.Lock()


# -- page logic: plain functions -----------------------------------------------------------------
def sparsity_levels(max_sparsity: float, n_levels: int = 5) -> np.ndarray:
    """``n_levels`` sparsities from 0 to ``max_sparsity``, evenly spaced in log feature density."""
    if not 0 <= max_sparsity < 1:
        raise ValueError(f"max_sparsity must lie in [0, 1), got {max_sparsity}")
    return 1 - np.geomspace(1.0, 1 - max_sparsity, n_levels)


def train_live(n_features: int, n_hidden: int, max_sparsity: float, importance_decay: float, *,
               steps: int = 2000, batch_size: int = 256, seed: int = 0, progress=None) -> xr.Dataset:
    """Train one toy model per sparsity level (one batch) and merge in the superposition measures."""
    ds = train_toy_grid(n_features, n_hidden, sparsity_levels(max_sparsity), importance_decay, steps=steps,
                        batch_size=batch_size, lr=1e-2, seed=seed, progress=progress or False)
    return xr.merge([ds, analyze(ds)])


def live_figures(ds: xr.Dataset) -> dict[str, go.Figure]:
    """``grid`` (WᵀW and b), ``dims`` (dimensionality scatter), and ``polygon`` when m = 2."""
    figs = {"grid": superposition_grid(ds), "dims": dimensionality_scatter(ds)}
    if int(ds.sizes["hidden"]) == 2:
        figs["polygon"] = feature_directions(ds)
    return figs


def phase_diagram_path(store: RunStore) -> Path:
    return Path(store.root) / "superposition" / "phase_diagram_2_1.zarr"


def load_or_compute_phase_diagram(store: RunStore, progress=None) -> xr.Dataset:
    """The saved n=2/m=1 phase diagram, or compute (:data:`PHASE_GRID`), save and return it."""
    path = phase_diagram_path(store)
    with _phase_lock:                       # one computation per server, however many sessions
        if path.exists():
            return load(path)
        pd = phase_diagram(**PHASE_GRID, progress=progress or False)
        save(pd, path)
        return pd


# -- the page --------------------------------------------------------------------------------------
class SuperpositionPage(pn.viewable.Viewer):
    """Sliders → live toy-model training (background thread) and the phase diagram."""

    n_features = param.Integer(default=5, bounds=(2, 20), doc="Features n")
    n_hidden = param.Integer(default=2, bounds=(1, 10), doc="Hidden dimensions m")
    max_sparsity = param.Number(default=0.99, bounds=(0.0, 0.999), step=0.001, doc="Largest sparsity S")
    importance_decay = param.Number(default=0.9, bounds=(0.5, 1.0), step=0.01, doc="Importance I_i = decay^i")
    steps = param.Integer(default=2000, bounds=(100, 10000), step=100, doc="Training steps")

    def __init__(self, store: RunStore, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._progress = pn.indicators.Progress(value=0, max=100, width=300)
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._panes = {k: pn.pane.Plotly(None, height=h, sizing_mode="stretch_width", name=k)
                       for k, h in (("grid", 440), ("polygon", 320), ("dims", 420), ("phase", 460))}
        self._train_button = pn.widgets.Button(label="Train", color="primary", width=120)
        self._train_button.on_click(lambda e: self.start_training())
        self._result: xr.Dataset | None = None
        self._phase: xr.Dataset | None = None
        self._shown: tuple[int, int] = (0, 0)     # versions drawn (live, phase)
        self._version = [0, 0]
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._phase_thread: threading.Thread | None = None

    # background work ------------------------------------------------------------------------------
    def _on_progress(self, step: int, total: int, loss: float) -> None:
        self._progress.value = int(100 * step / max(total, 1))

    def _train(self, args: tuple) -> None:
        try:
            self._result = train_live(*args, steps=self.steps, progress=self._on_progress)
            self._version[0] += 1
        except Exception as exc:  # noqa: BLE001 - shown in the status line; a page thread must not die silently
            self._error = f"training failed: {exc}"

    def _compute_phase(self) -> None:
        try:
            self._phase = load_or_compute_phase_diagram(self.store)
            self._version[1] += 1
        except Exception as exc:  # noqa: BLE001 - same: report on the page
            self._error = f"phase diagram failed: {exc}"

    def start_training(self, *, background: bool = True) -> None:
        """Train with the current sliders, in a thread (or inline when ``background`` is False)."""
        if self._thread is not None and self._thread.is_alive():
            return
        args = (self.n_features, self.n_hidden, self.max_sparsity, self.importance_decay)
        self._progress.value, self._error = 0, None
        self._status.object = (f"Training {len(sparsity_levels(self.max_sparsity))} models "
                               f"(n={args[0]}, m={args[1]}, S ≤ {args[2]}, decay {args[3]}) …")
        if background:
            self._thread = threading.Thread(target=self._train, args=(args,), daemon=True)
            self._thread.start()
        else:
            self._train(args)
            self.poll()

    def start_phase_diagram(self, *, background: bool = True) -> None:
        if background:
            self._phase_thread = threading.Thread(target=self._compute_phase, daemon=True)
            self._phase_thread.start()
        else:
            self._compute_phase()
            self.poll()

    def poll(self) -> None:
        """Periodic callback (server loop): draw results the threads have finished."""
        if self._error:
            self._status.object = f"⚠️ {self._error}"
        if self._version[0] != self._shown[0] and self._result is not None:
            ds = self._result
            for name, fig in live_figures(ds).items():
                self._panes[name].object = fig
            self._panes["polygon"].visible = "polygon" in live_figures(ds)
            self._status.object = (f"n={ds.sizes['feature']}, m={ds.sizes['hidden']}: features represented "
                                   f"per sparsity {ds['n_represented'].values.tolist()}")
            self._progress.value = 100
        if self._version[1] != self._shown[1] and self._phase is not None:
            self._panes["phase"].object = phase_diagram_plot(self._phase)
        self._shown = (self._version[0], self._version[1])

    def __panel__(self):
        controls = pn.Param(self.param, parameters=["n_features", "n_hidden", "max_sparsity",
                                                    "importance_decay", "steps"],
                            widgets={"max_sparsity": {"type": pn.widgets.FloatSlider, "step": 0.001}},
                            show_name=False, width=300)
        return pn.Column(
            pn.pane.Markdown("## Superposition\nElhage et al. (2022), *Toy Models of Superposition*. "
                             "Each instance is h = Wx, x' = ReLU(Wᵀh + b); sparsity grows left to right."),
            pn.Row(controls, pn.Column(self._train_button, self._progress, self._status)),
            self._panes["grid"], self._panes["polygon"], self._panes["dims"],
            pn.pane.Markdown("### Phase diagram (n = 2, m = 1)\nHover a cell to see its W, b and loss."),
            self._panes["phase"], sizing_mode="stretch_width")


def page(store: RunStore) -> pn.viewable.Viewable:
    """The superposition page for ``workbench serve``: trains once on open, polls its threads."""
    view = SuperpositionPage(store)
    view.start_training()
    view.start_phase_diagram()
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.add_periodic_callback(view.poll, period=POLL_MS)
    return view
