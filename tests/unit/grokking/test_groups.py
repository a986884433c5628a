"""Finite groups, words and the groups run: group axioms, word semantics, a quick run that groks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.grokking import excluded_loss, key_frequencies, restricted_loss
from workbench.grokking.fourier import embedding_fourier_norms
from workbench.grokking.groups_measures import (
    irrep_concentration,
    irrep_energy,
    irrep_excluded_loss,
    irrep_restricted_loss,
    key_irreps,
    neuron_key_irreps,
)
from workbench.grokking.groups_run import GroupsConfig, train_groups
from workbench.grokking.li2 import Li2MLP
from workbench.store import RunStore
from workbench.tasks.groups import (
    GroupTask,
    build_group_task,
    evaluate_word,
    group_from_name,
    parse_word,
)
from workbench.tasks.modular import ModularTask

ORDERS = {"Z7": 7, "Z2xZ4": 8, "D4": 8, "D5": 10, "S3": 6, "S4": 24, "S5": 120, "A4": 12, "A5": 60, "Q8": 8}


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_orders_identity_inverse_and_abelian(name):
    G = group_from_name(name)
    assert G.order == ORDERS[name]
    n = np.arange(G.order)
    assert np.array_equal(G.table[n, G.inverse], np.zeros(G.order, dtype=int))
    assert G.is_abelian() == (name in ("Z7", "Z2xZ4"))
    assert np.array_equal(G.table[G.table, :], G.table[:, G.table])  # associativity


def test_presentations():
    D = group_from_name("D5")
    r, s = D.index("r1"), D.index("s")
    assert D.table[D.table[s, r], s] == D.inverse[r]  # s r s = r⁻¹
    assert D.power(5)[r] == 0 and D.power(2)[s] == 0
    Q = group_from_name("Q8")
    i, j, k, m1 = (Q.index(x) for x in ("i", "j", "k", "-1"))
    assert Q.power(2)[i] == Q.power(2)[j] == Q.power(2)[k] == Q.table[Q.table[i, j], k] == m1
    S = group_from_name("S3")  # (σ τ)(x) = σ(τ(x)): (12)(23) = (123) → one-line "231"
    assert S.elements[S.table[S.index("213"), S.index("132")]] == "231"


def test_parse_word():
    assert parse_word("aba⁻¹") == parse_word("aba^-1") == parse_word("abA") == (("a", 1), ("b", 1), ("a", -1))
    assert parse_word("a²b") == parse_word("aab") == parse_word("a^2b") == (("a", 2), ("b", 1))
    assert parse_word("abB") == (("a", 1),)
    for bad in ("", "ab c", "aA", "x"):
        with pytest.raises(ValueError):
            parse_word(bad)


def test_words_on_groups():
    p = 11
    for word, op in (("ab", "add"), ("aB", "sub")):
        _, y = ModularTask(p, op, 0.5).all_pairs()
        assert np.array_equal(evaluate_word(group_from_name(f"Z{p}"), word).reshape(-1), y.numpy())
    G = group_from_name("S4")
    a, b = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
    assert np.array_equal(evaluate_word(G, "ab"), G.table)
    assert np.array_equal(evaluate_word(G, "aba^-1"), G.table[G.table[a, b], G.inverse[a]])
    assert np.array_equal(evaluate_word(G, "a2b"), G.table[G.table[a, a], b])
    b8 = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")[1]
    assert np.array_equal(evaluate_word(group_from_name("Z2xZ4"), "aba^-1"), b8)  # abelian: aba⁻¹ = b


def test_group_task_split_and_config():
    t = GroupTask("D5", "ab", frac=0.6, seed=3)
    assert len(t.train_x) == 60 and len(t.test_x) == 40 and t.vocab_size == 11 and t.p == 10
    assert (t.train_x[:, 2] == 10).all()
    x, y = t.all_pairs()
    assert x.shape == (100, 3) and torch.equal(y.reshape(10, 10), torch.from_numpy(t.labels()))
    rows = {tuple(r) for r in torch.cat([t.train_x, t.test_x]).tolist()}
    assert len(rows) == 100
    u = build_group_task(t.config())
    assert torch.equal(u.train_x, t.train_x) and torch.equal(u.test_y, t.test_y)
    assert not torch.equal(GroupTask("D5", "ab", 0.6, seed=4).train_x, t.train_x)
    for kwargs in ({"group": "S6"}, {"frac": 1.0}, {"word": "c"}, {"group": "Z10x"}):
        with pytest.raises(ValueError):
            GroupTask(**kwargs)


def test_measures_equal_fourier_measures_on_zp():
    p = 23
    g = torch.Generator().manual_seed(1)
    t = torch.arange(p, dtype=torch.float64)
    W = 0.05 * torch.randn(p + 1, 12, generator=g, dtype=torch.float64)
    for i, k in enumerate([3, 8]):
        W[:p, 2 * i] += 3 * torch.cos(2 * np.pi * k * t / p)
        W[:p, 2 * i + 1] += 3 * torch.sin(2 * np.pi * k * t / p)
    E = irrep_energy(W, f"Z{p}")
    np.testing.assert_allclose(E.values, embedding_fourier_norms(W, p=p).values ** 2, rtol=1e-10)
    assert [int(k) for k in key_irreps(W, f"Z{p}")] == key_frequencies(W, p=p) == [3, 8]
    assert key_irreps(torch.randn(p, 128, generator=g), f"Z{p}") == [] == key_frequencies(torch.randn(p, 128), p=p)
    L = torch.randn(p, p, p, generator=g, dtype=torch.float64)
    pairs = torch.randint(0, p, (50, 2), generator=g)
    for word, op in (("ab", "add"), ("aB", "sub")):
        assert float(irrep_restricted_loss(L, f"Z{p}", ["3", "8"], word)) == pytest.approx(
            float(restricted_loss(L, [3, 8], op=op)), rel=1e-10)
        assert float(irrep_excluded_loss(L, f"Z{p}", ["3"], word, pairs=pairs)) == pytest.approx(
            float(excluded_loss(L, [3], pairs=pairs, op=op)), rel=1e-10)


def test_planted_irrep_logits_restricted_loss():
    """Logits Σ_ρ d_ρ χ_ρ(a b c⁻¹) (Chughtai et al.'s circuit) live in the key classes: removing them
    leaves nothing; keeping them keeps everything."""
    from workbench.grokking.irreps import irreps

    G = group_from_name("S4")
    R = irreps(G)
    a, b, c = np.meshgrid(*(np.arange(24),) * 3, indexing="ij")
    g = G.table[G.table[a, b], G.inverse[c]]
    chi = R.characters().real
    L = 3.0 * sum(d * chi[i][g] for i, d in enumerate(R.dims) if R.labels[i] in ("3a", "3b"))
    assert float(irrep_restricted_loss(L, G, ["3a", "3b"])) < 0.01
    assert float(irrep_excluded_loss(L, G, ["3a", "3b"])) == pytest.approx(np.log(24), rel=1e-6)


def test_neuron_key_irreps_on_planted_and_random():
    G = group_from_name("D5")
    model = Li2MLP(10, 64, seed=0)
    assert neuron_key_irreps(model, G) == []  # random neurons are not selective
    from workbench.grokking.irreps import irrep_basis

    B = irrep_basis(G)
    rows = torch.from_numpy(B.values[B.irrep.values == "2a"])
    with torch.no_grad():  # every neuron on class 2a, in both slots
        model.W.weight.copy_(torch.randn(64, 2, 4, generator=torch.Generator().manual_seed(0)).double()
                             .matmul(rows).reshape(64, 20).float())
    c = irrep_concentration(model, G)
    assert (c.best_irrep == "2a").all() and float(c.concentration.min()) > 0.999
    assert neuron_key_irreps(model, G) == ["2a"]


@pytest.mark.slow
def test_quick_d5_run_groks_on_selective_neurons(tmp_path):
    config = GroupsConfig(group="D5", frac=0.8, steps=800, lr=1e-2, probe_every=100, checkpoint_every=400,
                          trajectory_every=0)
    run = train_groups(config, RunStore(tmp_path), progress=False)
    m, probe = run.metrics(), run.metrics("groups")
    assert float(m.test_acc[-1]) >= 0.95 and float(m.train_acc[-1]) == 1.0
    keys = run.attrs["key_irreps"]
    assert keys and set(keys) <= {"1b", "2a", "2b"}
    assert run.attrs["key_irrep_fraction"] >= 0.9  # the key classes hold the non-trivial embedding energy
    E = irrep_energy(run.load_model(), "D5")
    assert float(E.sel(irrep="1")) < 0.05 * float(E.sum())  # the trivial class is cleaned up
    assert float(probe.selective_share[-1]) >= 0.8 > float(probe.selective_share[0])
    assert float(probe.mean_concentration[-1]) >= 0.85
    assert float(probe.gf_alignment.max()) > 0.3 > abs(float(probe.gf_alignment[0]))  # G_F over training
    assert run.attrs["li2_stages"]["boundaries"]["t1"] is not None


def test_sweep_point_over_group_frac_optimizer(tmp_path):
    """``workbench sweep groups --grid group=S3,D4 --grid optimizer=adamw,muon ...`` trains points like this one."""
    from workbench.sweep.execute import run_point
    from workbench.sweep.tasks import get_task

    params = {"group": "S3", "frac": 0.8, "optimizer": "muon", "steps": 20, "hidden": 32, "probe_every": 10,
              "checkpoint_every": 10, "trajectory_every": 0}
    out = run_point(get_task("groups"), params, str(tmp_path))
    assert out["action"] == "trained" and out["final_step"] == 20.0 and 0 <= out["final_test_acc"] <= 1
    assert run_point(get_task("groups"), params, str(tmp_path))["action"] == "skipped"  # idempotent by run id
