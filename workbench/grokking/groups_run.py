"""The finite-group run behind ``workbench train groups``: a word task, the Li² model or the MLP, irrep probes.

A validated flat config → :class:`~workbench.tasks.groups.GroupTask`, model, optimizer (AdamW,
Muon or Grokfast-wrapped AdamW), :func:`workbench.train.fit` with :func:`group_probe` (the Li² model:
:func:`~workbench.grokking.li2_stages.li2_probe`, which adds the ``G_F`` structure) every
``probe_every`` steps; at the end the run's attrs get the final ``key_irreps``
(:func:`run_key_irreps`: from the neurons), their ``key_irrep_fraction`` of the non-trivial
embedding energy, and ``embedding_key_irreps`` (:func:`key_irreps`).

Defaults (measured, docs/grokking.md "Groups and irreps"): S_4, the product ``ab``, train fraction 0.7 — above the
critical fraction ``2.7482 ln|G| / |G| · d_max / 2 = 0.55`` of the Li² reference code, below which
a fraction of 0.5 does not generalise in 3,000 steps —, the Li² model (K = 512, x²), full batch,
AdamW lr 3e-3, weight decay 1: test accuracy passes 95 % near step 550.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from workbench.grokking.groups_measures import group_probe, irrep_energy, key_irreps, run_key_irreps
from workbench.grokking.li2 import Li2MLP
from workbench.grokking.li2_stages import detect_li2_stages, li2_probe
from workbench.grokking.mlp import MLP
from workbench.optim.grokfast import Grokfast
from workbench.optim.muon import Muon
from workbench.store import Run, RunStore
from workbench.tasks.groups import GroupTask, build_group_task
from workbench.train import default_optimizer, fit
from workbench.validation import check_range

OPTIMIZERS = ("adamw", "muon", "grokfast-ema", "grokfast-ma")
MODELS = ("li2", "mlp")


@dataclass
class GroupsConfig:
    """Hyperparameters of a finite-group run."""

    group: str = "S4"          # Z<n>, D<n>, S<n>, A<n> (n <= 5), Q8, products GxH
    word: str = "ab"           # the operation: a word in a, b (a^-1, a², A = a⁻¹, ...)
    frac: float = 0.7          # train fraction of all |G|² pairs
    model: str = "li2"         # li2 (one-hot → W → σ → V) | mlp (embedding MLP)
    hidden: int = 512          # hidden neurons K
    activation: str = "sqr"    # li2 only: sqr | relu
    d_embed: int = 128         # mlp only
    optimizer: str = "adamw"   # adamw | muon | grokfast-ema | grokfast-ma
    lr: float = 3e-3           # AdamW learning rate (with muon: for the non-2-D parameters)
    wd: float = 1.0            # AdamW decoupled weight decay
    muon_lr: float = 0.02      # Muon learning rate (Jordan's default)
    muon_wd: float = 0.1       # Muon decoupled weight decay
    steps: int = 1500
    batch_size: int | None = None  # None = full batch
    seed: int = 0
    eval_every: int = 10
    probe_every: int = 50
    checkpoint_every: int = 500
    trajectory_every: int = 50

    def __post_init__(self) -> None:
        for name in ("lr", "muon_lr"):
            check_range(getattr(self, name), name, 0.0, low_open=True)
        for name in ("wd", "muon_wd", "trajectory_every"):
            check_range(getattr(self, name), name, 0)
        for name in ("steps", "hidden", "d_embed", "eval_every", "probe_every", "checkpoint_every"):
            check_range(getattr(self, name), name, 1)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.batch_size is not None:
            check_range(self.batch_size, "batch_size", 1)
        self.task()  # validates group, word and frac now, not mid-run

    @classmethod
    def from_dict(cls, d: dict) -> GroupsConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown groups config key(s) {unknown}")
        return cls(**d)

    def task(self) -> GroupTask:
        return GroupTask(group=self.group, word=self.word, frac=self.frac, seed=self.seed)

    def model_config(self) -> dict:
        n = self.task().p
        if self.model == "li2":
            return {"name": "li2", "n": n, "hidden": self.hidden, "activation": self.activation}
        return {"name": "mlp", "p": n, "d_embed": self.d_embed, "d_hidden": self.hidden}

    def to_run_config(self) -> dict:
        return {"kind": "groups", "task": self.task().config(), "model": self.model_config(), "train": asdict(self)}

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer | Grokfast:
        if self.optimizer == "muon":
            return Muon(model.parameters(), lr=self.muon_lr, weight_decay=self.muon_wd, adamw_lr=self.lr,
                        adamw_weight_decay=self.wd)
        opt = default_optimizer(model, lr=self.lr, weight_decay=self.wd)
        return opt if self.optimizer == "adamw" else Grokfast(opt, mode=self.optimizer.split("-")[1])


def build_groups_model(model_config: dict, seed: int) -> torch.nn.Module:
    """The Li² model or the MLP of a groups run's ``model`` config, initial weights from ``seed``."""
    kwargs = {k: v for k, v in model_config.items() if k != "name"}
    if model_config["name"] == "li2":
        return Li2MLP(**kwargs, seed=seed)
    return MLP(**kwargs, seed=seed)


def _store(store: RunStore | str | os.PathLike | None) -> RunStore:
    return store if isinstance(store, RunStore) else RunStore(Path(store) if store is not None else None)


def train_groups(config: GroupsConfig | dict, store: RunStore | str | os.PathLike | None = None, *,
                 resume: bool = True, progress: bool = True) -> Run:
    """Create (or resume) the run for ``config`` and train it to ``config.steps``.

    Returns
    -------
    The :class:`Run`: ``metrics()`` has ``train_loss, test_loss, train_acc, test_acc`` and the
    probe's ``irrep_energy, key_irrep_fraction, restricted_loss, excluded_loss, ...``; ``attrs``
    has ``key_irreps`` (final model, :func:`run_key_irreps` rule), ``key_irrep_fraction`` and, for the
    Li² model (whose probe adds the ``G_F`` structure, :func:`~workbench.grokking.li2_stages.li2_probe`),
    ``li2_stages`` (:func:`~workbench.grokking.li2_stages.detect_li2_stages`).
    """
    config = GroupsConfig.from_dict(config) if isinstance(config, dict) else config
    if not isinstance(config, GroupsConfig):
        raise TypeError(f"config must be a GroupsConfig or dict, got {type(config).__name__}")
    run = _store(store).create(config.to_run_config())
    task = build_group_task(run.config["task"])
    model = build_groups_model(run.config["model"], config.seed)
    probe = li2_probe if isinstance(model, Li2MLP) else group_probe
    fit(model, task, config.make_optimizer(model), config.steps, run=run,
        probes={"groups": (probe, config.probe_every)}, eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every, trajectory_every=config.trajectory_every,
        batch_size=config.batch_size, seed=config.seed, resume=resume, progress=progress)
    keys = run_key_irreps(model, task.G)
    E = irrep_energy(model, task.G).isel(irrep=slice(1, None))
    frac = float(E.sel(irrep=keys).sum() / E.sum()) if keys else 0.0
    attrs = {"key_irreps": keys, "key_irrep_fraction": frac, "embedding_key_irreps": key_irreps(model, task.G),
             "group": task.group, "word": task.word}
    if isinstance(model, Li2MLP):
        attrs["li2_stages"] = detect_li2_stages(run.metrics("groups"))
    run.set_attrs(attrs)
    return run
