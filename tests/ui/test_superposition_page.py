"""The superposition page: plain page logic (the page in Chromium: ``test_tour.py``)."""
from __future__ import annotations

import tempfile

import numpy as np
import pytest

from widgets.apps import superposition as app
from widgets.plots.empty import is_empty
from workbench.store import RunStore
from workbench.superposition import phase_diagram

pytestmark = pytest.mark.ui

SMALL_GRID = {"n_features": 2, "n_hidden": 1, "densities": np.geomspace(0.01, 1, 4),
                  "importance_ratios": np.geomspace(0.1, 10, 4), "n_inits": 2, "steps": 300, "seed": 0}


@pytest.fixture(scope="module")
def sup_root(tmp_path_factory):
    """A data root holding a small precomputed phase diagram (what the page loads)."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sup_ui")
    RunStore(root).save_artifact(app.PHASE_KIND, app.PHASE_NAME, phase_diagram(**SMALL_GRID))
    return root


@pytest.fixture(scope="module")
def toy_run_id(sup_root) -> str:
    """A stored superposition run (what `workbench train superposition` writes) in the same root."""
    from workbench.superposition import ToyRunConfig, train_toy_run

    return train_toy_run(ToyRunConfig(sparsity=[0.0, 0.9], n_inits=1, steps=100), RunStore(sup_root)).id


def test_page_logic_without_browser(sup_root):
    np.testing.assert_allclose(app.sparsity_levels(0.99, 3), [0.0, 0.9, 0.99])
    with pytest.raises(ValueError, match="max_sparsity"):
        app.sparsity_levels(1.0)
    ds = app.train_live(5, 2, 0.99, 0.9, steps=300)
    figs = app.live_figures(ds)
    assert set(figs) == {"grid", "dims", "polygon"}
    assert ds.sizes["instance"] == 5 and ds["WtW"].shape == (5, 5, 5)
    assert app.train_live(5, 2, 0.99, 0.9, steps=300) is ds  # pure, so cached
    page = app.SuperpositionPage(RunStore(sup_root), steps=300, threaded=False)
    page.start_training()
    page.start_phase_diagram()
    assert not is_empty(page._panes["grid"].object) and not is_empty(page._panes["phase"].object)
    assert not page._training.busy and page._errors.object == ""
    heat = page._panes["phase"].object.data[0]
    assert heat.z.shape == (4, 4) and "W=[" in heat.text[0][0]   # hover carries the cell's W
    assert "features represented" in page._status.object
    page.n_hidden = 1  # a slider change retrains: no polygon for m = 1
    assert not page._panes["polygon"].visible and page._panes["grid"].object.layout.title.text
    assert "m=1" in page._status.object


def test_default_is_the_papers_pentagon_and_stored_runs_open():
    """The page's defaults train as the CLI does: at S = 0.99 all five features sit on a pentagon."""
    from workbench.superposition import ToyRunConfig, train_toy_run

    ds = app.train_live(5, 2, 0.99, 0.9)
    assert ds.sizes["instance"] == 5 and float(ds["sparsity"][-1]) == pytest.approx(0.99)
    assert int(ds["n_represented"][-1]) == 5
    assert (ds["geometry"].isel(instance=-1).values == "pentagon").all()
    store = RunStore(tempfile.mkdtemp())
    run = train_toy_run(ToyRunConfig(sparsity=[0.0, 0.99], n_inits=2, steps=200), store)
    assert app.superposition_runs(store) == [run.id]
    toy = app.load_toy_run(store, run.id)
    assert toy["sparsity"].values.tolist() == [0.0, 0.99] and "WtW" in toy
    page = app.SuperpositionPage(store, threaded=False)
    page.run_id = run.id
    assert f"run {run.id}" in page._status.object and page._panes["polygon"].visible
    page._training.submit = lambda *args, **kwargs: None  # hold the retraining: the plots are stale
    page.max_sparsity = 0.9
    assert "S ≤ 0.9" in page._status.object and f"plots below still show run {run.id}" in page._status.object


def test_a_phase_diagram_stored_before_the_artifact_area_still_loads(tmp_path):
    from workbench.superposition import save

    store = RunStore(tmp_path)
    save(phase_diagram(**{**SMALL_GRID, "steps": 50}), tmp_path / "superposition" / "phase_diagram_2_1.zarr")
    ds = app.load_or_compute_phase_diagram(store)  # read from the old place, nothing recomputed
    assert ds["phase"].shape == (4, 4) and ds.attrs["steps"] == 50
