"""Reproduce Table 1 of Bushnaq et al. (2025), "Stochastic Parameter Decomposition": MMCS and ML2R
of SPD on TMS 5-2, 40-10 and their "+ identity" variants, over several seeds (targets trained with
our ToyModels, all seeds of a variant decomposed in one batch).

    python -m benchmarks.spd_table --variant 5-2 [--seeds 3] [--steps 40000] [--threads 1]
    python -m benchmarks.spd_table --report        # benchmarks/results/spd_table.md from the JSONs

Each variant run writes ``benchmarks/results/spd_table/<variant>.json`` (per-seed numbers and the
settings used) and stores the decomposition as a run-store artifact (kind ``spd``); ``--report``
builds the markdown table from whatever variants have been run, beside the paper's numbers.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from workbench.store import RunStore, default_root
from workbench.superposition.spd_run import decompose_tms

RESULTS = Path(__file__).parent / "results"
PARTS = RESULTS / "spd_table"
# Table 1 of the paper (MMCS, ML2R as mean ± std) and Figure 1 (alive subcomponents on 5-2)
PAPER = {"5-2": ("1.000 ± 0.000", "0.993 ± 0.002"), "40-10": ("1.000 ± 0.000", "1.010 ± 0.007"),
         "5-2+id": ("1.000 ± 0.000", "0.992 ± 0.010"), "40-10+id": ("1.000 ± 0.000", "1.031 ± 0.001")}


def run_variant(variant: str, seeds: int, steps: int | None, batch_size: int | None, data: Path) -> dict:
    """Train ``seeds`` targets of ``variant``, decompose them in one batch, store the artifact; per-seed numbers."""
    F, H = (int(v) for v in variant.removesuffix("+id").split("-"))
    overrides = {k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if v is not None}
    t0 = time.perf_counter()
    ds = decompose_tms(F, H, seeds=seeds, identity=variant.endswith("+id"), store=RunStore(data),
                       progress=True, **overrides)
    names = ("mmcs", "ml2r", "alive", "identity_ci_error", "alive_identity")
    return {"variant": variant, "seeds": seeds, "config": {k: ds.attrs[k] for k in ("C", "steps", "batch_size",
            "lr", "importance_coeff", "pnorm")}, "seconds": time.perf_counter() - t0,
            "threads": torch.get_num_threads(), "artifact": ds.attrs["artifact"],
            **{k: ds[k].values.tolist() for k in names if k in ds}}


def _pm(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def report() -> str:
    """Markdown table of every variant run so far, beside the paper's numbers."""
    lines = ["# SPD on toy models of superposition: Table 1 of Bushnaq et al. (2025)", "",
             ("Mean ± std over seeds (one target per seed, all seeds decomposed in one batch). "
              "Paper: Table 1 (MMCS, ML2R); alive = subcomponents of W with causal importance > 0.1 "
              "on 4096 samples (paper's Figure 1: 5 of 20 on 5-2)."), "",
             ("| model | seeds | steps | batch | C | MMCS (ours) | MMCS (paper) | ML2R (ours) | ML2R (paper) "
              "| alive W (ours) | identity-CI error | time (s) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant in PAPER:
        path = PARTS / f"{variant}.json"
        if not path.exists():
            lines.append(f"| {variant} | not run | | | | | {PAPER[variant][0]} | | {PAPER[variant][1]} | | | |")
            continue
        r = json.loads(path.read_text())
        c = r["config"]
        lines.append(f"| {variant} | {r['seeds']} | {c['steps']} | {c['batch_size']} | {c['C']} | {_pm(r['mmcs'])} "
                     f"| {PAPER[variant][0]} | {_pm(r['ml2r'])} | {PAPER[variant][1]} | "
                     f"{' / '.join(str(a) for a in r['alive'])} | {' / '.join(str(a) for a in r['identity_ci_error'])} "
                     f"| {r.get('seconds', r.get('spd_seconds', 0.0)):.0f} ({r['threads']} thr) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=list(PAPER))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="SPD steps (default: the paper's 40k)")
    parser.add_argument("--batch-size", type=int, default=None, help="SPD batch (default: the paper's 4096)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=None, help="run store root for the artifacts")
    parser.add_argument("--report", action="store_true", help="write spd_table.md from the variants run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant:
        PARTS.mkdir(parents=True, exist_ok=True)
        result = run_variant(args.variant, args.seeds, args.steps, args.batch_size, args.data or default_root())
        (PARTS / f"{args.variant}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: result[k] for k in ("mmcs", "ml2r", "alive", "identity_ci_error")}))
    if args.report or not args.variant:
        (RESULTS / "spd_table.md").write_text(table := report())
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
