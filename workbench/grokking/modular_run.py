"""The modular-arithmetic MLP run behind ``workbench train modular`` and ``workbench demo``.

A validated flat config (nanoGPT style) → task, model, optimizer, ``fit`` into a RunStore run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from workbench.grokking.mlp import MLP
from workbench.store import Run, RunStore
from workbench.tasks.modular import ModularTask, build_task
from workbench.train import default_optimizer, fit
from workbench.validation import check_range


@dataclass
class ModularConfig:
    """Hyperparameters of a modular-arithmetic MLP run (defaults: the ``make demo`` run)."""

    p: int = 97             # prime modulus
    op: str = "add"         # add | sub | mul | div | x2xyy2
    frac: float = 0.5       # train fraction of all p² pairs
    d_embed: int = 128
    d_hidden: int = 256
    lr: float = 1e-3
    wd: float = 1.0         # AdamW weight decay (decoupled)
    steps: int = 1500
    batch_size: int | None = None  # None = full batch
    seed: int = 0
    eval_every: int = 10
    checkpoint_every: int = 500
    trajectory_every: int = 50

    def __post_init__(self) -> None:
        check_range(self.lr, "lr", 0.0, low_open=True)
        check_range(self.wd, "wd", 0.0)
        check_range(self.steps, "steps", 1)
        if self.batch_size is not None:
            check_range(self.batch_size, "batch_size", 1)
        self.task()  # validates p (prime), op and frac now, not mid-run

    def task(self) -> ModularTask:
        return ModularTask(p=self.p, op=self.op, frac=self.frac, seed=self.seed)

    def to_run_config(self) -> dict:
        return {"kind": "modular", "task": self.task().config(),
                "model": {"name": "mlp", "p": self.p, "d_embed": self.d_embed, "d_hidden": self.d_hidden},
                "train": asdict(self)}


def train_modular(config: ModularConfig, store: RunStore, *, resume: bool = True, progress: bool = True) -> Run:
    """Create (or resume) the run for ``config`` in ``store`` and train it to ``config.steps``."""
    run = store.create(config.to_run_config())
    model = MLP(**{k: v for k, v in run.config["model"].items() if k != "name"}, seed=config.seed)
    task = build_task(run.config["task"])
    fit(model, task, default_optimizer(model, lr=config.lr, weight_decay=config.wd), config.steps, run=run,
        eval_every=config.eval_every, checkpoint_every=config.checkpoint_every,
        trajectory_every=config.trajectory_every, batch_size=config.batch_size, seed=config.seed,
        resume=resume, progress=progress)
    return run
