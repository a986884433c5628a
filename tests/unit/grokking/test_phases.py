"""detect_phases: a run that never generalised has no circuit formation or cleanup phase."""
from __future__ import annotations

import numpy as np
import xarray as xr

from workbench.grokking.phases import detect_phases


def curves(final_test_acc: float) -> xr.Dataset:
    """Train accuracy fitted by step 100; test loss peaks at 12 then drifts to 9 (a fall of 3 nats)."""
    steps = np.arange(0, 1000, 10)
    test_loss = np.where(steps < 300, 12.0, 12.0 - 3.0 * np.clip((steps - 300) / 400, 0, 1))
    test_acc = np.clip(steps / 1000, 0, 1) * final_test_acc
    return xr.Dataset({"train_acc": ("step", np.clip(steps / 100, 0, 1)), "test_loss": ("step", test_loss),
                       "test_acc": ("step", test_acc)}, coords={"step": steps})


def test_a_run_that_never_grokked_has_no_cleanup():
    out = detect_phases(curves(final_test_acc=0.44))
    assert out["grokked"] is False
    assert out["boundaries"] == {"t1": 100, "t2": None, "t3": None}
    assert out["phases"]["cleanup"] is None and out["phases"]["circuit_formation"] is None


def test_the_same_fall_counts_once_test_accuracy_is_reached():
    out = detect_phases(curves(final_test_acc=1.0))
    assert out["grokked"] is True and out["boundaries"]["t2"] is not None
    assert out["phases"]["cleanup"] == [out["boundaries"]["t2"], out["boundaries"]["t3"]]


def test_runs_show_judges_phases_stored_before_the_grokked_flag(tmp_path):
    """An old run's stored phases named a cleanup for a run that never generalised: shown re-detected."""
    import json

    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.store import RunStore

    metrics = curves(final_test_acc=0.44)
    old = {"phases": {"memorization": [0, 100], "circuit_formation": [100, 340], "cleanup": [340, 660]},
           "boundaries": {"t1": 100, "t2": 340, "t3": 660}, "rule": "before the grokked flag"}
    run = RunStore(tmp_path).create({"kind": "grokking"})
    run.append(metrics)
    run.update_state(status="done", attrs={"phases": old})
    shown = CliRunner().invoke(app, ["runs", "show", run.id, "--data", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    phases = json.loads(shown.output)["state"]["attrs"]["phases"]
    assert phases["grokked"] is False and phases["phases"]["cleanup"] is None and "re-detected" in phases["note"]
    assert run.state["attrs"]["phases"] == old  # shown, not rewritten
