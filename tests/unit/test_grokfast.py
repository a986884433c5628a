"""Grokfast: filter formulas against the reference algorithm, and exact checkpoint/resume."""
from __future__ import annotations

from collections import deque

import pytest
import torch

from tests.unit.optim_resume import assert_exact_resume
from workbench.optim.grokfast import Grokfast


def _ref_ema(grads, alpha, lamb):
    # Lee et al. 2024, Alg. 1 / ironjr/grokfast gradfilter_ema, on a list of gradient tensors
    out, mu = [], None
    for g in grads:
        mu = g.clone() if mu is None else mu * alpha + g * (1 - alpha)
        out.append(g + lamb * mu)
    return out


def _ref_ma(grads, window, lamb):
    # Lee et al. 2024, Alg. 2 / gradfilter_ma (warmup=True, mean filter)
    out, q = [], deque(maxlen=window)
    for g in grads:
        q.append(g)
        out.append(g + lamb * sum(q) / len(q) if len(q) == window else g.clone())
    return out


@pytest.mark.parametrize("mode", ["ema", "ma"])
def test_filtered_gradients_match_reference(mode):
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(12)]
    w = torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64))
    gf = Grokfast(torch.optim.SGD([w], lr=0.0), mode=mode, alpha=0.9, window=5)
    ref = _ref_ema(grads, 0.9, 2.0) if mode == "ema" else _ref_ma(grads, 5, 5.0)
    for g, r in zip(grads, ref):
        w.grad = g.clone()
        gf.step()
        torch.testing.assert_close(w.grad, r, atol=1e-12, rtol=1e-12)


def test_constant_gradient_is_amplified_by_one_plus_lambda():
    w = torch.nn.Parameter(torch.zeros(2))
    gf = Grokfast(torch.optim.SGD([w], lr=0.0), mode="ema", lamb=2.0)
    for _ in range(3):
        w.grad = torch.tensor([1.0, -2.0])
        gf.step()
    torch.testing.assert_close(w.grad, torch.tensor([3.0, -6.0]))


@pytest.mark.parametrize("mode", ["ema", "ma"])
def test_state_survives_checkpoint_resume(mode):
    def make():
        torch.manual_seed(1)
        m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        return m, Grokfast(torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=1.0), mode=mode, window=4)

    # a wrapper without the filter state (only the inner AdamW's) would diverge: the state is really needed
    assert_exact_resume(make, lambda opt, saved: opt.optimizer.load_state_dict(saved["optimizer"]))


def test_errors():
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="mode"):
        Grokfast(torch.optim.SGD([w], lr=0.1), mode="fft")
    with pytest.raises(TypeError, match="optimizer"):
        Grokfast([w])
    with pytest.raises(ValueError, match="alpha"):
        Grokfast(torch.optim.SGD([w], lr=0.1), alpha=1.0)
    ema = Grokfast(torch.optim.SGD([w], lr=0.1), mode="ema")
    with pytest.raises(ValueError, match="mode="):
        Grokfast(torch.optim.SGD([w], lr=0.1), mode="ma").load_state_dict(ema.state_dict())
