"""Training-loop overhead: ``fit`` (eval, logging to a RunStore, checkpoints, trajectory) vs a bare loop.

Workload: the demo task (MLP, a+b mod 97, 50% train, full batch). Both do the same updates; the
ratio bare/fit is the fraction of time spent on actual training (1.0 = no overhead).
"""
from __future__ import annotations

import tempfile

import torch

from benchmarks.harness import compare
from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.store import RunStore
from workbench.train import default_optimizer


def _bare_loop(config: ModularConfig) -> None:
    torch.manual_seed(config.seed)
    task = config.task()
    model = MLP(config.p, config.d_embed, config.d_hidden)
    opt = default_optimizer(model, lr=config.lr, weight_decay=config.wd)
    for _ in range(config.steps):
        loss = torch.nn.functional.cross_entropy(model(task.train_x).double(), task.train_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _fit(config: ModularConfig) -> None:
    with tempfile.TemporaryDirectory() as root:
        train_modular(config, RunStore(root), progress=False)


def run(quick: bool) -> list[dict]:
    config = ModularConfig(steps=20 if quick else 200)
    ms = lambda row: {**row, "notes": f"{1e3 * row['t_candidate_s'] / config.steps:.1f} ms/step through fit, "
                                      f"{1e3 * row['t_reference_s'] / config.steps:.1f} ms/step bare"}
    row = compare("training loop", f"MLP p={config.p} full batch, {config.steps} steps",
                  ("workbench.train.fit + RunStore", lambda: _fit(config)),
                  ("bare torch loop", lambda: _bare_loop(config)), repeats=3 if quick else 5)
    return [ms(row)]
