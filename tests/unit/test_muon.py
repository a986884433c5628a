"""Muon: Newton–Schulz against the polar factor, the update against Jordan's reference, exact resume."""
from __future__ import annotations

import pytest
import torch

from tests.unit.optim_resume import assert_exact_resume
from workbench.optim.muon import Muon, muon_param_groups, newton_schulz


def _polar(G: torch.Tensor) -> torch.Tensor:
    U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    return U @ Vh


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() * b.double()).sum() / (a.double().norm() * b.double().norm()))


@pytest.mark.parametrize("shape", [(64, 32), (32, 64)])
def test_newton_schulz_is_close_to_the_polar_factor(shape):
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        G = torch.randn(*shape, generator=gen)
        O = newton_schulz(G)
        assert O.shape == G.shape and O.dtype == G.dtype
        assert _cosine(O, _polar(G)) >= 0.98  # 0.987 in Jordan's measurement (SEED-SYSTEMS.md)
        s = torch.linalg.svdvals(O.double())
        assert 0.5 < float(s.min()) and float(s.max()) < 1.25  # pushed towards 1, not exactly 1
        U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
        D = U.T @ O.double() @ Vh.T  # an odd polynomial of G: same singular vectors, D diagonal
        assert float((D - torch.diag(torch.diagonal(D))).abs().max()) < 1e-4
    stacked = torch.randn(3, 64, 32, generator=gen)  # a stack of matrices: each on its own
    for i in range(3):
        torch.testing.assert_close(newton_schulz(stacked)[i], newton_schulz(stacked[i]), atol=1e-6, rtol=1e-5)


def _reference_muon(W, grads, lr, beta, wd):
    # Jordan's muon_update (github.com/KellerJordan/Muon): momentum.lerp_(g, 1-β); Nesterov g.lerp_(m, β);
    # zeropower_via_newtonschulz5; × max(1, rows/cols)**0.5; p.mul_(1 - lr·wd); p.add_(update, alpha=-lr)
    m = torch.zeros_like(W)
    for g in grads:
        m = m + (1 - beta) * (g - m)
        u = g + beta * (m - g)
        X = u / (u.norm() + 1e-7)
        X = X.T if W.shape[0] > W.shape[1] else X
        for _ in range(5):
            A = X @ X.T
            X = 3.4445 * X + (-4.7750 * A + 2.0315 * A @ A) @ X
        X = X.T if W.shape[0] > W.shape[1] else X
        W = W * (1 - lr * wd) - lr * X * max(1.0, W.shape[0] / W.shape[1]) ** 0.5
    return W


def test_update_equals_reference_and_adamw_part_equals_torch_adamw():
    gen = torch.Generator().manual_seed(1)
    W0, b0 = torch.randn(48, 16, generator=gen), torch.randn(16, generator=gen)
    grads = [(torch.randn(48, 16, generator=gen), torch.randn(16, generator=gen)) for _ in range(6)]
    W, b = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(b0.clone())
    opt = Muon([W, b], lr=0.02, momentum=0.95, weight_decay=0.1, adamw_lr=1e-2, adamw_weight_decay=0.5)
    assert [g["use_muon"] for g in opt.param_groups] == [True, False]
    b_ref = torch.nn.Parameter(b0.clone())
    ref = torch.optim.AdamW([b_ref], lr=1e-2, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.5)
    for gW, gb in grads:
        W.grad, b.grad, b_ref.grad = gW.clone(), gb.clone(), gb.clone()
        opt.step()
        ref.step()
    torch.testing.assert_close(W.detach(), _reference_muon(W0, [g for g, _ in grads], 0.02, 0.95, 0.1),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.detach(), b_ref.detach(), atol=1e-6, rtol=1e-6)


def test_param_groups_put_embeddings_and_biases_on_adamw():
    from workbench.grokking import Transformer

    model = Transformer(p=7, d_model=16, n_heads=2, d_head=8, d_mlp=32, seed=0)
    muon, adamw = muon_param_groups(model)
    names = {id(q): n for n, q in model.named_parameters()}
    assert sorted(names[id(q)] for q in muon["params"]) == sorted(
        ["blocks.0.attn.W_Q", "blocks.0.attn.W_K", "blocks.0.attn.W_V", "blocks.0.attn.W_O",
         "blocks.0.mlp.W_in", "blocks.0.mlp.W_out"])
    assert {"W_E", "W_pos", "W_U", "blocks.0.mlp.b_in"} <= {names[id(q)] for q in adamw["params"]}
    opt = Muon(muon_param_groups(model))
    x = torch.randint(0, 7, (10, 3))
    model(x).sum().backward()
    opt.step()  # 3-D attention weights: one orthogonalised matrix per head


def test_state_survives_checkpoint_resume():
    def make():
        m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        with torch.no_grad():
            for q, v in zip(m.parameters(), torch.randn(4 * 8 + 8 + 8 + 1, generator=torch.Generator().manual_seed(2))
                            .split([32, 8, 8, 1])):
                q.copy_(v.reshape(q.shape))
        return m, Muon(m.parameters(), lr=0.02, weight_decay=0.1, adamw_lr=1e-2, adamw_weight_decay=0.1)

    assert_exact_resume(make, lambda opt, saved: None)  # without the momentum buffers the run diverges


def test_errors():
    w = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        Muon([])
    with pytest.raises(ValueError, match="lr"):
        Muon([w], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        Muon([w], momentum=1.0)
    opt = Muon([{"params": [w], "use_muon": True}])
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match=">= 2 dims"):
        opt.step()
    with pytest.raises(ValueError, match="matrix"):
        newton_schulz(torch.ones(3))


def test_cli_trains_grokking_with_muon(tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.grokking import GrokkingConfig
    from workbench.store import RunStore

    args = ["train", "grokking", "--p", "13", "--frac", "0.5", "--steps", "30", "--d-model", "16", "--d-mlp", "32",
            "--optimizer", "muon", "--muon-lr", "0.03", "--probe-every", "10", "--data", str(tmp_path), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = RunStore(tmp_path).open(result.output.strip().splitlines()[-1].split("run_id: ")[1])
    assert run.config["train"]["optimizer"] == "muon" and run.config["train"]["muon_lr"] == 0.03
    assert float(run.metrics().train_loss[-1]) < float(run.metrics().train_loss[0])
    # runs of the other optimizers keep the ids they had before Muon existed
    assert "muon_lr" not in GrokkingConfig().to_run_config()["train"]
