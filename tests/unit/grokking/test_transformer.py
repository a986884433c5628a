"""Transformer: fast path == full computation, hook/cache API, registry, shapes and errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.grokking.transformer import Transformer, naive_logits
from workbench.registry import build_model, model_class


def _inputs(p: int, n: int | None = None, seed: int = 0) -> torch.Tensor:
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((p * p,), p)], 1)
    if n is not None:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]
    return x


@pytest.mark.parametrize("p", [113, 23])
def test_fast_path_matches_full_at_init_and_after_training(p):
    model = Transformer(p, seed=1)
    x = _inputs(p, n=min(p * p, 2000))
    y = (x[:, 0] + x[:, 1]) % p
    assert model.can_use_fast(x)
    torch.testing.assert_close(model.forward_fast(x), model.forward_full(x), atol=1e-5, rtol=1e-5)
    # after some (large-lr) training steps the weights are no longer at init scale
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    for _ in range(15):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    full = model.forward_full(x)
    assert full.abs().max() > 1.0
    torch.testing.assert_close(model.forward_fast(x), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(naive_logits(model, x), full, atol=1e-5, rtol=1e-5)


def test_fast_path_float64_exact_and_same_gradients():
    model = Transformer(13, seed=0).double()
    x = _inputs(13)
    y = (x[:, 0] + x[:, 1]) % 13
    torch.testing.assert_close(model.forward_fast(x), model.forward_full(x), atol=1e-12, rtol=1e-12)
    grads = []
    for fn in (model.forward_fast, model.forward_full):
        model.zero_grad()
        F.cross_entropy(fn(x), y).backward()
        grads.append({n: q.grad.clone() for n, q in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-10, rtol=1e-8, msg=name)


def test_full_path_matches_independent_reference():
    # independent re-implementation of Nanda et al.'s forward pass (per-head loops, explicit softmax)
    p = 7
    model = Transformer(p, d_model=16, n_heads=2, d_head=8, d_mlp=24, seed=3).double()
    x = _inputs(p)
    att, mlp = model.blocks[0].attn, model.blocks[0].mlp
    resid = model.W_E[x] + model.W_pos
    out = torch.zeros_like(resid)
    for h in range(2):
        q, k, v = resid @ att.W_Q[h], resid @ att.W_K[h], resid @ att.W_V[h]
        s = q @ k.transpose(1, 2) / math.sqrt(8)
        s = s + torch.triu(torch.full((3, 3), -1e30, dtype=s.dtype), 1)
        out = out + (torch.softmax(s, -1) @ v) @ att.W_O[h]
    resid = resid + out
    resid = resid + torch.relu(resid @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
    torch.testing.assert_close(model(x), resid[:, -1] @ model.W_U, atol=1e-12, rtol=1e-12)


def test_run_with_cache_names_shapes_and_hooks_are_removed():
    p = 11
    model = Transformer(p, seed=0)
    x = _inputs(p, n=20)
    logits, cache = model.run_with_cache(x)
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)
    assert cache["hook_embed"].shape == (20, 3, 128)
    assert cache["blocks.0.attn.hook_pattern"].shape == (20, 4, 3, 3)
    assert cache["blocks.0.mlp.hook_post"].shape == (20, 3, 512)
    pat = cache["blocks.0.attn.hook_pattern"]
    torch.testing.assert_close(pat.sum(-1), torch.ones(20, 4, 3))
    assert float(pat[:, :, 0, 1:].abs().max()) == 0.0  # causal: position 0 sees only itself
    # the cached residual stream reproduces the logits
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"][:, -1] @ model.W_U, logits)
    assert not any(h._forward_hooks for h in model.hook_dict.values())
    # the fast path's neuron activations equal the cached ones (used by the Fourier probes)
    torch.testing.assert_close(model.neuron_acts_last(x), cache["blocks.0.mlp.hook_post"][:, -1], atol=1e-5, rtol=1e-5)
    _, some = model.run_with_cache(x, names=lambda n: n.endswith("hook_pattern"))
    assert list(some) == ["blocks.0.attn.hook_pattern"]


def test_hooks_can_ablate_and_force_full_path():
    p = 11
    model = Transformer(p, seed=0)
    x = _inputs(p, n=30)
    with model.hooks([("blocks.0.mlp.hook_post", lambda act, name: torch.zeros_like(act))]):
        assert not model.can_use_fast(x)
        ablated = model(x)
    # with the MLP output zeroed, logits = (resid_mid + b_out) W_U
    _, cache = model.run_with_cache(x)
    expected = (cache["blocks.0.hook_resid_mid"][:, -1] + model.blocks[0].mlp.b_out) @ model.W_U
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=1e-5)
    assert model.can_use_fast(x)
    with pytest.raises(ValueError, match="unknown hook"), model.hooks([("nope", lambda a, n: a)]):
        pass


def test_registry_seed_and_errors():
    assert model_class("transformer") is Transformer
    m1 = build_model({"name": "transformer", "p": 7, "seed": 5})
    m2 = build_model({"name": "transformer", "p": 7, "seed": 5})
    torch.testing.assert_close(m1.W_E, m2.W_E)
    assert m1.W_logit.shape == (512, 7)
    with pytest.raises(ValueError, match="d_model"):
        Transformer(7, d_model=0)
    with pytest.raises(TypeError, match="integer token"):
        m1(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="shape"):
        m1(torch.zeros(2, 5, dtype=torch.long))
    # mixed last tokens: falls back to the full computation, still correct
    x = torch.tensor([[1, 2, 7], [3, 4, 6]])
    assert not m1.can_use_fast(x)
    torch.testing.assert_close(m1(x), m1.forward_full(x))


def test_seed_gives_the_global_seed_weights_without_touching_the_global_rng():
    """``seed=`` draws from its own generator, in the order of the old ``torch.manual_seed`` path."""
    sizes = {"p": 13, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32}
    torch.manual_seed(7)
    old = Transformer(**sizes)  # the old code path: global RNG seeded, then the model built
    before = torch.get_rng_state()
    seeded = Transformer(**sizes, seed=7)
    assert torch.equal(before, torch.get_rng_state())
    from_gen = Transformer(**sizes, generator=torch.Generator().manual_seed(7))
    for name, value in old.state_dict().items():
        assert torch.equal(value, seeded.state_dict()[name]), name
        assert torch.equal(value, from_gen.state_dict()[name]), name
    with pytest.raises(ValueError, match="seed or generator"):
        Transformer(7, seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator"):
        Transformer(7, generator=1)
