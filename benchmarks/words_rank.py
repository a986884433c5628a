"""Learned tensor rank vs width: CP rank of the centred output tensor of trained Li² models.

    python -m benchmarks.words_rank [--group D5] [--widths 16 32 64 512] [--seeds 0 1] [--steps 800]

Marchetti et al. (2025) predict that a network trained on a word task in a group learns a low-rank
3-tensor built from the irreps the task needs. Each run trains the Li² model of ``workbench train
groups`` (σ = x², cross-entropy, AdamW lr 1e-2 wd 1, betas (0.9, 0.98), full batch, train fraction
0.8: the D_5 setting of the unit test, which groks) with :func:`workbench.train.fit`, then estimates the numerical CP rank of its centred tensor (:func:`workbench.grokking.bilinear_tensor`,
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

from workbench.grokking import GroupsConfig, bilinear_tensor, cp_rank, task_tensor
from workbench.grokking.groups_run import build_groups_model
from workbench.train import fit

RESULTS = Path(__file__).parent / "results"
TRAIN = {"activation": "sqr", "optimizer": "adamw", "lr": 1e-2, "wd": 1.0, "frac": 0.8}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", nargs="+", default=["D5"])
    ap.add_argument("--widths", nargs="+", type=int, default=[16, 32, 64, 512])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--tol", type=float, default=0.05)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, rows = time.perf_counter(), []
    for group in args.groups:
        task_rank = int(cp_rank(task_tensor(group), restarts=20).cp_rank)
        for width in args.widths:
            for seed in args.seeds:
                cfg = GroupsConfig(group=group, hidden=width, steps=args.steps, seed=seed, **TRAIN)
                model = build_groups_model(cfg.model_config(), seed)
                ds = fit(model, cfg.task(), cfg.make_optimizer(model), args.steps, eval_every=100, seed=seed,
                         progress=False)
                r = cp_rank(bilinear_tensor(model, group), tol=args.tol, max_rank=min(width, 40), restarts=3)
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
             "-1: not reached up to min(width, 40)). Task rank: the centred 1[ab = c] at 1e-6."), "",
             "| group | task rank | width K | seed | test acc | learned CP rank |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['group']} | {r['task_rank']} | {r['width']} | {r['seed']} | {r['test_acc']:.2f} | "
              f"{r['learned_rank']} |" for r in rows]
    (RESULTS / "words_rank.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
