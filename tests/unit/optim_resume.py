"""Shared check for optimizers that carry state (Grokfast, Muon): a resume from the run store's
pickle-free format continues bit for bit, and the state is really needed."""
from __future__ import annotations

from collections.abc import Callable

import torch

from workbench.serialization import decode_state, encode_state


def train_steps(model: torch.nn.Module, opt, steps: int, gen: torch.Generator) -> None:
    """``steps`` of regression onto x.sum() with batches drawn from ``gen``."""
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def assert_exact_resume(make: Callable[[], tuple[torch.nn.Module, object]],
                        restore_without_state: Callable[[object, dict], None]) -> None:
    """20 steps straight equal 9 steps, a save through ``encode_state``, a restore into a fresh
    ``make()`` and 11 more steps, to the bit; restoring with ``restore_without_state(opt, saved)``
    (the state the optimizer adds left out) instead makes the run differ."""
    m1, o1 = make()
    train_steps(m1, o1, 20, torch.Generator().manual_seed(0))
    m2, o2 = make()
    gen = torch.Generator().manual_seed(0)
    train_steps(m2, o2, 9, gen)
    tensors: dict = {}
    skeleton = encode_state(o2.state_dict(), tensors)  # the RunStore's pickle-free format
    model_state = {k: v.clone() for k, v in m2.state_dict().items()}
    m3, o3 = make()
    m3.load_state_dict(model_state)
    o3.load_state_dict(decode_state(skeleton, tensors))
    train_steps(m3, o3, 11, gen)
    for (n, a), b in zip(m1.state_dict().items(), m3.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=n)
    m4, o4 = make()
    m4.load_state_dict(model_state)
    restore_without_state(o4, decode_state(skeleton, tensors))
    train_steps(m4, o4, 11, torch.Generator().manual_seed(0))
    assert any(not torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m4.state_dict().values()))
