"""The Superposition page's SPD panel: decomposes the sparsest model shown, in the background,
with progress, and draws the figures and the numbers (Bushnaq et al. 2025)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from widgets.apps import spd_panel
from widgets.apps.spd_panel import SPDPanel, decompose_shown
from widgets.apps.superposition import SuperpositionPage
from workbench.store import RunStore
from workbench.superposition import analyze


def _models() -> xr.Dataset:
    """Two instances: a dense one and a planted pentagon (the S = 0.95 solution) as the sparsest."""
    angle = torch.arange(5) * 2 * math.pi / 5
    pentagon = 1.13 * torch.stack([angle.cos(), angle.sin()])
    W = np.stack([np.eye(2, 5), pentagon.numpy()]).astype(np.float32)
    b = np.stack([np.zeros(5), np.full(5, -0.25)]).astype(np.float32)
    return xr.Dataset({"W": (("instance", "hidden", "feature"), W), "b": (("instance", "feature"), b)},
                      coords={"sparsity": ("instance", [0.0, 0.95])})


def test_decompose_shown_takes_the_sparsest_model_at_its_feature_probability():
    ds = decompose_shown(_models(), steps=5, batch_size=32)
    assert ds.attrs["sparsity"] == 0.95 and ds.attrs["feature_probability"] == pytest.approx(0.05)
    np.testing.assert_array_equal(ds["W"].isel(instance=0).values, _models()["W"].isel(instance=1).values)
    assert {"mmcs", "ml2r", "alive"} <= set(ds.data_vars)


def test_panel_decomposes_with_progress_and_draws(monkeypatch):
    monkeypatch.setitem(spd_panel.SPD_SETTINGS, "steps", 40)
    shown: list[xr.Dataset | None] = [None]
    panel = SPDPanel(lambda: shown[0], threaded=False)
    panel.param.trigger("decompose")                       # nothing shown yet: a hint, no work
    assert "Train or open toy models first" in panel._status.object
    shown[0] = _models()
    panel.param.trigger("decompose")
    panel.wait(60)
    assert panel._progress.value == 40 and not panel._progress.visible
    assert panel._status.object.startswith("SPD of the S = 0.95 model: MMCS")
    assert len(panel._panes["columns"].object.data) == 2     # target W beside the recovered columns
    assert {t.name for t in panel._panes["importances"].object.data} == {"W_in", "W_out"}


def test_the_page_hands_its_drawn_models_to_the_panel(tmp_path):
    page = SuperpositionPage(RunStore(tmp_path), threaded=False)
    assert page.spd._models() is None
    page._show_live(xr.merge([_models(), analyze(_models())]), "two models")
    assert page.spd._models()["sparsity"].values.tolist() == [0.0, 0.95]
