"""The superposition page: plain page logic, then the real page in headless Chromium."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ui.conftest import serving
from tests.ui.test_runs_page import wait_for_points
from widgets.apps import superposition as app
from workbench.store import RunStore

pytestmark = pytest.mark.ui

SMALL_GRID = {"n_features": 2, "n_hidden": 1, "densities": np.geomspace(0.01, 1, 4),
                  "importance_ratios": np.geomspace(0.1, 10, 4), "n_inits": 2, "steps": 300, "seed": 0}


@pytest.fixture(scope="module")
def sup_root(tmp_path_factory):
    """A data root holding a small precomputed phase diagram (what the page loads)."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sup_ui")
    app.save(app.phase_diagram(**SMALL_GRID), app.phase_diagram_path(RunStore(root)))
    return root


def test_page_logic_without_browser(sup_root):
    np.testing.assert_allclose(app.sparsity_levels(0.99, 3), [0.0, 0.9, 0.99])
    with pytest.raises(ValueError, match="max_sparsity"):
        app.sparsity_levels(1.0)
    ds = app.train_live(5, 2, 0.99, 0.9, steps=300)
    figs = app.live_figures(ds)
    assert set(figs) == {"grid", "dims", "polygon"}
    assert ds.sizes["instance"] == 5 and ds["WtW"].shape == (5, 5, 5)
    page = app.SuperpositionPage(RunStore(sup_root), steps=300)
    page.start_training(background=False)
    page.start_phase_diagram(background=False)
    assert page._panes["grid"].object is not None and page._panes["phase"].object is not None
    heat = page._panes["phase"].object.data[0]
    assert heat.z.shape == (4, 4) and "W=[" in heat.text[0][0]   # hover carries the cell's W
    assert "features represented" in page._status.object


def test_superposition_page_in_browser(sup_root, browser_page, tmp_path):
    with serving(sup_root, tmp_path) as url:
        page = browser_page
        page.goto(url + "/superposition")
        # live training finishes (bias bars of the S=0 model drawn) and the phase diagram loads
        points = wait_for_points(page, lambda p: p.get("b S=0", 0) == 5 and p.get("phase", 0) == 4
                                 and p.get("D_i (represented features)", 0) > 0
                                 and p.get("features S=0", 0) == 5, timeout=90)  # m = 2 polygon
        assert points["dims per feature m/‖W‖²_F"] == 5           # one per sparsity level
        assert not page.errors
