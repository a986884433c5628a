"""Superposition page: sliders → a small batch of toy models trained live; a precomputed phase diagram.

Opening the page computes nothing (a GET never starts work): the **Train models** button, or a
slider released afterwards (n, m, largest sparsity, importance decay, steps), trains toy models at
five sparsities from 0 to S_max with the CLI's settings (its inits per sparsity, keeping the best:
the default's S = 0.99 model is the paper's pentagon) in the background (the figures show a loading
overlay and the status says what the plots still show; the server never blocks) and shows WᵀW and
b, the feature polygon for m = 2, and feature dimensionalities. A stored superposition run
(``workbench train superposition``; ``?run=<id>``) is drawn the same way. Below, the n=2/m=1 phase diagram (Elhage et al. 2022, "Phase Change"), hover
showing each cell's W. It is the store artifact ``phase_diagram/phase_diagram_2_1``, loaded on open;
when absent, the **Compute phase diagram** button computes it once in the background and saves it.

Page logic lives in plain functions (:func:`sparsity_levels`, :func:`train_live`,
:func:`load_toy_run`, :func:`live_figures`, :func:`live_summary`, :func:`load_or_compute_phase_diagram`) that tests call
without a browser; :class:`SuperpositionPage` only binds them to widgets.
"""
from __future__ import annotations

import threading

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr

from widgets.apps import require_store
from widgets.apps.background import Background, JobPool
from widgets.apps.spd_panel import SPDPanel
from widgets.apps.url import sync_url
from widgets.plots.empty import empty_figure
from widgets.plots.superposition import (
    dimensionality_scatter,
    feature_directions,
    phase_diagram_plot,
    superposition_grid,
)
from workbench.store import RunStore
from workbench.superposition import ToyRunConfig, analyze, phase_diagram, train_toy_grid

PHASE_KIND, PHASE_NAME = "phase_diagram", "phase_diagram_2_1"
PHASE_GRID = {"n_features": 2, "n_hidden": 1, "densities": np.geomspace(0.01, 1, 16),
              "importance_ratios": np.geomspace(0.1, 10, 16), "n_inits": 3, "steps": 1000, "seed": 0}
_phase_lock = threading.Lock()  # one phase-diagram computation per server, however many sessions
CONTROLS = ["n_features", "n_hidden", "max_sparsity", "importance_decay", "steps"]
WAITING = {"phase": "no phase diagram in this data root yet: press Compute phase diagram",
           **dict.fromkeys(("grid", "polygon", "dims"), "press Train models (or pick a stored run) to train toy models")}
CLI = ToyRunConfig()  # `workbench train superposition`'s defaults: inits per sparsity, steps, batch, lr


# -- page logic: plain functions -----------------------------------------------------------------
def sparsity_levels(max_sparsity: float, n_levels: int = 5) -> np.ndarray:
    """``n_levels`` sparsities from 0 to ``max_sparsity``, evenly spaced in log feature density."""
    if not 0 <= max_sparsity < 1:
        raise ValueError(f"max_sparsity must lie in [0, 1), got {max_sparsity}")
    return 1 - np.geomspace(1.0, 1 - max_sparsity, n_levels)


def best_inits(ds: xr.Dataset) -> xr.Dataset:
    """The lowest-``loss`` instance of each sparsity (in order of first appearance)."""
    sparsity, loss = ds["sparsity"].values, ds["loss"].values
    keep = [int(np.flatnonzero(sparsity == s)[np.argmin(loss[sparsity == s])]) for s in dict.fromkeys(sparsity)]
    return ds.isel(instance=keep)


@pn.cache(max_items=32)
def train_live(n_features: int, n_hidden: int, max_sparsity: float, importance_decay: float, *,
               steps: int = CLI.steps, seed: int = CLI.seed) -> xr.Dataset:
    """Train toy models at each sparsity level as ``workbench train superposition`` does (its
    inits per sparsity, batch size and learning rate: :data:`CLI`), keep each level's best init
    and merge in the superposition measures. At the defaults (n=5, m=2, decay 0.9) the S = 0.99
    model is the paper's pentagon.

    Deterministic for given arguments (seeded), so results are cached across sessions.
    """
    ds = train_toy_grid(n_features, n_hidden, sparsity_levels(max_sparsity), importance_decay,
                        n_instances_per_cell=CLI.n_inits, steps=steps, batch_size=CLI.batch_size, lr=CLI.lr,
                        seed=seed, progress=False)
    ds = best_inits(ds)
    return xr.merge([ds, analyze(ds)])


def superposition_runs(store: RunStore) -> list[str]:
    """Ids of stored superposition runs (``workbench train superposition``), newest first."""
    runs = [r for r in store if r.config.get("kind") == "superposition" and "toy" in r.groups()]
    runs.sort(key=lambda r: r.state.get("created", ""), reverse=True)
    return [r.id for r in runs]


def load_toy_run(store: RunStore, run_id: str) -> xr.Dataset:
    """A stored superposition run's trained models (best init per sparsity) with the measures."""
    run = store.open(run_id)
    config = ToyRunConfig(**run.config["toy"])
    ds = run.metrics("toy").isel(step=-1, drop=True)
    ds = ds.assign_coords(sparsity=("instance", np.repeat(config.sparsities, config.n_inits)))
    ds = best_inits(ds)
    return xr.merge([ds, analyze(ds)])


def live_figures(ds: xr.Dataset) -> dict[str, go.Figure]:
    """``grid`` (WᵀW and b), ``dims`` (dimensionality scatter), and ``polygon`` when m = 2."""
    figs = {"grid": superposition_grid(ds), "dims": dimensionality_scatter(ds)}
    if int(ds.sizes["hidden"]) == 2:
        figs["polygon"] = feature_directions(ds)
    return figs


def live_summary(ds: xr.Dataset) -> str:
    """One markdown line: sizes and the features represented at each sparsity."""
    return (f"n={ds.sizes['feature']}, m={ds.sizes['hidden']}: features represented per sparsity "
            f"{ds['n_represented'].values.tolist()}")


def load_or_compute_phase_diagram(store: RunStore) -> xr.Dataset:
    """The stored n=2/m=1 phase diagram, or compute (:data:`PHASE_GRID`), store and return it."""
    with _phase_lock:
        if PHASE_NAME in store.artifacts(PHASE_KIND):
            return store.load_artifact(PHASE_KIND, PHASE_NAME)
        ds = phase_diagram(**PHASE_GRID)
        store.save_artifact(PHASE_KIND, PHASE_NAME, ds)
        return ds


def error_line(*errors: str) -> str:
    """Markdown warning for the failed background jobs ('' when none failed)."""
    return "\n\n".join(f"⚠️ {e}" for e in errors if e)


# -- the page --------------------------------------------------------------------------------------
class SuperpositionPage(pn.viewable.Viewer):
    """Sliders → live toy-model training (in the background) and the phase diagram."""

    n_features = param.Integer(default=5, bounds=(2, 20), doc="Features n")
    n_hidden = param.Integer(default=2, bounds=(1, 10), doc="Hidden dimensions m")
    max_sparsity = param.Number(default=0.99, bounds=(0.0, 0.999), step=0.001, doc="Largest sparsity S")
    importance_decay = param.Number(default=0.9, bounds=(0.5, 1.0), step=0.01, doc="Importance I_i = decay^i")
    steps = param.Integer(default=CLI.steps, bounds=(100, 10000), step=100, doc="Training steps")
    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="A stored superposition run to show")
    train = param.Event(label="Train models", doc="Train with the current sliders")
    compute_phase = param.Event(label="Compute phase diagram", doc="Compute and store the phase diagram")

    def __init__(self, store: RunStore, *, jobs: JobPool | None = None, threaded: bool = True, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._training = Background(pool=jobs, threaded=threaded)
        self._phase = Background(pool=jobs, threaded=threaded)
        self._panes = {k: pn.pane.Plotly(empty_figure(WAITING[k]), height=h, sizing_mode="stretch_width", name=k,
                                         loading=(self._phase if k == "phase" else self._training).param.busy)
                       for k, h in (("grid", 440), ("polygon", 320), ("dims", 420), ("phase", 460))}
        self._status = pn.pane.Markdown("Press **Train models** to train toy models with these settings.",
                                        sizing_mode="stretch_width")
        self._errors = pn.pane.Markdown(pn.bind(error_line, self._training.param.error, self._phase.param.error),
                                        sizing_mode="stretch_width")
        self._shown = ""  # what the drawn plots are of (for the hint while new ones are computed)
        self._models: xr.Dataset | None = None  # the models drawn, for the SPD panel
        self.spd = SPDPanel(lambda: self._models, jobs=jobs, threaded=threaded)
        self.param.run_id.objects = [None, *superposition_runs(store)]

    @param.depends(*CONTROLS, "train", watch=True)
    def start_training(self) -> None:
        """Train with the current sliders in the background (inline when not ``threaded``)."""
        args = (self.n_features, self.n_hidden, self.max_sparsity, self.importance_decay)
        steps = self.steps
        self._status.object = (f"⏳ Training {len(sparsity_levels(self.max_sparsity))} × {CLI.n_inits} models "
                               f"(n={args[0]}, m={args[1]}, S ≤ {args[2]}, decay {args[3]}, {steps} steps) …"
                               + (f"  \n**The plots below still show {self._shown}.**" if self._shown else ""))
        what = f"n={args[0]}, m={args[1]}, S ≤ {args[2]}, decay {args[3]}, {steps} steps"
        self._training.submit(lambda: train_live(*args, steps=steps), on_done=lambda ds: self._show_live(ds, what))

    @param.depends("run_id", watch=True)
    def show_run(self) -> None:
        """Draw the chosen stored run's models (in the background)."""
        if self.run_id is not None:
            run_id = self.run_id
            self._status.object = f"⏳ Loading run **{run_id}** …" + (
                f"  \n**The plots below still show {self._shown}.**" if self._shown else "")
            self._training.submit(load_toy_run, self.store, run_id,
                                  on_done=lambda ds: self._show_live(ds, f"run {run_id}"))

    @param.depends("compute_phase", watch=True)
    def start_phase_diagram(self) -> None:
        """Load (or compute and store) the phase diagram in the background."""
        self._phase.submit(load_or_compute_phase_diagram, self.store, on_done=self._show_phase)

    def has_phase_diagram(self) -> bool:
        """True when the store holds the phase diagram (opening the page then only reads it)."""
        return PHASE_NAME in self.store.artifacts(PHASE_KIND)

    def wait(self, timeout: float | None = None) -> None:
        """Block until both background jobs are drawn (tests, notebooks)."""
        self._training.wait(timeout)
        self._phase.wait(timeout)

    def _show_live(self, ds: xr.Dataset, what: str) -> None:
        figs = live_figures(ds)
        for name, fig in figs.items():
            self._panes[name].object = fig
        self._panes["polygon"].visible = "polygon" in figs
        self._shown, self._models = what, ds
        self._status.object = f"{what}: {live_summary(ds)}"

    def _show_phase(self, ds: xr.Dataset) -> None:
        self._panes["phase"].object = phase_diagram_plot(ds)

    def __panel__(self):
        sliders = {name: {"type": pn.widgets.IntSlider if isinstance(self.param[name], param.Integer)
                          else pn.widgets.FloatSlider, "throttled": True} for name in CONTROLS}
        sliders["max_sparsity"]["step"] = 0.001
        controls = pn.Param(self.param, parameters=[*CONTROLS, "train", "run_id"], widgets=sliders, show_name=False,
                            width=300)
        phase_button = pn.Param(self.param, parameters=["compute_phase"], show_name=False,
                                visible=not self.has_phase_diagram())
        return pn.Column(
            pn.pane.Markdown("## Superposition\nElhage et al. (2022), *Toy Models of Superposition*. "
                             "Each instance is h = Wx, x' = ReLU(Wᵀh + b); sparsity grows left to right. "
                             "Models retrain when a slider is released."),
            pn.Row(controls, pn.Column(self._status, self._errors, sizing_mode="stretch_width")),
            self._panes["grid"], self._panes["polygon"], self._panes["dims"], self.spd,
            pn.pane.Markdown("### Phase diagram (n = 2, m = 1)\nHover a cell to see its W, b and loss."),
            phase_button, self._panes["phase"], sizing_mode="stretch_width")


def page(store: RunStore, jobs: JobPool | None = None) -> pn.viewable.Viewable:
    """The superposition page for ``workbench serve``: loads a stored phase diagram; training and
    computing start only from the page's buttons and sliders (opening it computes nothing)."""
    view = SuperpositionPage(store, jobs=jobs)
    if view.has_phase_diagram():
        view.start_phase_diagram()
    return pn.Column(sync_url(view, "run_id"), view, sizing_mode="stretch_width")
