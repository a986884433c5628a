"""MoMos motif projection as a training constraint on the grokking MLP: does it still grok, and how compressible?

``python -m benchmarks.momos_grokking`` writes ``benchmarks/results/momos_grokking.md`` (+ ``.json``)
with the exact command line. The modular-addition MLP (p = 97, d_embed 128, d_hidden 256, train
fraction 0.5, AdamW lr 1e-3 wd 1, full batch, 3000 steps) is trained plainly and with
:func:`workbench.spectrum.project_model_` (blocks of 4, k from a capacity) after every ``--every``
optimizer steps; reported: the first step with test accuracy ≥ 0.95, final accuracies, and the gzip
compression ratio of the final float32 weights (:func:`workbench.spectrum.compressibility`).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from benchmarks.results_io import command_line, first_reaching, write_results
from workbench.grokking.mlp import MLP
from workbench.spectrum import compressibility, project_model_
from workbench.tasks.modular import ModularTask
from workbench.train import default_optimizer


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def train(task: ModularTask, steps: int, capacity: float | None, every: int, seed: int) -> dict:
    model = MLP(97, 128, 256, seed=seed)
    opt = default_optimizer(model, lr=1e-3, weight_decay=1.0)
    gen = torch.Generator().manual_seed(seed)
    curve = {"step": [], "test_acc": [], "train_acc": []}
    for step in range(1, steps + 1):
        loss = F.cross_entropy(model(task.train_x), task.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if capacity is not None and step % every == 0:
            project_model_(model, 4, capacity=capacity, generator=gen)
        if step % 50 == 0:
            curve["step"].append(step)
            curve["test_acc"].append(accuracy(model, task.test_x, task.test_y))
            curve["train_acc"].append(accuracy(model, task.train_x, task.train_y))
    ratio = compressibility(model).ratio.values.tolist()
    return {**curve, "ratio_gzip_bz2_lzma": ratio}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--capacities", type=float, nargs="+", default=[0.0, 0.01])
    ap.add_argument("--name", default="momos_grokking", help="results file stem in benchmarks/results/")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = ModularTask(p=97, op="add", frac=0.5, seed=0)
    rows, out = [], {}
    for c in args.capacities:
        t0 = time.perf_counter()
        r = train(task, args.steps, c or None, args.every, args.seed)
        name = "plain AdamW" if not c else f"MoMos s=4, capacity {c:g}, every {args.every} step(s)"
        out[name] = r
        first = first_reaching(r["step"], r["test_acc"])
        first = f"> {args.steps}" if first is None else first
        rows.append(f"| {name} | {first} | {r['test_acc'][-1]:.3f} | {r['train_acc'][-1]:.3f} | "
                    f"{' / '.join(f'{x:.3f}' for x in r['ratio_gzip_bz2_lzma'])} | {time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
    command = command_line("momos_grokking", argv)
    text = ["# MoMos motif projection while the MLP groks", "", f"`{command}` — torch {torch.__version__}, 1 thread.",
            "", ("| training | first step with test acc ≥ 0.95 | final test acc | final train acc | "
            "gzip / bz2 / lzma ratio of the final weights | s |"), "|---|---|---|---|---|---|", *rows, ""]
    write_results(args.name, text, {"command": command, "runs": out})


if __name__ == "__main__":
    main()
