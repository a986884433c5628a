"""Bad CLI input gets a named, actionable error and creates nothing; a property test over the options."""
from __future__ import annotations

import math
import re

import pytest
from typer.testing import CliRunner

from workbench.cli import MAX_P, MAX_WIDTH, app

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RUNNER = CliRunner()
SMALL = ["--p", "5", "--d-embed", "4", "--d-hidden", "4", "--steps", "2", "--checkpoint-every", "1",
         "--trajectory-every", "0", "--no-progress"]


def invoke(tmp_path, *args):
    return RUNNER.invoke(app, [*args, "--data", str(tmp_path / "root")])


@pytest.mark.parametrize("args, named", [
    (["train", "modular", "--frac", "nan"], "--frac"),
    (["train", "modular", "--d-embed", "-4"], "--d-embed"),
    (["train", "modular", "--d-hidden", "0"], "--d-hidden"),
    (["train", "modular", "--lr", "inf"], "--lr"),
    (["train", "modular", "--p", "91"], "p must be a prime"),
    (["train", "modular", "--batch-size", "10000000000"], "--batch-size 10000000000 exceeds the 4704 training"),
    (["train", "grokking", "--gf-lamb", "inf", "--optimizer", "grokfast-ema"], "--gf-lamb"),
    (["train", "grokking", "--gf-alpha", "1.5", "--optimizer", "grokfast-ema"], "alpha must be < 1"),
    (["train", "grokking", "--d-model", "100000"], "--d-model"),
    (["train", "superposition", "--batch-size", "10000000000"], "--batch-size"),
    (["train", "superposition", "--sparsity", "0,nan"], "--sparsity values must be finite"),
    (["train", "groups", "--lr", "nan"], "--lr"),
    (["sweep", "modular", "--grid", "wd=abc", "--steps", "5"], "wd must be a number, got str 'abc'"),
    (["sweep", "modular", "--grid", "wd=nan", "--steps", "5"], "grid['wd'] values must be finite, got nan"),
    (["runs", "list"], "data root"),
    (["runs", "check"], "data root"),
    (["runs", "show", "x-1"], "data root"),
    (["report", "x-1"], "data root"),
    (["train", "resume", "x-1"], "data root"),
])
def test_bad_input_is_named_and_creates_nothing(tmp_path, args, named):
    out = invoke(tmp_path, *args)
    assert out.exit_code == 2, out.output
    assert named in " ".join(out.output.split()), out.output  # (rich wraps long usage errors)
    assert "Traceback" not in out.output
    assert not (tmp_path / "root").exists()  # not even the data root


def test_serve_port_out_of_range_and_short_token_are_refused(tmp_path):
    out = invoke(tmp_path, "serve", "--port", "70000")
    assert out.exit_code == 2 and "--port" in out.output and not (tmp_path / "root").exists()
    out = invoke(tmp_path, "serve", "--host", "0.0.0.0", "--token", "short")
    assert out.exit_code == 2 and "at least 16 characters" in out.output and not (tmp_path / "root").exists()


def width() -> st.SearchStrategy:
    """Valid small widths, and invalid ones: zero, negative, over MAX_WIDTH, huge."""
    return st.one_of(st.integers(1, 6), st.integers(-10**12, 0), st.integers(MAX_WIDTH + 1, 10**15))


def real() -> st.SearchStrategy:
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e-3, 0.5, 1.0]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=st.one_of(st.sampled_from([5, 7, 2, 4, 9, 91]), st.integers(-10**6, 1), st.integers(MAX_P + 1, 10**12)),
       frac=real(), lr=real(), wd=real(), d_embed=width(), d_hidden=width(),
       batch_size=st.one_of(st.none(), st.integers(-5, 0), st.integers(1, 8), st.integers(10**6, 10**15)))
def test_any_modular_options_train_or_fail_with_a_named_error_creating_nothing(
        tmp_path_factory, p, frac, lr, wd, d_embed, d_hidden, batch_size):
    root = tmp_path_factory.mktemp("prop") / "root"
    args = ["train", "modular", *SMALL, "--p", str(p), "--frac", repr(frac), "--lr", repr(lr), "--wd", repr(wd),
            "--d-embed", str(d_embed), "--d-hidden", str(d_hidden), "--data", str(root)]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    out = RUNNER.invoke(app, args)
    valid = (p in (5, 7) and 0 < frac < 1 and math.isfinite(lr) and lr > 0 and math.isfinite(wd) and wd >= 0
             and 1 <= d_embed <= MAX_WIDTH and 1 <= d_hidden <= MAX_WIDTH and batch_size in (None, *range(1, 9)))
    if out.exit_code == 0:
        assert re.search(r"run_id: modular-[0-9a-f]{12}\s*$", out.stdout), out.output
        assert len(list(root.iterdir())) == 1
    else:
        assert out.exit_code == 2 and isinstance(out.exception, SystemExit), out.output  # no uncaught error
        assert "Traceback" not in out.output and ("error" in out.output.lower() or "Invalid value" in out.output)
        assert not root.exists() or not any(root.iterdir()), sorted(root.iterdir())
    # a valid combination may still be refused (frac leaving an empty split at p=5): never the other way round
    assert valid or out.exit_code != 0


def test_an_unreachable_scheduler_is_named_and_leaves_no_sweep_record(tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        out = invoke(tmp_path, "sweep", "modular", "--grid", "wd=0.1", "--steps", "5", "--scheduler",
                     "tcp://127.0.0.1:9")
    assert out.exit_code == 2 and "cannot reach the Dask scheduler tcp://127.0.0.1:9" in out.output
    assert not (tmp_path / "root").exists()
