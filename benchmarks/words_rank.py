"""Learned tensor rank vs width: CP rank of the centred output tensor of trained Li² models.

    python -m benchmarks.words_rank [--groups S3 D5] [--widths 8 16 32 128] [--seeds 0 1] [--steps 1000]

Marchetti et al. (2025) predict that a network trained on a word task in a group learns a low-rank
3-tensor built from the irreps the task needs. Each run trains the Li² model (σ = x², cross-entropy,
AdamW lr 1e-2 wd 1, full batch, train fraction 0.8) with :func:`workbench.grokking.train_li2`, then
estimates the numerical CP rank of its centred tensor (:func:`workbench.grokking.bilinear_tensor`,
:func:`workbench.grokking.cp_rank` at relative error ``--tol``) beside the rank of the centred task
tensor ``1[ab = c]`` (tol 1e-6). Writes ``benchmarks/results/words_rank.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from workbench.grokking import Li2Config, bilinear_tensor, cp_rank, task_tensor, train_li2

RESULTS = Path(__file__).parent / "results"
TRAIN = {"activation": "sqr", "loss": "ce", "optimizer": "adamw", "lr": 1e-2, "wd": 1.0, "ridge": None, "frac": 0.8}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", nargs="+", default=["S3", "D5"])
    ap.add_argument("--widths", nargs="+", type=int, default=[8, 16, 32, 128])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=0.05)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, rows = time.perf_counter(), []
    for group in args.groups:
        task_rank = int(cp_rank(task_tensor(group), restarts=5).cp_rank)
        for width in args.widths:
            for seed in args.seeds:
                cfg = Li2Config(group=group, hidden=width, steps=args.steps, seed=seed, eval_every=100, **TRAIN)
                model, ds = train_li2(cfg, gradients=False)
                r = cp_rank(bilinear_tensor(model, group), tol=args.tol, max_rank=width, restarts=3)
                rows.append({"group": group, "width": width, "seed": seed, "task_rank": task_rank,
                             "test_acc": float(ds.test_acc[-1]), "learned_rank": int(r.cp_rank),
                             "errors": dict(zip(r.r.values.tolist(), r.error.values.tolist()))})
                print(rows[-1], flush=True)
    seconds = time.perf_counter() - t0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "words_rank.json").write_text(json.dumps({"settings": TRAIN | vars(args), "rows": rows}, indent=1))
    command = f"python -m benchmarks.words_rank {' '.join(sys.argv[1:] if argv is None else argv)}"
    lines = ["# Learned tensor rank vs width (Li² model, x², cross-entropy)", "",
             f"`{command}` ({seconds:.0f} s, 1 thread, shared 2-core CPU).", "",
             (f"Numerical CP rank of the centred output tensor at relative error ≤ {args.tol} (ALS, 3 restarts; "
             "-1: not reached up to the width). Task rank: the centred 1[ab = c] at 1e-6."), "",
             "| group | task rank | width K | seed | test acc | learned CP rank |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['group']} | {r['task_rank']} | {r['width']} | {r['seed']} | {r['test_acc']:.2f} | "
              f"{r['learned_rank']} |" for r in rows]
    (RESULTS / "words_rank.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
