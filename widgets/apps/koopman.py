"""Koopman page: pick a run, window, rank, delays → Koopman eigenvalues of its weight trajectory.

Views: eigenvalues of the chosen window on the complex plane with the unit circle, coloured by ResDMD
residual; the spectra of all windows over training; the window's DMD modes; the reconstruction error;
the whole trajectory's correlated modes (CMD, Brokman et al. 2024) and piecewise-DMD errors as the
number of windows grows (pDMD, Alla et al. 2024).
Page logic lives in plain functions (:func:`koopman_runs`, :func:`clip_settings`, :func:`compute_view`)
that tests call without a browser. The computation runs in the background behind a loading overlay,
so the server never blocks, and is cached per run, settings and recorded length (a live run's new
steps make a new view).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr

from widgets.apps import require_store
from widgets.apps.background import Background, JobPool
from widgets.apps.url import sync_url
from widgets.plots.empty import empty_figure
from widgets.plots.koopman import (
    koopman_cmd,
    koopman_eigenvalues,
    koopman_modes,
    koopman_piecewise,
    koopman_window_spectra,
)
from workbench.koopman import DMD, HankelDMD, cmd, piecewise_dmd, trajectory_spectrum

CMD_MODES = 4  # correlated modes of the whole trajectory shown on the page
MIN_STEPS_PER_WINDOW = 3  # pDMD window counts N keep at least this many recorded steps per window
from workbench.store import RunStore


# -- page logic: plain functions -----------------------------------------------------------------
def koopman_runs(store: RunStore) -> list[str]:
    """Ids of runs that recorded a parameter trajectory, newest first."""
    runs = [r for r in store if r.has_trajectory()]
    runs.sort(key=lambda r: r.state.get("created", ""), reverse=True)
    return [r.id for r in runs]


@dataclass(frozen=True)
class Settings:
    window: int
    stride: int
    rank: int
    delays: int


def clip_settings(n_steps: int, window: int, rank: int, delays: int) -> Settings:
    """Fit requested settings to a trajectory of ``n_steps`` recorded steps (≥ 3 needed)."""
    if n_steps < 3:
        raise ValueError(f"the run has only {n_steps} recorded trajectory steps; need at least 3")
    delays = max(1, min(delays, n_steps - 2))
    window = max(delays + 2, min(window, n_steps))
    rank = max(1, min(rank, window - delays - 1))  # rank < pairs keeps residuals informative
    return Settings(window, max(1, window // 2), rank, delays)


def adaptations(n_steps: int, window: int, rank: int, delays: int, settings: Settings) -> list[str]:
    """What :func:`clip_settings` changed, as ``"rank 8→3"`` phrases (empty when nothing)."""
    asked = {"window": window, "rank": rank, "delays": delays}
    return [f"{name} {asked[name]}→{getattr(settings, name)}" for name in asked
            if asked[name] != getattr(settings, name)]


def param_axis_title(traj: xr.DataArray) -> str:
    """What the trajectory's ``param`` axis is: parameters, or coordinates of a random sketch."""
    if traj.attrs.get("mode") == "projection":
        n = sum(traj.attrs.get("sizes", [])) or "all"
        return f"sketch coordinate (random projection of {n} parameters to {traj.sizes['param']})"
    return "parameter index"


def compute_view(traj: xr.DataArray, settings: Settings, window_index: int = -1) -> dict:
    """Spectra of all windows, plus the DMD of one window (``window_index``, −1 = last, clipped).

    The reconstruction error is ‖X̂ − X‖ / ‖X − mean(X)‖ over the window (relative to its variation).
    """
    spec = trajectory_spectrum(traj, window=settings.window, stride=settings.stride, rank=settings.rank,
                               delays=settings.delays)
    n = spec.sizes["window"]
    w = n - 1 if window_index < 0 else min(window_index, n - 1)
    s0 = int(np.nonzero(traj["step"].values == int(spec.step_start[w]))[0][0])
    X = np.asarray(traj.isel(step=slice(s0, s0 + settings.window)).values, dtype=np.float64)
    est = (HankelDMD(settings.delays, settings.rank) if settings.delays > 1 else DMD(settings.rank)).fit(X)
    recon = est.reconstruct()
    err = float(np.linalg.norm(recon - X) / max(np.linalg.norm(X - X.mean(0)), 1e-300))
    return {"spectrum": spec, "window": w, "dmd": est.to_dataset(), "reconstruction_error": err,
            "steps": (int(spec.step_start[w]), int(spec.step_end[w])), "param_axis": param_axis_title(traj)}


def view_figures(view: dict) -> dict[str, go.Figure]:
    s0, s1 = view["steps"]
    win = view["spectrum"].isel(window=view["window"])
    return {"eigs": koopman_eigenvalues(win, title=f"Koopman eigenvalues, steps {s0}–{s1}"),
            "windows": koopman_window_spectra(view["spectrum"]),
            "modes": koopman_modes(view["dmd"], title="DMD modes of the window (|φ|)", x_title=view["param_axis"])}


def summary_line(run_id: str, view: dict, settings: Settings, n_steps: int | None = None,
                 changed: list[str] | None = None) -> str:
    """Markdown: the window, settings and errors; what was adapted to a short run; a warning when
    the reconstruction is worse than predicting the window's mean (relative error > 1)."""
    s0, s1 = view["steps"]
    res = view["spectrum"]["residual"].isel(window=view["window"]).values
    err = view["reconstruction_error"]
    text = (f"**{run_id}** · window {view['window']} (steps {s0}–{s1}) · window length {settings.window} · "
            f"rank {settings.rank} · delays {settings.delays} · median residual {np.nanmedian(res):.2e} · "
            f"relative reconstruction error {err:.2e}")
    if changed:
        text += (f"  \nℹ️ adapted to the run's {n_steps} recorded trajectory steps: {', '.join(changed)} "
                 "(a window holds at most the recorded steps; rank < window − delays).")
    if err > 1:
        text += (f"  \n⚠️ relative reconstruction error {err:.2f} > 1: the DMD reconstruction is further from "
                 "the trajectory than its mean is — these eigenvalues do not describe the window; try another "
                 "rank, more delays or a longer window.")
    return text


def trajectory_figures(traj: xr.DataArray, rank: int) -> dict[str, go.Figure]:
    """``cmd`` (CMD modes of the whole trajectory) and ``piecewise`` (pDMD errors for N = 1, 2, 4, 8
    windows, as many as the run's length allows); an explanatory empty figure where one cannot be made."""
    n = traj.sizes["step"]
    counts = [N for N in (1, 2, 4, 8) if n // N >= MIN_STEPS_PER_WINDOW]
    figs = {}
    for name, make, title in (
            ("cmd", lambda: koopman_cmd(cmd(traj, n_modes=min(CMD_MODES, traj.sizes["param"]))), "CMD"),
            ("piecewise", lambda: koopman_piecewise(piecewise_dmd(traj, counts, rank=rank, device="cpu")), "pDMD")):
        try:
            figs[name] = make() if counts else empty_figure(f"{n} recorded steps are too few", title=title)
        except ValueError as exc:
            figs[name] = empty_figure(str(exc), title=title)
    return figs


@pn.cache(max_items=32)
def _cached_view(root: str, run_id: str, n_steps: int, window: int, rank: int, delays: int,
                 window_index: int) -> tuple[dict[str, go.Figure], str]:
    traj = RunStore(root).open(run_id).trajectory().isel(step=slice(0, n_steps))
    settings = clip_settings(n_steps, window, rank, delays)
    view = compute_view(traj, settings, window_index)
    changed = adaptations(n_steps, window, rank, delays, settings)
    figs = {**view_figures(view), **_cached_trajectory_figures(root, run_id, n_steps, settings.rank)}
    return figs, summary_line(run_id, view, settings, n_steps, changed)


@pn.cache(max_items=32)
def _cached_trajectory_figures(root: str, run_id: str, n_steps: int, rank: int) -> dict[str, go.Figure]:
    """:func:`trajectory_figures` of the recorded trajectory, computed once per run length and rank
    (not again when only the window, delays or shown window change)."""
    return trajectory_figures(RunStore(root).open(run_id).trajectory().isel(step=slice(0, n_steps)), rank)


def run_view(store: RunStore, run_id: str, window: int, rank: int, delays: int,
             window_index: int = -1) -> tuple[dict[str, go.Figure], str]:
    """Figures and summary line of a run's trajectory as recorded now (cached per recorded length)."""
    n_steps = store.open(run_id).trajectory().sizes["step"]
    return _cached_view(str(store.root), run_id, n_steps, window, rank, delays, window_index)


def status_line(run_id: str | None, summary: str, busy: bool, error: str) -> str:
    """Markdown: no run yet, computing…, the failure, or the view's summary."""
    if run_id is None:
        return "No run with a parameter trajectory yet: train with `trajectory_every > 0`."
    if error:
        return f"**{run_id}**: {error}"
    return f"Computing Koopman spectra of **{run_id}** …" if busy else summary


# -- the page --------------------------------------------------------------------------------------
class KoopmanPage(pn.viewable.Viewer):
    """Run / window / rank / delays → eigenvalue, window-spectra and mode figures (in the background)."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="Run with a parameter trajectory")
    window = param.Integer(default=20, bounds=(3, 400), doc="Recorded steps per window")
    rank = param.Integer(default=8, bounds=(1, 50), doc="DMD rank")
    delays = param.Integer(default=1, bounds=(1, 20), doc="Time delays (Hankel DMD)")
    window_index = param.Integer(default=-1, bounds=(-1, 1000), doc="Which window to show (-1 = last)")
    summary = param.String(default="", precedence=-1, doc="Summary line of the drawn view")

    def __init__(self, store: RunStore, *, jobs: JobPool | None = None, threaded: bool = True, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._job = Background(pool=jobs, threaded=threaded)
        busy = self._job.param.busy
        self._status = pn.pane.Markdown(pn.bind(status_line, self.param.run_id, self.param.summary, busy,
                                                self._job.param.error), sizing_mode="stretch_width")
        self._panes = {k: pn.pane.Plotly(empty_figure("computing …"), height=h, sizing_mode="stretch_width", name=k,
                                         loading=busy)
                       for k, h in (("eigs", 480), ("windows", 520), ("modes", 320), ("cmd", 420),
                                    ("piecewise", 380))}
        self.param.run_id.objects = koopman_runs(store)
        if not self.param.run_id.objects:
            for pane in self._panes.values():
                pane.object = empty_figure("no run with a parameter trajectory in this data root yet")
        if self.run_id is None and self.param.run_id.objects:
            self.run_id = self.param.run_id.objects[0]
        else:
            self.update()

    @param.depends("run_id", "window", "rank", "delays", "window_index", watch=True)
    def update(self) -> None:
        """Recompute for the current settings in the background."""
        if self.run_id is not None:
            self._job.submit(run_view, self.store, self.run_id, self.window, self.rank, self.delays,
                             self.window_index, on_done=self._show)

    def _show(self, view: tuple[dict[str, go.Figure], str]) -> None:
        figs, self.summary = view
        for name, fig in figs.items():
            self._panes[name].object = fig

    def wait(self, timeout: float | None = None) -> None:
        """Block until the computation (and any waiting one) is drawn (tests, notebooks)."""
        self._job.wait(timeout)

    def __panel__(self):
        controls = pn.FlexBox(
            pn.widgets.Select.from_param(self.param.run_id, name="run", width=360),
            *(pn.widgets.IntInput.from_param(self.param[name], width=140)
              for name in ("window", "rank", "delays", "window_index")),
            flex_wrap="wrap", sizing_mode="stretch_width")
        return pn.Column(
            pn.pane.Markdown("## Koopman\nDMD spectra of the weight trajectory, window by window, with ResDMD "
                             "residuals (Colbrook & Townsend 2023; Redman et al. 2024)."),
            controls, self._status, self._panes["eigs"], self._panes["windows"],
            self._panes["modes"], self._panes["cmd"], self._panes["piecewise"], sizing_mode="stretch_width")


def page(store: RunStore, jobs: JobPool | None = None) -> pn.viewable.Viewable:
    """The Koopman page for ``workbench serve`` (``?run=<id>`` opens a run)."""
    view = KoopmanPage(store, jobs=jobs)
    return pn.Column(sync_url(view, "run_id"), view, sizing_mode="stretch_width")
