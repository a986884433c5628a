"""Muon vs AdamW vs Grokfast-MA: steps to 95 % test accuracy, same seeds, same inits and splits.

    python -m benchmarks.muon_table transformer --p 59 --frac 0.5 --seeds 0 1 2 --max-steps 1500
    python -m benchmarks.muon_table li2 --group S4 --frac 0.7 --seeds 0 1 2 --max-steps 1000
    python -m benchmarks.muon_table li2-mse --group Z71 --frac 0.2475 --optimizers adamw muon --max-steps 1500

``transformer``: Nanda et al.'s one-layer transformer (:class:`workbench.grokking.GrokkingConfig`;
Muon on the attention and MLP matrices with lr 0.02, weight decay 0.05, AdamW lr 1e-3 wd 1 on
embeddings, unembedding and biases), trained by :func:`benchmarks.grokfast_table.steps_to_95`.
``li2``: the Li² model of ``workbench train groups`` (:class:`workbench.grokking.GroupsConfig`:
K = 512, x², cross-entropy, AdamW lr 3e-3 wd 1; Muon lr 0.02 wd 0.1 on W and V), full batch via
:func:`workbench.train.fit`. ``li2-mse``: the Li² reference setting of
:func:`workbench.grokking.train_li2` (K = 512, x², centred MSE, AdamW lr 1e-2 wd 1; Muon on W with
the same lr and wd, AdamW on V; no Grokfast). Appends one markdown table per setting to
``benchmarks/results/muon_table.md`` with its command; a run that does not reach 95 % is reported
as ``>max``, never extrapolated.

References: Jordan et al. (2024), Muon; Tveit et al. (2025), arXiv:2504.16041 (Muon and grokking);
Lee et al. (2024), Grokfast, arXiv:2405.20233.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.grokfast_table import steps_to_95
from workbench.grokking import GrokkingConfig, GroupsConfig
from workbench.grokking.groups_run import build_groups_model
from workbench.grokking.li2_train import Li2Config, steps_to, train_li2
from workbench.train import fit

RESULTS = Path(__file__).parent / "results" / "muon_table.md"
OPTIMIZERS = ("adamw", "muon", "grokfast-ma")


def li2_steps_to_95(config: GroupsConfig, max_steps: int, eval_every: int) -> tuple[int | None, float]:
    """Train the groups run's model for ``max_steps``; first evaluated step with test acc ≥ 0.95."""
    task = config.task()
    model = build_groups_model(config.model_config(), config.seed)
    t0 = time.perf_counter()
    hist = fit(model, task, config.make_optimizer(model), max_steps, eval_every=eval_every, seed=config.seed,
               progress=False)
    hit = np.flatnonzero(hist.test_acc.values >= 0.95)
    return (int(hist.step.values[hit[0]]) if len(hit) else None), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=("transformer", "li2", "li2-mse"))
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--group", default="S4")
    ap.add_argument("--frac", type=float, default=0.3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    ap.add_argument("--muon-lr", type=float, default=0.02)
    ap.add_argument("--muon-wd", type=float, default=None, help="Muon weight decay (default: the config's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cmd = "python -m benchmarks.muon_table " + " ".join(sys.argv[1:] if argv is None else argv)
    results = {}
    wd = {} if args.muon_wd is None else {"muon_wd": args.muon_wd}
    for name in args.optimizers:
        steps = []
        for seed in args.seeds:
            if args.model == "transformer":
                s, secs = steps_to_95(GrokkingConfig(p=args.p, frac=args.frac, optimizer=name, seed=seed,
                                                     muon_lr=args.muon_lr, **wd),
                                      args.max_steps, args.eval_every)
            elif args.model == "li2-mse":
                t0 = time.perf_counter()
                _, ds = train_li2(Li2Config(group=args.group, frac=args.frac, seed=seed, steps=args.max_steps,
                                            eval_every=args.eval_every, loss="mse", optimizer=name, lr=1e-2, wd=1.0,
                                            ridge=None), gradients=False)
                s, secs = steps_to(ds), time.perf_counter() - t0
            else:
                s, secs = li2_steps_to_95(GroupsConfig(group=args.group, frac=args.frac, optimizer=name, seed=seed,
                                                       steps=args.max_steps, muon_lr=args.muon_lr, **wd),
                                            args.max_steps, args.eval_every)
            print(f"{args.model} {name} seed={seed}: {s if s is not None else '>' + str(args.max_steps)} ({secs:.0f}s)",
                  flush=True)
            steps.append(s)
        results[name] = steps
    setting = {"transformer": f"Nanda's transformer, p={args.p}, a+b, frac {args.frac}",
               "li2": f"Li² model (K=512, x², CE), {args.group}, frac {args.frac}",
               "li2-mse": f"Li² model (K=512, x², centred MSE), {args.group}, frac {args.frac}"}[args.model]
    muon_wd = {"transformer": GrokkingConfig.muon_wd, "li2": GroupsConfig.muon_wd, "li2-mse": 1.0}[args.model]
    muon_wd = args.muon_wd if args.muon_wd is not None and args.model != "li2-mse" else muon_wd
    muon_lr = args.muon_lr if args.model != "li2-mse" else 1e-2
    setting += f" (Muon lr {muon_lr}, wd {muon_wd})" if "muon" in args.optimizers else ""
    lines = [f"### {setting}; seeds {args.seeds}, max {args.max_steps} steps, test acc every {args.eval_every}", "",
             (f"Command: `{cmd}` ({time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, 1 thread, shared "
             "2-core CPU)"), "", "| optimizer | steps to 95 % (per seed) | median | vs AdamW |", "|---|---|---|---|"]
    base = results.get("adamw")
    base_med = statistics.median(base) if base and all(s is not None for s in base) else None
    for name, steps in results.items():
        med = statistics.median(steps) if all(s is not None for s in steps) else None
        per = ", ".join(str(s) if s is not None else f">{args.max_steps}" for s in steps)
        ratio = f"{base_med / med:.2f}x" if base_med and med else "n/a"
        lines.append(f"| {name} | {per} | {med if med is not None else 'not all reached'} | {ratio} |")
    text = "\n".join(lines) + "\n\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(text)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
