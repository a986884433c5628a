"""Steps to 95 % test accuracy: Grokfast-EMA, Grokfast-MA and plain AdamW on the same seeds.

``python -m benchmarks.grokfast_table --p 59 --frac 0.3 0.5 --seeds 0 1 --max-steps 3000``
appends one markdown table per setting to ``benchmarks/results/grokfast_table.md`` (with the exact
command line). Each run is :class:`workbench.grokking.GrokkingConfig` (Nanda et al.'s transformer,
fast path) trained with a 10-step warm-up until test accuracy ≥ 0.95 (checked every
``--eval-every`` steps) or ``--max-steps``; a run that does not get there is reported as
``> max_steps``, never extrapolated.

References: Lee et al. (2024), Grokfast, arXiv:2405.20233 (EMA α 0.98 λ 2; MA w 100 λ 5).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.device import seed_everything
from workbench.grokking import GrokkingConfig
from workbench.registry import build_model

RESULTS = Path(__file__).parent / "results" / "grokfast_table.md"
OPTIMIZERS = ("adamw", "grokfast-ema", "grokfast-ma")


def steps_to_95(config: GrokkingConfig, max_steps: int, eval_every: int) -> tuple[int | None, float]:
    """Train until test accuracy ≥ 0.95; return (first evaluated step reaching it or None, seconds)."""
    seed_everything(config.seed)
    model = build_model(config.model_config())
    task = config.task()
    opt = config.make_optimizer(model)
    base = getattr(opt, "optimizer", opt)
    sched = torch.optim.lr_scheduler.LambdaLR(base, lambda s: min(1.0, (s + 1) / config.warmup) if config.warmup else 1.0)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    for step in range(max_steps + 1):
        if step % eval_every == 0:
            with torch.no_grad():
                acc = (model(task.test_x).argmax(-1) == task.test_y).double().mean().item()
            if acc >= 0.95:
                return step, time.perf_counter() - t0
        if step == max_steps:
            break
        if config.batch_size is None:
            xb, yb = task.train_x, task.train_y
        else:
            idx = torch.randint(len(task.train_x), (config.batch_size,), generator=gen)
            xb, yb = task.train_x[idx], task.train_y[idx]
        loss = F.cross_entropy(model(xb).double(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return None, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--op", default="add")
    ap.add_argument("--frac", type=float, nargs="+", default=[0.3, 0.5])
    ap.add_argument("--wd", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-steps", type=int, default=40_000)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS),
                    help="run order (e.g. the fast ones first on a tight budget); AdamW is the table's baseline")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cmd = "python -m benchmarks.grokfast_table " + " ".join(sys.argv[1:] if argv is None else argv)
    for frac in args.frac:
        rows = []
        for name in args.optimizers:
            steps = []
            for seed in args.seeds:
                cfg = GrokkingConfig(p=args.p, op=args.op, frac=frac, wd=args.wd, batch_size=args.batch_size,
                                     optimizer=name, seed=seed)
                s, secs = steps_to_95(cfg, args.max_steps, args.eval_every)
                print(f"p={args.p} frac={frac} {name} seed={seed}: {s if s is not None else '>' + str(args.max_steps)}"
                      f" steps ({secs:.0f}s)", flush=True)
                steps.append(s)
            reached = [s for s in steps if s is not None]
            med = statistics.median(reached) if len(reached) == len(steps) else None
            rows.append((name, steps, med))
        rows.sort(key=lambda row: OPTIMIZERS.index(row[0]))
        baseline = rows[0] if rows[0][0] == "adamw" else (None, [], None)
        base = baseline[2]
        lines = [(f"### p={args.p}, op={args.op}, frac={frac}, wd={args.wd}, batch={args.batch_size or 'full'}, "
                 f"seeds {args.seeds}, max {args.max_steps} steps, test acc checked every {args.eval_every}"),
                 "", f"Command: `{cmd}` ({time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__})", "",
                 "| optimizer | steps to 95% test acc (per seed) | median | speed-up vs AdamW |", "|---|---|---|---|"]
        for name, steps, med in rows:
            per = ", ".join(str(s) if s is not None else f">{args.max_steps}" for s in steps)
            speed = f"{base / med:.2f}x" if (base and med) else "n/a"
            if med and base is None and baseline[1] and not any(baseline[1]):  # AdamW never got there: a lower bound
                speed = f"≥{args.max_steps / med:.1f}x"
            lines.append(f"| {name} | {per} | {med if med is not None else 'not all reached'} | {speed} |")
        text = "\n".join(lines) + "\n\n"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(text)
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
