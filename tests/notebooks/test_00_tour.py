"""The tour: one quick grokking run through the four lenses; each lens' headline number checked."""
from __future__ import annotations

import pytest

from tests.notebooks.conftest import read_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from tests.notebooks.conftest import execute

    return read_results(execute("00_tour", tmp_path_factory.mktemp("tour")))


def test_the_run_groks(results):
    assert results["final_train_acc"] == 1.0
    assert results["final_test_acc"] > 0.95
    b = results["boundaries"]
    assert b["t1"] < b["t3"]  # memorization ends before cleanup starts
    assert 1 <= len(results["key_freqs"]) <= 8


def test_fourier_lens_sparsifies_the_embedding(results):
    first, last = results["by_step"][0], results["by_step"][-1]
    assert last["gini"] > first["gini"]
    assert last["restricted_loss"] < 0.01


def test_superposition_lens_key_fourier_directions_become_dedicated(results):
    first, last = results["by_step"][0], results["by_step"][-1]
    assert last["key_feature_dimensionality"] > 0.9  # ≈ 1: each key component has its own direction
    assert last["key_norm_fraction"] > first["key_norm_fraction"]
    assert last["key_norm_fraction"] > 0.6


def test_spectrum_and_koopman_lenses_report_sane_numbers(results):
    assert results["n_layers"] >= 4 and results["n_windows"] >= 4
    for row in results["by_step"]:
        assert 1.0 < row["mean_alpha"] < 10.0
        assert row["mean_delta_effective_rank"] > 1.0
        assert 0.5 < row["koopman_max_modulus"] < 1.05  # slow directions near, not beyond, the unit circle
