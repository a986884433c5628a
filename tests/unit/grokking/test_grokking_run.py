"""A quick real grokking run through train_grokking + RunStore: it groks, in the paper's order."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from workbench.grokking import GrokkingConfig, train_grokking
from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.store import RunStore

# Small enough for ~1 min on 2 busy cores, still with a memorisation delay: p = 31, half the pairs,
# a d_model = 64 transformer, lr 3e-3 and weight decay 3 (stronger decay → earlier grokking,
# Power et al. 2022 Fig. 2 / Liu et al. 2022).
QUICK = {"p": 31, "frac": 0.5, "d_model": 64, "d_head": 16, "d_mlp": 256, "lr": 3e-3, "wd": 3.0, "steps": 900, "eval_every": 10,
             "probe_every": 25, "checkpoint_every": 300, "trajectory_every": 50}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    return train_grokking(GrokkingConfig(**QUICK), tmp_path_factory.mktemp("runs"), progress=False)


def _first(m, cond):
    hit = m.step.values[np.asarray(cond)]
    return int(hit[0]) if len(hit) else None


def test_run_groks_and_records_everything(run):
    m = run.metrics()
    for var in ("train_loss", "test_loss", "train_acc", "test_acc", "restricted_loss", "excluded_loss", "gini",
                "weight_norm", "key_freq_fraction"):
        assert var in m, var
    assert float(m.test_acc.dropna("step")[-1]) > 0.95
    assert run.trajectory().sizes["step"] == QUICK["steps"] // 50 + 1
    assert run.state["status"] == "done"
    # a handful of key frequencies carry most of the embedding norm (Nanda et al. Sec. 4)
    keys = run.attrs["key_freqs"]
    assert 1 <= len(keys) <= 8
    final = m.sel(step=m.step.max())
    assert float(final.key_freq_fraction) > 0.6
    assert float(final.gini) > float(m.gini.dropna("step")[0]) + 0.2
    # restored model reproduces the logged accuracy
    model = run.load_model()
    from workbench.tasks.modular import build_task
    task = build_task(run.config["task"])
    acc = (model(task.test_x).argmax(-1) == task.test_y).double().mean().item()
    assert acc == pytest.approx(float(m.test_acc.dropna("step")[-1]), abs=1e-9)


def test_paper_qualitative_order(run):
    m = run.metrics()
    tr = m[["train_acc", "test_acc", "test_loss"]].dropna("step")
    t_train = _first(tr, tr.train_acc >= 0.99)
    t_test = _first(tr, tr.test_acc >= 0.95)
    assert t_train is not None and t_test is not None
    assert t_train < t_test  # 1. train accuracy saturates first (memorization)
    pr = m[["restricted_loss", "excluded_loss", "weight_norm"]].dropna("step")
    # 2. restricted loss falls (below half of chance) before test loss does
    t_restr = _first(pr, pr.restricted_loss < 0.5 * math.log(31))
    t_testloss = _first(tr, tr.test_loss < 0.5 * math.log(31))
    assert t_restr is not None and t_testloss is not None and t_restr < t_testloss
    # 3. phases found in order, and weight norm falls during cleanup
    b = run.attrs["phases"]["boundaries"]
    assert b["t1"] is not None and b["t2"] is not None and b["t3"] is not None
    assert b["t1"] < b["t2"] < b["t3"]
    w = pr.weight_norm
    assert float(w.sel(step=b["t3"], method="nearest")) < float(w.sel(step=b["t2"], method="nearest"))


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="optimizer"):
        GrokkingConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="prime"):
        GrokkingConfig(p=30)
    with pytest.raises(ValueError, match="unknown grokking config"):
        train_grokking({"p": 31, "nope": 1}, RunStore(tmp_path))


@pytest.mark.parametrize("mode", ["grokfast-ema", "grokfast-ma"])
def test_grokfast_run_resumes_bit_for_bit(tmp_path, mode):
    """Kill-and-resume through the RunStore checkpoint gives the same metrics as one straight run."""
    from workbench.registry import build_model
    from workbench.train import fit

    cfg = GrokkingConfig(p=13, frac=0.5, d_model=16, d_head=4, d_mlp=32, optimizer=mode, gf_window=3, steps=20)
    store = RunStore(tmp_path)

    def train(run, steps):
        torch.manual_seed(0)
        model = build_model(cfg.model_config())
        return fit(model, cfg.task(), cfg.make_optimizer(model), steps, run=run, eval_every=5,
                   checkpoint_every=5, lr_warmup=cfg.warmup, progress=False)

    straight = store.create({"case": "straight", "mode": mode})
    train(straight, 20)
    resumed = store.create({"case": "resumed", "mode": mode})
    train(resumed, 10)  # "killed" after the step-10 checkpoint
    ckpt = resumed.load_checkpoint()
    assert ckpt["optimizer"]["grokfast"]["count"] == 10  # the filter state is in the checkpoint
    train(resumed, 20)  # a fresh model/optimizer: everything must come from the checkpoint
    a, b = straight.metrics(), resumed.metrics()
    np.testing.assert_array_equal(a.step.values, b.step.values)
    for var in ("train_loss", "test_loss", "test_acc"):
        np.testing.assert_array_equal(a[var].values, b[var].values)


def test_mlp_seed_gives_the_weights_of_the_old_global_seed_path():
    torch.manual_seed(5)  # the old code path: global RNG seeded, then the plain layers built in order
    old = [nn.Embedding(24, 8), nn.Linear(16, 32), nn.Linear(32, 23)]
    before = torch.get_rng_state()
    model = MLP(23, d_embed=8, d_hidden=32, seed=5)
    assert torch.equal(before, torch.get_rng_state())
    new = [model.embed, model.hidden, model.unembed]
    for a, b in zip(old, new):
        for (name, x), y in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(x, y), name


def test_run_entry_points_never_touch_the_global_rng(tmp_path):
    """Runs draw from their own generators, so runs in threads of one process cannot interleave."""
    config = ModularConfig(p=11, d_embed=8, d_hidden=16, steps=4, checkpoint_every=2, trajectory_every=2)
    before = torch.get_rng_state()
    run = train_modular(config, RunStore(tmp_path / "a"), progress=False)
    grok = train_grokking(GrokkingConfig(p=11, d_model=8, n_heads=2, d_head=4, d_mlp=16, steps=4, probe_every=2,
                                         checkpoint_every=2, trajectory_every=2), tmp_path / "a", progress=False)
    assert torch.equal(before, torch.get_rng_state()) and grok.state["status"] == "done"
    torch.manual_seed(123)  # a disturbed global RNG changes nothing
    again = train_modular(config, RunStore(tmp_path / "b"), progress=False)
    np.testing.assert_array_equal(run.metrics().train_loss.values, again.metrics().train_loss.values)
