"""Koopman page: CMD modes and pDMD errors of the whole recorded trajectory."""
from __future__ import annotations

import numpy as np
import xarray as xr

from widgets.apps.koopman import run_view, trajectory_figures
from workbench.store import RunStore


def _trajectory(n_steps: int, n_param: int = 40) -> xr.DataArray:
    """Two groups of parameters, each an affine copy of one walk (two correlated modes)."""
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.normal(size=(2, n_steps)), axis=1)
    a, b = rng.normal(size=n_param), rng.normal(size=n_param)
    X = (a * walks[np.arange(n_param) % 2].T + b).astype(np.float32)
    return xr.DataArray(X, dims=("step", "param"), coords={"step": np.arange(n_steps) * 10})


def test_cmd_and_pdmd_figures_of_a_trajectory():
    figs = trajectory_figures(_trajectory(40), rank=4)
    sizes = sorted(int(t.name.split("(")[1].split()[0]) for t in figs["cmd"].data if t.name.startswith("mode"))
    assert sizes[-2:] == [18, 20] and sum(sizes) == 40      # the two planted groups, nearly whole
    names = [t.name for t in figs["piecewise"].data]
    assert names[:4] == ["N = 1", "N = 2", "N = 4", "N = 8"]   # 40 steps: every count keeps ≥ 3 per window


def test_a_short_trajectory_says_why_there_is_no_pdmd():
    figs = trajectory_figures(_trajectory(2), rank=2)
    assert "too few" in figs["piecewise"].layout.annotations[0].text


def test_the_page_view_of_a_run_includes_them(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"kind": "mine", "seed": 0})
    for step, row in zip(range(0, 300, 10), _trajectory(30).values):
        run.append_trajectory(step, row)
    figs, summary = run_view(store, run.id, window=10, rank=3, delays=1)
    assert {"eigs", "windows", "modes", "cmd", "piecewise"} <= set(figs)
    assert run.id in summary
