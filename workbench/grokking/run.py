"""The grokking run behind ``workbench train grokking``: Nanda et al.'s transformer + progress measures.

A validated flat config (nanoGPT style) → modular task, one-layer :class:`Transformer` (fast path),
AdamW, Grokfast-wrapped AdamW or Muon (hidden matrices; AdamW for embeddings and biases),
:func:`workbench.train.fit` with :func:`grokking_probe` every
``probe_every`` steps, checkpoints and parameter trajectories; at the end the run's attrs get the
final ``key_freqs`` and the ``phases`` (:func:`workbench.grokking.phases.detect_phases`).

Defaults are the paper's ([1], Sec. 3 / App. A): p = 113, a + b, train fraction 0.3, full batch,
AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), 10-step linear warm-up, 40,000 steps.

References
----------
.. [1] Nanda et al. (2023). Progress measures for grokking via mechanistic interpretability. arXiv:2301.05217.
.. [2] Lee et al. (2024). Grokfast: Accelerated Grokking by Amplifying Slow Gradients. arXiv:2405.20233.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import torch

from workbench.grokking.fourier import key_frequencies
from workbench.grokking.phases import detect_phases
from workbench.grokking.probe import grokking_probe
from workbench.grokking.transformer import Transformer
from workbench.optim.grokfast import Grokfast
from workbench.optim.muon import Muon, muon_param_groups
from workbench.store import Run, RunStore
from workbench.tasks.modular import ModularTask, build_task
from workbench.train import default_optimizer, fit
from workbench.validation import check_range

OPTIMIZERS = ("adamw", "grokfast-ema", "grokfast-ma", "muon")


@dataclass
class GrokkingConfig:
    """Hyperparameters of a grokking run (defaults: Nanda et al. 2023)."""

    p: int = 113            # prime modulus; vocabulary p + 1 ("=" is token p)
    op: str = "add"         # add | sub | mul | div | x2xyy2 (restricted/excluded loss: add, sub)
    frac: float = 0.3       # train fraction of all p² pairs
    d_model: int = 128
    n_heads: int = 4
    d_head: int | None = None  # None: d_model // n_heads (paper: 128 // 4 = 32)
    d_mlp: int = 512
    lr: float = 1e-3
    wd: float = 1.0         # AdamW (decoupled) weight decay
    beta1: float = 0.9
    beta2: float = 0.98     # paper: betas (0.9, 0.98)
    warmup: int = 10        # linear LR warm-up steps (paper: 10)
    steps: int = 40_000
    batch_size: int | None = None  # None = full batch (paper)
    optimizer: str = "adamw"       # adamw | grokfast-ema | grokfast-ma | muon
    gf_alpha: float = 0.98         # Grokfast EMA momentum (Lee et al. 2024 default)
    gf_lamb: float | None = None   # Grokfast λ; None = 2.0 (EMA) / 5.0 (MA)
    gf_window: int = 100           # Grokfast MA window
    muon_lr: float = 0.02          # Muon learning rate of the hidden matrices (Jordan's default)
    muon_wd: float = 0.5           # Muon decoupled weight decay: 0.05 (lr·wd = AdamW's 1e-3) memorises and stalls (docs/grokking.md)
    seed: int = 0                  # model init, data split and batch order
    eval_every: int = 10
    probe_every: int = 100
    probe_neurons: bool = True     # neuron frequency clusters in the probe (a full forward on p² inputs)
    checkpoint_every: int = 1000
    trajectory_every: int = 100

    def __post_init__(self) -> None:
        if self.d_head is None:
            self.d_head = self.d_model // self.n_heads
        check_range(self.lr, "lr", 0.0, low_open=True)
        check_range(self.muon_lr, "muon_lr", 0.0, low_open=True)
        check_range(self.wd, "wd", 0.0)
        check_range(self.muon_wd, "muon_wd", 0.0)
        check_range(self.steps, "steps", 1)
        check_range(self.warmup, "warmup", 0)
        for name in ("eval_every", "probe_every", "checkpoint_every"):
            check_range(getattr(self, name), name, 1)
        check_range(self.trajectory_every, "trajectory_every", 0)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.batch_size is not None:
            check_range(self.batch_size, "batch_size", 1)
        self.task()  # validates p (prime), op and frac now, not mid-run

    @classmethod
    def from_dict(cls, d: dict) -> GrokkingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown grokking config key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def task(self) -> ModularTask:
        return ModularTask(p=self.p, op=self.op, frac=self.frac, seed=self.seed)

    def model_config(self) -> dict:
        return {"name": "transformer", "p": self.p, "d_model": self.d_model, "n_heads": self.n_heads,
                "d_head": self.d_head, "d_mlp": self.d_mlp}

    def to_run_config(self) -> dict:
        train = asdict(self)
        if self.optimizer != "muon":  # runs recorded before Muon keep their ids
            del train["muon_lr"], train["muon_wd"]
        return {"kind": "grokking", "task": self.task().config(), "model": self.model_config(), "train": train}

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer | Grokfast:
        if self.optimizer == "muon":
            return Muon(muon_param_groups(model), lr=self.muon_lr, weight_decay=self.muon_wd, adamw_lr=self.lr,
                        adamw_betas=(self.beta1, self.beta2), adamw_weight_decay=self.wd)
        opt = default_optimizer(model, lr=self.lr, weight_decay=self.wd, betas=(self.beta1, self.beta2))
        if self.optimizer == "adamw":
            return opt
        return Grokfast(opt, mode=self.optimizer.split("-")[1], alpha=self.gf_alpha, lamb=self.gf_lamb,
                        window=self.gf_window)


def train_grokking(config: GrokkingConfig | dict, store: RunStore | str | os.PathLike | None = None, *,
                   data: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
                   probes: dict | None = None) -> Run:
    """Create (or resume) the run for ``config`` and train it to ``config.steps``.

    Parameters
    ----------
    config : a :class:`GrokkingConfig` or a dict of its fields.
    store, data : a :class:`RunStore` or a run-root directory (``data`` is an alias); default
        :func:`workbench.store.default_root`.
    probes : extra ``{name: (fn, every)}`` probes run beside the grokking probe (e.g. the spectrum
        lens' ``make_spectrum_probe()``); they observe the run and do not change its id.

    Returns
    -------
    The :class:`Run`; ``run.metrics()`` holds ``train_loss, test_loss, train_acc, test_acc`` and the
    probe's ``restricted_loss, excluded_loss, gini, weight_norm, key_freq_fraction, ...``;
    ``run.attrs`` holds ``key_freqs`` (final model, :func:`key_frequencies` rule) and ``phases``.
    """
    if isinstance(config, dict):
        config = GrokkingConfig.from_dict(config)
    if not isinstance(config, GrokkingConfig):
        raise TypeError(f"config must be a GrokkingConfig or dict, got {type(config).__name__}")
    if store is not None and data is not None:
        raise ValueError("pass either store or data, not both")
    root = store if store is not None else data
    store = root if isinstance(root, RunStore) else RunStore(Path(root) if root is not None else None)
    run = store.create(config.to_run_config())
    model = Transformer(**{k: v for k, v in run.config["model"].items() if k != "name"}, seed=config.seed)
    task = build_task(run.config["task"])
    probe = partial(grokking_probe, neurons=config.probe_neurons)
    fit(model, task, config.make_optimizer(model), config.steps, run=run,
        probes={"grokking": (probe, config.probe_every), **(probes or {})}, eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every, trajectory_every=config.trajectory_every,
        batch_size=config.batch_size, lr_warmup=config.warmup, seed=config.seed, resume=resume,
        progress=progress)
    finalize_run(run, model)
    return run


def finalize_run(run: Run, model: torch.nn.Module | None = None) -> dict:
    """Write ``key_freqs`` (of the final model) and ``phases`` into the run's attrs; return them."""
    model = model if model is not None else run.load_model()
    attrs = {"key_freqs": key_frequencies(model), "phases": detect_phases(run.metrics())}
    run.set_attrs(attrs)
    return attrs
