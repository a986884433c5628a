"""Notebook 01 reproduces the grokking story in quick mode: it groks, in the paper's order."""
from __future__ import annotations

from tests.notebooks.conftest import read_results


def test_01_grokking_quick(run_notebook):
    r = read_results(run_notebook("01_grokking", timeout=600))
    assert r["final_train_acc"] == 1.0
    assert r["final_test_acc"] > 0.95
    # memorization first, then generalization (Nanda et al. 2023, Fig. 1)
    assert r["step_train_acc_99"] < r["step_test_acc_95"]
    # restricted loss falls before test loss (Sec. 5.3)
    assert r["step_restricted_below_half_chance"] < r["step_test_loss_below_half_chance"]
    b = r["boundaries"]
    assert b["t1"] < b["t2"] < b["t3"]
    assert r["weight_norm_at_t3"] < r["weight_norm_at_t2"]  # cleanup shrinks the weights
    # a handful of key frequencies carry most of the embedding norm; Fourier norms get sparser
    assert 1 <= len(r["key_freqs"]) <= 8
    assert r["key_freq_fraction_final"] > 0.6
    assert r["gini_final"] > r["gini_first"] + 0.2
    assert len(r["curves"]["step"]) == len(r["curves"]["test_loss"]) > 50
    assert r["grokfast_ema_step_test_acc_95"] is None or r["grokfast_ema_step_test_acc_95"] > 0
