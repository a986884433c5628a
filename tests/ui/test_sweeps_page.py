"""The Sweeps page's logic without a browser (the page in Chromium: ``test_tour.py``)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from widgets.apps.sweeps import default_variable
from workbench.store import RunStore
from workbench.sweep import sweep

pytestmark = pytest.mark.ui

def tiny_sweep(root):
    """A finished 2×2 sweep (wd × frac) of tiny modular runs into ``root`` (in-process cluster)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        return sweep("modular", {"wd": [0.1, 1.0], "frac": [0.3, 0.6]},
                     base={"p": 23, "d_embed": 16, "d_hidden": 32, "lr": 1e-2, "steps": 60, "eval_every": 5,
                           "checkpoint_every": 60, "trajectory_every": 0},
                     scheduler=client, data=root, progress=False)


@pytest.fixture(scope="module")
def sweep_data(tmp_path_factory):
    """A data root holding one finished 2×2 sweep of tiny modular runs."""
    root = tmp_path_factory.mktemp("sweep_ui")
    return root, tiny_sweep(root)


def test_page_logic(sweep_data):
    from widgets.apps.sweeps import (
        SweepBrowser,
        cell_figures,
        run_id_from_click,
        sweep_figure,
        sweep_options,
    )
    from widgets.plots.empty import is_empty
    from widgets.plots.sweep import sweep_heatmap

    root, ds = sweep_data
    store = RunStore(root)
    assert sweep_options(store) == [ds.sweep_id]
    fig, _ = sweep_figure(store, ds.sweep_id, "final_train_acc")
    heat = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heat.z, dtype=float), ds.final_train_acc.transpose("wd", "frac").values)
    assert np.asarray(heat.customdata)[1, 0] == str(ds.run_id.sel(wd=1.0, frac=0.3).values)
    run_id = run_id_from_click({"points": [{"customdata": str(ds.run_id.values[0, 1])}]})
    assert run_id == str(ds.run_id.values[0, 1]) and run_id_from_click(None) is None
    _, acc = cell_figures(store, run_id)
    assert len(acc.data[0].x) == 13  # steps 0, 5, ..., 60
    # plotly's click on a heatmap cell carries its labels, not its customdata
    assert run_id_from_click({"points": [{"x": "0.3", "y": "1.0", "z": 1}]}, fig) == np.asarray(heat.customdata)[1, 0]
    browser = SweepBrowser(store)
    assert is_empty(browser._acc.object)  # nothing clicked yet: an empty state, not invented axes
    browser.run_id = run_id  # what a click does
    assert not is_empty(browser._acc.object) and run_id in browser._cell.object
    # a variable with no value in any cell says why instead of drawing a blank heatmap
    blank = ds.assign(steps_to_test_95=ds.steps_to_test_95 * np.nan)
    empty = sweep_heatmap(blank, "steps_to_test_95")
    assert is_empty(empty) and "no run reached 95 %" in empty.layout.annotations[0].text
    assert default_variable(blank) == "final_test_acc"
