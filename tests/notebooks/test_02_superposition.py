"""Notebook 02 (superposition) in quick mode: the paper's qualitative results, with tolerances.

Expected values are the paper's findings and our independent reference, not numbers copied from a
run: dense features → exactly m features represented (dims per feature 1); sparse → more than m;
phase-diagram corners as found by the scipy exact-loss reference in tests/unit/test_superposition_phase.py
(dense & r=0.1: feature 2 dropped; dense & r=10: feature 2 dedicated; density 0.01 & r=1: superposition).
"""
from __future__ import annotations

from tests.notebooks.conftest import read_results
from workbench.superposition import load


def test_02_superposition_quick(run_notebook):
    out = run_notebook("02_superposition", timeout=240)
    r = read_results(out)
    rep = r["n5_m2_n_represented"]
    assert rep["0.0"] == 2                      # S = 0: the top m = 2 features only
    assert rep["0.99"] >= 4 and rep["0.997"] >= 4  # very sparse: n > m features in superposition
    dpf = r["n5_m2_dims_per_feature"]
    assert abs(dpf["0.0"] - 1.0) < 0.05 and dpf["0.997"] < 0.6
    big = r["n20_m5_n_represented"]
    assert big["0.0"] == 5 and big["0.999"] > 5
    d = r["dim_scatter_dims_per_feature"]
    assert d[0] > 0.9 and d[-1] < 0.6           # dims per feature falls with sparsity
    assert r["phase_corners"] == {"dense_low_ratio": "not_represented", "dense_high_ratio": "dedicated",
                                  "sparse_equal": "superposition"}
    assert all(v > 0.05 for v in r["phase_fractions"].values())
    pd2 = load(out / "phase_diagram_2_1.zarr")
    assert pd2["phase"].dims == ("density", "importance_ratio") and pd2["W"].shape[-2:] == (1, 2)
    spd = r["spd"]                              # SPD (Bushnaq et al. 2025) of two trained 5-2 targets
    assert len(spd["mmcs"]) == 2 and min(spd["mmcs"]) > 0.98 and max(spd["mmcs"]) >= 0.99
    assert all(a <= 5 for a in spd["alive"]) and 5 in spd["alive"]   # 20 subcomponents → one per feature
