"""Superposition lens benchmarks.

1. Batched ``ToyModels`` training (one program for all instances) vs a Python loop that trains
   each instance as its own ``ToyModels(1, ...)`` with its own Adam — same instances, steps and
   batch size, the same lens code. Throughput is reported as instances·steps per second. 50 steps:
   on this VM the first steps after a core was idle run up to 2x slower, ~10 % of a 20-step run.
2. The n=2, m=1 phase diagram (densities × importance ratios × inits in one batch), timed against a
   loop over cells (a few cells timed, extrapolated per cell) for the ratio.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.harness import compare
from workbench.superposition import phase_diagram, train_toys
from workbench.superposition.toy import ToyModels, importance_vector


def _batched(n_instances: int, n: int, m: int, steps: int, batch: int) -> None:
    model = ToyModels(n_instances, n, m, feature_probability=torch.logspace(0, -2, n_instances),
                      importance=importance_vector(n, 0.9), seed=0)
    train_toys(model, steps=steps, batch_size=batch, seed=1)


def _loop(n_instances: int, n: int, m: int, steps: int, batch: int) -> None:
    probs = torch.logspace(0, -2, n_instances)
    for k in range(n_instances):
        model = ToyModels(1, n, m, feature_probability=float(probs[k]),
                          importance=importance_vector(n, 0.9), seed=k)
        train_toys(model, steps=steps, batch_size=batch, seed=k + 1)


def run(quick: bool) -> list[dict]:
    rows = []
    n_inst, n, m = 400, 20, 5
    _batched(4, n, m, 2, 8)                 # first-call costs (Adam, BLAS init) outside the timing
    for batch in ([64] if quick else [64, 256, 1024]):
        steps = 3 if quick else 50  # dilutes the slow first steps (a core waking from idle)
        row = compare("superposition/toy_training", f"{n_inst} inst, n={n}, m={m}, batch={batch}, {steps} steps",
                      ("ToyModels batched", lambda s=steps, b=batch: _batched(n_inst, n, m, s, b)),
                      ("per-instance loop", lambda s=steps, b=batch: _loop(n_inst, n, m, s, b)),
                      repeats=1 if quick else 3, warmup=0)
        row["candidate_inst_steps_per_s"] = n_inst * steps / row["t_candidate_s"]
        row["reference_inst_steps_per_s"] = n_inst * steps / row["t_reference_s"]
        row["notes"] = (f"batch {batch}: {row['candidate_inst_steps_per_s']:.0f} vs "
                        f"{row['reference_inst_steps_per_s']:.0f} instances·steps/s "
                        f"(batched {1e3 * row['t_candidate_s'] / steps:.0f} ms/step)")
        rows.append(row)

    # phase diagram: full grid in one batch vs the same work as a loop over cells
    nd, n_inits, steps = (10, 2, 100) if quick else (40, 3, 1000)  # full = phase_diagram defaults
    dens, ratios = np.logspace(-2, 0, nd), np.logspace(-1, 1, nd)
    sample = [(0.05, 0.5), (0.5, 2.0)]
    t0 = time.perf_counter()
    phase_diagram(2, 1, dens, ratios, n_inits=n_inits, steps=steps, seed=0)
    t_grid = time.perf_counter() - t0
    t0 = time.perf_counter()
    for d, r in sample:
        phase_diagram(2, 1, [d], [r], n_inits=n_inits, steps=steps, seed=0)
    t_loop = (time.perf_counter() - t0) / len(sample) * nd * nd
    rows.append({
        "benchmark": "superposition/phase_diagram", "workload": f"n=2,m=1, {nd}x{nd} cells x {n_inits} inits, {steps} steps",
        "candidate": "phase_diagram (one batch)", "reference": "loop over cells (extrapolated)",
        "t_candidate_s": t_grid, "t_reference_s": t_loop, "ratio": t_loop / t_grid, "repeats": 1,
        "loadavg_1m": __import__("os").getloadavg()[0],
        "notes": f"phase diagram {nd}x{nd}x{n_inits}: {t_grid:.1f} s (target < 60 s)",
    })
    return rows
