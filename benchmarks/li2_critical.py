"""Li² critical sample size: test accuracy as the train fraction crosses 2.7482·ln M / M (× d_max / 2).

    python -m benchmarks.li2_critical [--groups Z71 S4xZ3] [--multiples 0.6 1 1.5 2] [--seeds 0 1 2]
                                      [--steps 1500] [--threads 1]

Tian (2025)'s reference code sets the train fraction at ``c · ln M / M`` with ``c = 2.7482``, times
``d_max / 2`` for non-abelian groups (``d_max`` the largest irrep dimension), as the smallest that
generalises. For each group and multiple ``m`` of that fraction, each seed trains the Li² model
(K = 512, σ = x², centred MSE, full batch) with :func:`workbench.grokking.li2_train.train_li2` and
records the final test accuracy and the steps to 95 %. Writes ``benchmarks/results/li2_critical.md``
(table + command) and ``benchmarks/results/li2_critical.json`` (per-run numbers and settings).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from workbench.grokking.irreps import irreps
from workbench.grokking.li2_train import Li2Config, steps_to, train_li2

RESULTS = Path(__file__).parent / "results"
C = 2.7482
TRAIN = {"hidden": 512, "activation": "sqr", "loss": "mse", "optimizer": "adamw", "lr": 1e-2, "wd": 1.0,
         "ridge": None}


def critical_fraction(group: str) -> float:
    """``2.7482 · ln M / M · max(1, d_max / 2)`` (the reference's ``use_critical_ratio``)."""
    R = irreps(group)
    M = R.group.order
    return C * math.log(M) / M * max(1.0, max(R.dims) / 2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", nargs="+", default=["Z71", "S4xZ3"])
    ap.add_argument("--multiples", nargs="+", type=float, default=[0.6, 1.0, 1.5, 2.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, t0 = [], time.perf_counter()
    for group in args.groups:
        fc = critical_fraction(group)
        for m in args.multiples:
            for seed in args.seeds:
                cfg = Li2Config(group=group, frac=round(m * fc, 4), seed=seed, steps=args.steps, eval_every=50, **TRAIN)
                _, ds = train_li2(cfg, gradients=False)
                rows.append({"group": group, "critical": fc, "multiple": m, "frac": cfg.frac, "seed": seed,
                             "test_acc": float(ds.test_acc[-1]), "train_acc": float(ds.train_acc[-1]),
                             "steps_to_95": steps_to(ds)})
                print(rows[-1], flush=True)
    seconds = time.perf_counter() - t0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "li2_critical.json").write_text(json.dumps({"settings": TRAIN | {"steps": args.steps}, "rows": rows,
                                                           "cpu_seconds": seconds}, indent=1))
    lines = ["# Li² critical sample size", "",
             (f"`python -m benchmarks.li2_critical {' '.join(sys.argv[1:] if argv is None else argv)}` "
             f"({seconds:.0f} s, {args.threads} thread(s), shared 2-core CPU)."), "",
             (f"Li² model K={TRAIN['hidden']}, σ = x², centred MSE, full batch, AdamW lr {TRAIN['lr']} wd {TRAIN['wd']}, "
             f"{args.steps} steps (the reference's Fig. 3 run: Adam lr 2e-3, wd 5e-5, 10,000 epochs, ridge top layer — "
             "too slow for this budget). Critical fraction 2.7482·ln M/M × max(1, d_max/2)."), "",
             "| group | M | critical frac | multiple | frac | final test acc (per seed) | mean | grokked (≥95 %) | steps to 95 % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for group in args.groups:
        for m in args.multiples:
            sel = [r for r in rows if r["group"] == group and r["multiple"] == m]
            accs = [r["test_acc"] for r in sel]
            hit = [r["steps_to_95"] for r in sel if r["steps_to_95"] is not None]
            lines.append(f"| {group} | {irreps(group).group.order} | {sel[0]['critical']:.3f} | {m:g}× | {sel[0]['frac']:.3f} | "
                         f"{' / '.join(f'{a:.2f}' for a in accs)} | {statistics.mean(accs):.2f} | {len(hit)}/{len(sel)} | "
                         f"{' / '.join(str(h) for h in hit) or '—'} |")
    (RESULTS / "li2_critical.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
