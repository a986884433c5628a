"""Grokfast: filter formulas against the reference algorithm, and exact checkpoint/resume."""
from __future__ import annotations

from collections import deque

import pytest
import torch

from workbench.optim.grokfast import Grokfast
from workbench.serialization import decode_state, encode_state


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


def _train(model, opt, steps, gen):
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("mode", ["ema", "ma"])
def test_state_survives_checkpoint_resume(mode):
    def make():
        torch.manual_seed(1)
        m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        return m, Grokfast(torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=1.0), mode=mode, window=4)

    m1, o1 = make()
    _train(m1, o1, 20, torch.Generator().manual_seed(0))
    m2, o2 = make()
    gen = torch.Generator().manual_seed(0)
    _train(m2, o2, 9, gen)
    tensors: dict = {}
    skeleton = encode_state(o2.state_dict(), tensors)  # the RunStore's pickle-free format
    model_state = {k: v.clone() for k, v in m2.state_dict().items()}
    m3, o3 = make()
    m3.load_state_dict(model_state)
    o3.load_state_dict(decode_state(skeleton, tensors))
    _train(m3, o3, 11, gen)
    for (n, a), b in zip(m1.state_dict().items(), m3.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=n)
    # a wrapper without the filter state would diverge: the state is really needed
    m4, o4 = make()
    m4.load_state_dict(model_state)
    o4.optimizer.load_state_dict(decode_state(skeleton, tensors)["optimizer"])
    _train(m4, o4, 11, torch.Generator().manual_seed(0))
    assert any(not torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m4.state_dict().values()))


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
