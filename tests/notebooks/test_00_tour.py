"""The tour notebook trains a run end to end and reports what it saw."""
from __future__ import annotations

from tests.notebooks.conftest import read_results


def test_tour_trains_memorises_and_records_a_trajectory(run_notebook):
    results = read_results(run_notebook("00_tour"))
    assert results["final_train_acc"] == 1.0
    assert results["first_step_train_acc_1"] is not None and results["first_step_train_acc_1"] < 300
    assert results["n_steps_logged"] == 31  # steps 0..300 every 10
    assert results["trajectory_shape"] == [7, 512]  # every 50 steps, 512-dim projection
