"""Notebook 06 (groups, irreps, Li², words) in quick mode: the numbers it reports."""
from __future__ import annotations

import pytest

from tests.notebooks.conftest import read_results


def test_06_groups_quick(run_notebook):
    res = read_results(run_notebook("06_groups"))
    assert res["irreps_S4_dims"] == [1, 1, 2, 3, 3]
    run = res["groups_run"]
    assert run["test_acc"] >= 0.95 and run["key_irreps"] and run["key_irrep_fraction"] >= 0.9
    assert set(res["ascent"]) <= {"1b", "2a", "2b"}
    for k, e in res["ascent"].items():  # E = |G| / (2 d) on D_5
        assert e == pytest.approx(5.0 if k == "1b" else 2.5, rel=1e-4)
    li2 = res["li2"]
    assert li2["test_acc"] >= 0.95 and li2["stages"]["t1"] is not None and li2["alignment_max"] > 0.3
    margin = res["margin"]
    assert margin["used"] == margin["n_classes"] == 11 and margin["weighted_concentration"] > 0.5
    words = res["words"]
    assert words["strassen_error"]["7"] < 1e-8 and words["strassen_error"]["6"] > 0.3
    assert words["s3_task_rank"] == 8 and 0 < words["learned_rank"] <= 24
