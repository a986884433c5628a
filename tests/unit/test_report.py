"""`workbench report`: one self-contained HTML file per run; clear errors and no half-written files."""
from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import plotly.io as pio
import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.store import RunStore

runner = CliRunner()
FIGURE = re.compile(r'<script type="application/json" class="wb-figure" data-target="([^"]+)">(.*?)</script>', re.DOTALL)


def figures_of(text: str) -> list:
    return [pio.from_json(body) for _, body in FIGURE.findall(text)]


def values(array) -> np.ndarray:
    """A trace's array as stored in the page: a list, or plotly's base64 typed-array spec."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).astype(float)
    return np.asarray(array, dtype=float)


@pytest.fixture(scope="module")
def modular(tmp_path_factory):
    """A small finished MLP run with checkpoints and a trajectory: (data root, run id)."""
    from workbench.grokking.modular_run import ModularConfig, train_modular

    root = tmp_path_factory.mktemp("report_runs")
    run = train_modular(ModularConfig(p=11, d_embed=8, d_hidden=16, steps=40, eval_every=5, checkpoint_every=20,
                                      trajectory_every=5), RunStore(root), progress=False)
    return root, run.id


def test_report_holds_curves_and_lenses_with_their_data(modular, tmp_path):
    root, run_id = modular
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", run_id, "--out", str(out), "--data", str(root)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    text = out.read_text()
    # self-contained: no external script, stylesheet or image; plotly.js inlined once (packed)
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", text)
    assert text.count('id="wb-plotlyjs"') == 1
    assert out.stat().st_size < 5e6
    for lens in ("curves", "spectrum", "koopman"):
        assert f'<section id="{lens}">' in text, lens
    assert '<section id="grokking">' not in text and '<section id="superposition">' not in text
    figs = figures_of(text)
    assert len(figs) >= 5
    metrics = RunStore(root).open(run_id).metrics()
    loss = next(f for f in figs if any(t.name == "train_loss" for t in f.data))
    trace = next(t for t in loss.data if t.name == "train_loss")
    np.testing.assert_allclose(values(trace.y), metrics.train_loss.dropna("step").values)
    assert run_id in text and '"p": 11' in html.unescape(text)  # the config is in the page


def test_report_default_name_and_python_api(modular, tmp_path, monkeypatch):
    from widgets.report import build_report, write_report

    root, run_id = modular
    monkeypatch.chdir(tmp_path)
    path, report = write_report(RunStore(root), run_id)
    assert path.name == f"report-{run_id}.html" and (tmp_path / path.name).exists()
    assert [s.lens for s in report.sections] == ["curves", "spectrum", "koopman"]
    assert not report.skipped
    assert len(build_report(RunStore(root), run_id).figures) == len(report.figures)


def test_a_failing_lens_is_named_not_dropped(modular, tmp_path, monkeypatch):
    import widgets.report as rep

    def broken(run):
        raise RuntimeError("planted failure")

    monkeypatch.setitem(rep.LENSES, "spectrum", broken)
    root, run_id = modular
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", run_id, "--out", str(out), "--data", str(root)])
    assert result.exit_code == 0
    assert "spectrum lens is not in the report: RuntimeError: planted failure" in result.output
    text = out.read_text()
    assert "planted failure" in text and '<section id="spectrum">' not in text and '<section id="curves">' in text


def _no_leftovers(directory) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.suffix == ".html"]


def test_unknown_run_id_fails_clearly(modular, tmp_path):
    root, run_id = modular
    result = runner.invoke(app, ["report", "modular-000000000000", "--out", str(tmp_path / "r.html"),
                                 "--data", str(root)])
    assert result.exit_code == 2
    assert "no run 'modular-000000000000'" in result.output and run_id in result.output
    _no_leftovers(tmp_path)
    bad = runner.invoke(app, ["report", "../../etc", "--out", str(tmp_path / "r.html"), "--data", str(root)])
    assert bad.exit_code == 2 and "invalid run id" in bad.output
    _no_leftovers(tmp_path)


def test_output_in_missing_directory_fails_before_any_work(modular, tmp_path):
    root, run_id = modular
    target = tmp_path / "nope" / "r.html"
    result = runner.invoke(app, ["report", run_id, "--out", str(target), "--data", str(root)])
    assert result.exit_code == 2
    assert "does not exist" in result.output and str(tmp_path / "nope") in result.output
    assert not (tmp_path / "nope").exists()
    folder = runner.invoke(app, ["report", run_id, "--out", str(tmp_path), "--data", str(root)])
    assert folder.exit_code == 2 and "is a directory" in folder.output
    _no_leftovers(tmp_path)


def test_run_without_metrics_fails_and_keeps_an_existing_file(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"kind": "modular", "model": {"name": "mlp", "p": 5}})
    out = tmp_path / "out"
    out.mkdir()
    old = out / "r.html"
    old.write_text("previous report")
    result = runner.invoke(app, ["report", run.id, "--out", str(old), "--data", str(store.root)])
    assert result.exit_code == 2
    assert "has no metrics yet" in result.output
    assert old.read_text() == "previous report"
    assert [p.name for p in out.iterdir()] == ["r.html"]


def test_superposition_run_gets_its_lens(tmp_path):
    from widgets.report import build_report
    from workbench.superposition.run import ToyRunConfig, train_toy_run

    store = RunStore(tmp_path)
    run = train_toy_run(ToyRunConfig(n_features=5, n_hidden=2, sparsity=[0.0, 0.9], n_inits=2, steps=50,
                                     batch_size=64), store)
    report = build_report(store, run.id)
    assert [s.lens for s in report.sections] == ["superposition"], report.skipped
    grid = report.sections[0].figures[0]
    assert [t.name for t in grid.data if t.name.startswith("WtW")] == ["WtW S=0", "WtW S=0.9"]
    assert json.loads(pio.to_json(grid))["data"]
