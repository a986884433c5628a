"""HF Trainer and Lightning callbacks: a real tiny run each, then the run opens in every lens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.koopman import trajectory_spectrum
from workbench.spectrum import analyze, make_spectrum_probe
from workbench.store import RunStore

STEPS = 40


def tokens(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 8-token sequences; the label is the parity of the first token."""
    x = torch.randint(1, 64, (n, 8), generator=torch.Generator().manual_seed(seed))
    return x, x[:, 0] % 2


def check_lenses(run, model: nn.Module, probe_steps: list[int]) -> None:
    """Spectra over steps, the final checkpoint's spectrum, the Koopman spectrum, the run browser."""
    m = run.metrics()
    assert "train_loss" in m and np.isfinite(m.train_loss.dropna("step")).all()
    alpha = m.alpha.dropna("step", how="all")
    np.testing.assert_array_equal(alpha.step, probe_steps)
    assert alpha.sizes["layer"] >= 3 and np.isfinite(alpha.sel(step=STEPS)).all()
    model.load_state_dict(run.load_checkpoint(STEPS)["model"])  # the recorded final weights
    final = analyze(model)
    np.testing.assert_allclose(final.alpha.sel(layer=alpha.layer).values, alpha.sel(step=STEPS).values)
    traj = run.trajectory()
    assert traj.sizes["step"] == STEPS // 2 + 1
    ks = trajectory_spectrum(run, rank=4, device="cpu")
    assert ks.sizes["eig"] == 4 and np.isfinite(ks.modulus).any()
    listed = RunStore(run.store.root).list().set_index("run_id")  # what the run browser shows
    assert listed.loc[run.id, "status"] == "done" and listed.loc[run.id, "step"] == STEPS


def test_hf_trainer_run_is_recorded(tmp_path):
    pytest.importorskip("accelerate")
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from workbench.integrations.hf import WorkbenchCallback

    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    x, y = tokens(320)
    data = [{"input_ids": x[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": y[i]}
            for i in range(len(x))]
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=STEPS, per_device_train_batch_size=16,
                             learning_rate=1e-3, logging_steps=5, eval_strategy="steps", eval_steps=20,
                             save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
    callback = WorkbenchCallback(tmp_path / "runs", probes={"spectrum": (make_spectrum_probe(), 10)},
                                 trajectory_every=2, checkpoint_every=20)
    Trainer(model=model, args=args, train_dataset=data[:256], eval_dataset=data[256:],
            callbacks=[callback]).train()
    run = RunStore(tmp_path / "runs").open(callback.run.id)
    m = run.metrics()
    np.testing.assert_array_equal(m.train_loss.dropna("step").step, np.arange(5, STEPS + 1, 5))
    np.testing.assert_array_equal(m.test_loss.dropna("step").step, [20, 40])
    assert run.checkpoint_steps() == [0, 20, 40] and run.config["kind"] == "hf"
    check_lenses(run, BertForSequenceClassification(config), [0, 10, 20, 30, 40])


class TinyClassifier(nn.Module):
    """Embedding-bag classifier: enough layers for spectra (min 8 eigenvalues each)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(64, 32)
        self.hidden = nn.Linear(32, 32)
        self.mid = nn.Linear(32, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.mid(torch.relu(self.hidden(self.embed(x).mean(1))))))


def lightning_module():
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self, lr: float = 3e-3):
            super().__init__()
            self.save_hyperparameters()
            self.net = TinyClassifier()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            self.log("val_loss", F.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(-1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    return Module


def test_lightning_run_is_recorded_and_resumes_where_lightning_does(tmp_path):
    L = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    from workbench.integrations.lightning import WorkbenchCallback

    x, y = tokens(320)
    train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=16, shuffle=False)
    val = DataLoader(TensorDataset(x[256:], y[256:]), batch_size=64)
    Module = lightning_module()

    def trainer(max_steps: int, callback) -> L.Trainer:
        return L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[callback],
                         default_root_dir=str(tmp_path / "pl"))

    torch.manual_seed(0)
    module = Module()
    # an explicit config: the default one holds max_steps, so the longer second session would be a new run
    options = {"probes": {"spectrum": (make_spectrum_probe(), 10)}, "trajectory_every": 2, "checkpoint_every": 20,
               "config": {"kind": "tiny-classifier", "seed": 0}}
    first = WorkbenchCallback(tmp_path / "runs", **options)
    t = trainer(24, first)
    t.fit(module, train, val)
    t.save_checkpoint(tmp_path / "pl.ckpt")
    first.run.append_trajectory(26, np.zeros(first.run.trajectory().sizes["param"]))  # stale, after the resume step
    again = WorkbenchCallback(tmp_path / "runs", **options)
    trainer(STEPS, again).fit(Module(), train, val, ckpt_path=tmp_path / "pl.ckpt")
    assert again.run.id == first.run.id
    run = again.run
    m = run.metrics()
    np.testing.assert_array_equal(m.train_loss.dropna("step").step, np.arange(STEPS))
    np.testing.assert_array_equal(m.val_acc.dropna("step").step, [16, 32])  # one epoch = 16 steps
    np.testing.assert_array_equal(run.trajectory().step, np.arange(0, STEPS + 1, 2))
    holder = nn.Module()  # the module's weights are stored under "net."
    holder.net = TinyClassifier()
    check_lenses(run, holder, [0, 10, 20, 30, 40])  # the first session's final probe (24) was after the resume point
