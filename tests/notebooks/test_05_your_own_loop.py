"""Notebook 05 (your own loop) in quick mode: a Recorder loop and an HF Trainer run, opened in the lenses."""
from __future__ import annotations

import numpy as np

from tests.notebooks.conftest import read_results


def test_05_your_own_loop_quick(run_notebook):
    res = read_results(run_notebook("05_your_own_loop"))
    own = res["own_loop"]
    assert own["train_loss_last"] < 0.5 * own["train_loss_first"]
    assert own["spectrum_steps"] == list(range(0, 301, 30))  # steps // 10, and the final step
    assert len(own["alpha_last"]) >= 3 and all(1 < a < 20 for a in own["alpha_last"])
    assert own["trajectory_steps"] == 101 and own["checkpoints"] == [0, 150, 300]
    top = np.array(own["koopman_top_modulus"])
    assert own["koopman_windows"] >= 3 and len(top) == own["koopman_windows"] and np.all(np.abs(top - 1) < 0.1)
    hf = res["hf"]
    assert len(hf["train_loss"]) == hf["steps"] // 5 and len(hf["test_loss"]) == 2
    assert hf["spectrum_steps"] == [0, 10, 20, 30, 40] and hf["n_layers"] >= 8
    assert len(hf["alpha_last"]) == hf["n_layers"]
    assert hf["trajectory_steps"] == 21 and hf["checkpoints"] == [0, 20, 40]
    assert len(hf["koopman_top_modulus"]) >= 1
