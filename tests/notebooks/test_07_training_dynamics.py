"""Notebook 07 (training dynamics) in quick mode: gradual-rank toy, ΔW of a run, κ, compressibility."""
from __future__ import annotations

import numpy as np

from tests.notebooks.conftest import read_results


def test_07_training_dynamics_quick(run_notebook):
    res = read_results(run_notebook("07_training_dynamics"))
    # the toy (Boix-Adsera et al. 2023): rank of ΔW grows by at most one per stage, ends at the teacher's
    toy = res["toy"]
    for alpha in ("0.01", "0.001"):
        t = toy[alpha]
        assert t["max_rank_increment"] <= 1
        assert t["final_ranks"] == [t["teacher_rank"][name] for name in t["layers"]]
    for c in ("0.5", "0.1"):  # stage ends line up in t / log(1/α)
        a, b = (toy[x]["rescaled_time_loss_below"][c] for x in ("0.01", "0.001"))
        assert abs(b / a - 1) < 0.1, (c, a, b)
    # ΔW of the recorded run: every trajectory row measured, zero at step 0, ranks within the shapes
    g = res["grokking"]
    assert g["layers"] == ["embed", "hidden", "unembed"] and g["n_steps"] == g["n_trajectory_rows"] == 31
    stable, numerical = np.array(g["stable_rank"]), np.array(g["numerical_rank"])
    assert g["at_steps"][0] == 0 and (stable[0] == 0).all() and (numerical[0] == 0).all()
    assert (stable[1:] >= 1).all() and (stable <= numerical + 1e-9).all()
    assert (numerical <= np.array(g["shapes"]).min(1)).all()
    # κ sorted ascending, one of three modules selected (top_p = 0.34)
    k = res["kappa"]
    assert sorted(k["layers"]) == ["embed", "hidden", "unembed"] and np.all(np.diff(k["kappa"]) >= 0)
    assert k["selected"] == k["layers"][:1]
    # float32 weights: nearly incompressible, ratio a little above 1
    ratio = np.array(res["compressibility"]["ratio"])
    assert ratio.shape == (len(res["compressibility"]["steps"]), 2) and ((ratio > 1.0) & (ratio < 1.3)).all()
    # ΔW of a Hugging Face Trainer run (WorkbenchCallback, full-parameter trajectory)
    hf = res["hf"]
    stable, numerical = np.array(hf["stable_rank"]), np.array(hf["numerical_rank"])
    assert hf["n_layers"] >= 10 and hf["steps"][0] == 0 and hf["steps"][-1] == 40
    assert (stable[0] == 0).all() and (numerical[0] == 0).all() and (stable[1:] >= 1).all()
    assert (numerical <= np.array(hf["shapes"]).min(1)).all()
    # pDMD on the run: more windows fit better; each detected boundary's window error is reported
    pdmd = res["pdmd"]
    assert pdmd["n_windows"] == [1, 2, 4, 8] and pdmd["error"][-1] < pdmd["error"][0]
    for per_n in pdmd["boundaries"].values():
        assert [n for n, _, _ in per_n] == pdmd["n_windows"] and all(1 <= r <= n for n, _, r in per_n)
    # embedded CMD: the plain run embeds nothing, the embedded one most parameters by the end
    emb = res["embedded_cmd"]
    assert max(emb["plain"]["embedded_fraction"]) == 0 and emb["embedded 10%"]["embedded_fraction"][-1] > 0.5
    assert all(0 <= a <= 1 for run in ("plain", "embedded 10%") for a in emb[run]["test_acc"])
