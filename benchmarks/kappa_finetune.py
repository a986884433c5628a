"""KappaTune on 2 CPU cores: fine-tune the lowest-κ tensors vs all tensors vs random tensors.

``python -m benchmarks.kappa_finetune --seeds 0 1 2`` writes ``benchmarks/results/kappa_finetune.md``
and ``.json`` (with the exact command line). The modular MLP (``workbench.grokking.mlp.MLP``, one
embedding and two linear layers) is pretrained on task A, ``a + b mod p`` over tokens ``0 … p−1``,
then fine-tuned on task B, ``a · b mod p`` over new tokens ``p … 2p−1`` (same p output classes), so
one network can hold both tasks and forgetting is not forced. Fine-tuning updates only the modules
that :func:`workbench.spectrum.kappa_select` picks among the embedding and the linear layers
(lowest κ = σ_0/(σ_last + 1e-8), Ludwig 2025), or the same number of modules drawn at random, or
every module. Reported per strategy over seeds: task-A test accuracy after fine-tuning (forgetting =
before − after) and task-B test accuracy.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.results_io import command_line, write_results
from workbench.grokking.mlp import MLP
from workbench.spectrum import kappa_select

TYPES = (nn.Linear, nn.Embedding)


def task_data(p: int, op: str, offset: int, frac: float, seed: int) -> dict[str, torch.Tensor]:
    """All pairs of tokens ``offset + a, offset + b`` labelled ``a op b mod p``, split train/test."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    y = (a + b) % p if op == "add" else (a * b) % p
    x = torch.stack([a + offset, b + offset, torch.full_like(a, 2 * p)], 1)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n = int(frac * len(y))
    return {"train_x": x[perm[:n]], "train_y": y[perm[:n]], "test_x": x[perm[n:]], "test_y": y[perm[n:]]}


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def train(model: nn.Module, data: dict, steps: int, lr: float, wd: float) -> None:
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=(0.9, 0.98))
    for _ in range(steps):
        loss = F.cross_entropy(model(data["train_x"]), data["train_y"])
        opt.zero_grad()
        loss.backward()
        opt.step()


def finetune(base: nn.Module, modules: list[str], B: dict, A: dict, args) -> dict:
    model = MLP(2 * args.p, args.d_embed, args.d_hidden, seed=0)
    model.load_state_dict(base.state_dict())
    chosen = set(modules)
    for name, module in model.named_modules():
        for q in module.parameters(recurse=False):
            q.requires_grad_(name in chosen)
    train(model, B, args.ft_steps, args.lr, args.wd)
    return {"modules": modules, "n_trained": sum(q.numel() for q in model.parameters() if q.requires_grad),
            "A_test": accuracy(model, A["test_x"], A["test_y"]), "B_test": accuracy(model, B["test_x"], B["test_y"]),
            "B_train": accuracy(model, B["train_x"], B["train_y"])}


def run_seed(seed: int, args) -> dict:
    A = task_data(args.p, "add", 0, args.frac, seed)
    B = task_data(args.p, "mul", args.p, args.frac, seed)
    model = MLP(2 * args.p, args.d_embed, args.d_hidden, seed=seed)
    train(model, A, args.pre_steps, args.lr, args.wd)
    kappa = kappa_select(model, module_types=TYPES)
    out = {"seed": seed, "A_test_before": accuracy(model, A["test_x"], A["test_y"]),
           "B_test_before": accuracy(model, B["test_x"], B["test_y"]),
           "kappa": dict(zip(kappa.layer.values.tolist(), kappa.kappa.values.tolist())), "runs": {}}
    names = kappa.layer.values.tolist()
    rng = random.Random(seed)
    for k in args.k:
        out["runs"][f"lowest-kappa {k}"] = finetune(model, names[:k], B, A, args)
        out["runs"][f"random {k}"] = finetune(model, sorted(rng.sample(names, k)), B, A, args)
    out["runs"]["all"] = finetune(model, names, B, A, args)
    return out


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def table(results: list[dict]) -> list[str]:
    lines = [("| strategy | modules trained (per seed) | params trained | task-A test acc after (before) | "
              "forgetting | task-B test acc |"), "|---|---|---|---|---|---|"]
    before = statistics.mean(r["A_test_before"] for r in results)
    for name in results[0]["runs"]:
        runs = [r["runs"][name] for r in results]
        a = [x["A_test"] for x in runs]
        f = [r["A_test_before"] - x["A_test"] for r, x in zip(results, runs)]
        b = [x["B_test"] for x in runs]
        lines.append(f"| {name} | {' / '.join('+'.join(x['modules']) for x in runs)} | "
                     f"{' / '.join(str(x['n_trained']) for x in runs)} | {statistics.mean(a):.3f} ± {_sd(a):.3f} "
                     f"({before:.3f}) | {statistics.mean(f):.3f} ± {_sd(f):.3f} | {statistics.mean(b):.3f} ± {_sd(b):.3f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, default=31)
    ap.add_argument("--d-embed", type=int, default=64)
    ap.add_argument("--d-hidden", type=int, default=128)
    ap.add_argument("--frac", type=float, default=0.8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.5)
    ap.add_argument("--pre-steps", type=int, default=1500)
    ap.add_argument("--ft-steps", type=int, default=1500)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = [run_seed(s, args) for s in args.seeds]
    seconds = time.perf_counter() - t0
    command = command_line("kappa_finetune", argv)
    kappas = "; ".join(f"seed {r['seed']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["kappa"].items())
                       for r in results)
    text = ["# KappaTune on the modular MLP", "", f"`{command}` — {seconds:.0f} s on 1 thread, torch {torch.__version__}.", "",
            f"κ after pretraining (lowest first): {kappas}.", "", *table(results), ""]
    write_results("kappa_finetune", text, {"command": command, "args": vars(args), "seconds": seconds,
                                           "results": results})


if __name__ == "__main__":
    main()
