"""Embedded CMD on the grokking MLP: does training through CMD modes change test accuracy?

``python -m benchmarks.embedded_cmd`` writes ``benchmarks/results/embedded_cmd.md`` (+ ``.json``)
with the exact command line. The modular-addition MLP (p = 97, d_embed 128, d_hidden 256, train
fraction 0.5, AdamW lr 1e-3 wd 1, full batch, 3000 steps; it groks) is trained plainly and with
:func:`workbench.koopman.embedded_cmd_train` (10 modes, 1000 sampled parameters, blocks of 10 steps
as the paper's epochs; warm-up and window scaled from the reference's 20 and 10 of 150 epochs),
same seed, data and evaluation. Reported: test accuracy over steps, the first step with test
accuracy ≥ 0.95, and the share of parameters embedded.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.results_io import command_line, first_reaching, write_results
from workbench.grokking.mlp import MLP
from workbench.koopman import embedded_cmd_train
from workbench.tasks.modular import ModularTask
from workbench.train import default_optimizer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", nargs="+", default=["0", "10:40:20", "5:40:20"],
                    help="percent[:warmup_blocks:window_blocks]; 0 = plain training")
    ap.add_argument("--name", default="embedded_cmd", help="results file stem in benchmarks/results/")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = ModularTask(p=97, op="add", frac=0.5, seed=0)
    rows, curves = [], {}
    for setting in args.settings:
        pct, warmup, window = ([float(x) for x in setting.split(":")] + [40, 20])[:3]
        model = MLP(97, 128, 256, seed=args.seed)
        t0 = time.perf_counter()
        ds = embedded_cmd_train(model, task, default_optimizer(model, lr=1e-3, weight_decay=1.0), args.steps,
                                n_modes=10, block=10, warmup=int(warmup), window=int(window), percent=pct,
                                eval_every=50, seed=args.seed)
        seconds = time.perf_counter() - t0
        name = "plain AdamW" if pct == 0 else f"embedded CMD {pct:g}% / {int(window)} blocks, warm-up {int(warmup)}"
        curves[name] = {"step": ds.step.values.tolist(), "test_acc": ds.test_acc.values.tolist(),
                        "train_acc": ds.train_acc.values.tolist(),
                        "embedded_fraction": ds.embedded_fraction.values.tolist()}
        rows.append(f"| {name} | {first_reaching(ds.step.values, ds.test_acc.values) or '> ' + str(args.steps)} | {float(ds.test_acc[-1]):.3f} | "
                    f"{float(ds.train_acc[-1]):.3f} | {float(ds.embedded_fraction[-1]):.2f} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    command = command_line("embedded_cmd", argv)
    text = ["# Embedded CMD on the grokking MLP", "", f"`{command}` — torch {torch.__version__}, 1 thread.", "",
            "| training | first step with test acc ≥ 0.95 | final test acc | final train acc | embedded share | s |",
            "|---|---|---|---|---|---|", *rows, ""]
    write_results(args.name, text, {"command": command, "curves": curves})


if __name__ == "__main__":
    main()
