"""Embedded CMD training: percent=0 is plain training; embedding follows the reference code's schedule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.grokking.mlp import MLP
from workbench.koopman import embedded_cmd_train
from workbench.tasks.modular import ModularTask
from workbench.train import default_optimizer

TASK = ModularTask(p=11, frac=0.6)


def test_percent_zero_is_plain_full_batch_training():
    model, plain = MLP(11, 8, 16, seed=0), MLP(11, 8, 16, seed=0)
    ds = embedded_cmd_train(model, TASK, default_optimizer(model, lr=1e-2), 40, percent=0.0, eval_every=20)
    opt = default_optimizer(plain, lr=1e-2)
    for _ in range(40):
        loss = F.cross_entropy(plain(TASK.train_x), TASK.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(model.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert ds.step.values.tolist() == [20, 40] and (ds.embedded_fraction == 0).all()
    assert (ds.embedded_at == -1).all() and ds.sizes["mode"] == 0


def test_embedding_schedule_and_references():
    model = MLP(11, 8, 16, seed=0)
    n = sum(q.numel() for q in model.parameters())
    block, warmup, window, pct, steps = 5, 5, 4, 20.0, 300
    ds = embedded_cmd_train(model, TASK, default_optimizer(model, lr=1e-2), steps, n_modes=3, n_samples=100,
                            block=block, warmup=warmup, window=window, percent=pct, relative=True, eval_every=block)
    refs = ds.reference_param.values
    assert 1 <= refs.size <= 3 and (ds.embedded_at.values[refs] == -1).all()  # references stay free
    events = np.arange((warmup + window) * block, steps + 1, window * block)
    expected, done = [], 0
    for _ in events:  # ceil(20 % of the free parameters) per event, references excluded
        done += math.ceil((n - done - refs.size) * pct / 100)
        expected.append(done)
    counts = [(ds.embedded_at.values == e).sum() for e in events]
    np.testing.assert_array_equal(np.cumsum(counts), expected)
    np.testing.assert_allclose(ds.embedded_fraction.sel(step=events).values, np.array(expected) / n)
    assert np.isfinite(ds.test_loss).all()


def test_bad_input():
    model = MLP(11, 8, 16, seed=0)
    with pytest.raises(ValueError, match="percent"):
        embedded_cmd_train(model, TASK, default_optimizer(model), 10, percent=100)
    with pytest.raises(ValueError, match="warmup"):
        embedded_cmd_train(model, TASK, default_optimizer(model), 10, warmup=2)


def test_absolute_percentage_embeds_a_fixed_count_until_none_is_free():
    model = MLP(11, 8, 16, seed=0)
    n = sum(q.numel() for q in model.parameters())
    ds = embedded_cmd_train(model, TASK, default_optimizer(model, lr=1e-2), 200, n_modes=3, n_samples=100,
                            block=5, warmup=5, window=4, percent=30.0, eval_every=5)
    events = np.arange(45, 201, 20)
    counts = [(ds.embedded_at.values == e).sum() for e in events]
    free = n - ds.reference_param.size
    expected = [min(math.ceil(0.3 * n), free - math.ceil(0.3 * n) * i) for i in range(len(events))]
    np.testing.assert_array_equal(counts, np.maximum(expected, 0))
