"""widgets.explorers.run_explorer: drive the ipywidgets from Python, check the FigureWidgets follow."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import xarray as xr

from widgets.explorers import ACCURACY, RunExplorer, run_explorer
from widgets.plots import accuracy_curves, loss_curves
from widgets.plots.empty import is_empty
from workbench.store import RunStore


def metrics(steps, scale: float = 1.0) -> xr.Dataset:
    steps = np.asarray(steps)
    return xr.Dataset({"train_loss": ("step", scale / (1 + steps)), "test_loss": ("step", 2 * scale / (1 + steps)),
                       "train_acc": ("step", steps / 100.0), "test_acc": ("step", steps / 200.0),
                       "gini": ("step", 0.5 + steps / 1000.0)}, coords={"step": steps})


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(tmp_path)
    a = store.create({"kind": "modular", "seed": 0})
    a.append(metrics([0, 10, 20, 30]))
    b = store.create({"kind": "modular", "seed": 1})
    b.append(metrics([0, 10], scale=5.0))
    return store


def by_name(fig) -> dict:
    return {t.name: t for t in fig.data}


def first_run(store):
    return store.open(store.ids()[0])


def test_explorer_shows_the_same_figures_as_the_plot_functions(store):
    run = first_run(store)
    ex = run_explorer(run)
    assert isinstance(ex, RunExplorer) and isinstance(ex.loss_fig, go.FigureWidget)
    ref = loss_curves(run.metrics(), marker_step=30)
    for name, trace in by_name(ref).items():
        np.testing.assert_array_equal(by_name(ex.loss_fig)[name].x, trace.x)
        np.testing.assert_allclose(by_name(ex.loss_fig)[name].y, trace.y)
    ref_acc = accuracy_curves(run.metrics())
    np.testing.assert_allclose(by_name(ex.metric_fig)["test_acc"].y, by_name(ref_acc)["test_acc"].y)
    assert ex.step_slider.options == (0, 10, 20, 30) and ex.step_slider.value == 30
    assert set(ex.run_picker.options) == set(store.ids()) and ex.run_picker.value == run.id


def test_step_slider_moves_the_marker_and_the_values(store):
    ex = run_explorer(first_run(store))
    ex.step_slider.value = 10
    assert [s.x0 for s in ex.loss_fig.layout.shapes] == [10]
    assert [s.x0 for s in ex.metric_fig.layout.shapes] == [10]
    assert "step 10" in ex.values.value and "0.1" in ex.values.value  # train_acc at step 10


def test_metric_picker_and_log_x(store):
    ex = run_explorer(first_run(store))
    assert list(ex.metric_picker.options) == [ACCURACY, "gini"]
    ex.metric_picker.value = "gini"
    assert list(by_name(ex.metric_fig)) == ["gini"]
    np.testing.assert_allclose(ex.metric_fig.data[0].y, [0.5, 0.51, 0.52, 0.53])
    ex.log_x.value = True
    assert ex.loss_fig.layout.xaxis.type == "log" and ex.metric_fig.layout.xaxis.type == "log"
    np.testing.assert_array_equal(ex.metric_fig.data[0].x, [10, 20, 30])
    ex.metric_picker.value = ACCURACY
    assert set(by_name(ex.metric_fig)) == {"train_acc", "test_acc"}


def test_run_picker_switches_run(store):
    ex = run_explorer(store)  # a store opens its last run
    other = next(i for i in store.ids() if i != ex.run_picker.value)
    ex.run_picker.value = other
    ds = store.open(other).metrics()
    np.testing.assert_allclose(by_name(ex.loss_fig)["train_loss"].y, ds.train_loss.values)
    assert ex.step_slider.options == tuple(int(s) for s in ds.step.values)


def test_refresh_follows_a_growing_run(store):
    run = first_run(store)
    ex = run_explorer(run.id, store=store)
    run.append(metrics([40, 50]))
    ex.refresh_button.click()
    assert len(ex.loss_fig.data[0].x) == 6 and ex.step_slider.value == 50  # the slider follows the end
    ex.step_slider.value = 20
    run.append(metrics([60]))
    ex.refresh()
    assert ex.step_slider.value == 20 and len(ex.loss_fig.data[0].x) == 7  # unless moved away from it
    new = store.create({"kind": "modular", "seed": 7})
    ex.refresh()
    assert new.id in ex.run_picker.options and ex.run_picker.value == run.id


def test_empty_run_and_bad_input(store, tmp_path):
    empty = store.create({"kind": "modular", "seed": 3})
    ex = run_explorer(empty)
    assert ex.step_slider.disabled and len(ex.loss_fig.data) == 0
    assert "no metrics" in ex.values.value
    with pytest.raises(TypeError, match="Run"):
        run_explorer(42)
    with pytest.raises(TypeError, match="store="):
        run_explorer("modular-abc")
    with pytest.raises(ValueError, match="no runs"):
        run_explorer(RunStore(tmp_path / "none"))


def test_values_are_ordered_and_losses_drawn_on_a_log_axis(tmp_path):
    from widgets.explorers import ordered

    assert ordered(["zeta", "gini", "test_acc", "restricted_loss", "train_loss", "alpha"]) == [
        "train_loss", "test_acc", "restricted_loss", "gini", "alpha", "zeta"]
    store = RunStore(tmp_path)
    run = store.create({"kind": "grokking", "seed": 0})
    run.append(metrics([0, 10, 20]).assign(restricted_loss=("step", [3.0, 1.0, 0.01])))
    ex = RunExplorer(run)
    assert list(ex.metric_picker.options)[:3] == [ACCURACY, "restricted_loss", "gini"]
    html = ex.values.value
    assert html.index("train_loss") < html.index("test_acc") < html.index("restricted_loss") < html.index("gini")
    ex.metric_picker.value = "restricted_loss"
    assert ex.metric_fig.layout.yaxis.type == "log"
    ex.metric_picker.value = "gini"
    assert ex.metric_fig.layout.yaxis.type == "linear"


@pytest.fixture(scope="module")
def modular_run(tmp_path_factory):
    from workbench.grokking.modular_run import ModularConfig, train_modular

    store = RunStore(tmp_path_factory.mktemp("explorer_runs"))
    return train_modular(ModularConfig(p=23, steps=200, checkpoint_every=100, trajectory_every=20), store,
                         progress=False)


def test_lens_explorers_are_the_dashboard_pages_on_a_run(modular_run):
    """One implementation for both surfaces: the explorers are the page classes, opened on the run."""
    import panel as pn

    from widgets.apps.koopman import KoopmanPage
    from widgets.apps.spectrum import SpectrumPage
    from widgets.explorers import GrokkingExplorer, KoopmanExplorer, RunsExplorer, SpectrumExplorer

    spectrum = SpectrumExplorer(modular_run)
    assert isinstance(spectrum, SpectrumPage) and isinstance(spectrum, pn.viewable.Viewer)
    assert spectrum.source == modular_run.id and spectrum.result is not None  # drawn when the cell returns
    koopman = KoopmanExplorer(modular_run.id, store=modular_run.store)
    assert isinstance(koopman, KoopmanPage) and "reconstruction error" in koopman._status.object
    runs = RunsExplorer(modular_run)
    assert runs.run_id == modular_run.id and runs._loss.object.data
    with pytest.raises(ValueError, match="no data for GrokkingExplorer"):
        GrokkingExplorer(modular_run)  # a modular MLP run has no grokking probe
    assert isinstance(spectrum.__panel__(), pn.Column)


def test_an_explorer_becomes_an_ipywidget(modular_run):
    """Panel's ipywidget bridge (jupyter_bokeh): a lens explorer inside an ipywidgets layout."""
    import ipywidgets
    import panel as pn

    from widgets.explorers import RunsExplorer

    widget = pn.ipywidget(RunsExplorer(modular_run))
    assert isinstance(widget, ipywidgets.DOMWidget)
    assert isinstance(ipywidgets.VBox([ipywidgets.Label("run"), widget]).children[1], ipywidgets.DOMWidget)


def test_superposition_explorer_opens_a_stored_run(tmp_path):
    from widgets.explorers import SuperpositionExplorer
    from workbench.superposition import ToyRunConfig, train_toy_run

    run = train_toy_run(ToyRunConfig(sparsity=[0.0, 0.9], n_inits=1, steps=100), RunStore(tmp_path))
    ex = SuperpositionExplorer(run)
    assert ex.run_id == run.id and not is_empty(ex._panes["grid"].object)
