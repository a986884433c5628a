"""SPD benchmark (Bushnaq et al. 2025): decomposing 16 TMS 5-2 targets as one batched program vs a
Python loop over the same 16 (one :func:`~workbench.superposition.spd` call each), same steps and
batch. Steps are few (the ratio is per step; the paper's 40k steps scale both sides alike); the
wall time of one full paper-setting decomposition is in ``benchmarks/results/spd_table.md``.
"""
from __future__ import annotations

import torch

from benchmarks.harness import compare
from workbench.superposition import spd, train_targets


def run(quick: bool) -> list[dict]:
    n_seeds, steps = (4, 10) if quick else (16, 200)
    targets = train_targets(5, 2, n_seeds, steps=200, seed=0)       # the targets' quality is irrelevant here
    W = torch.from_numpy(targets["W"].transpose("instance", "hidden", "feature").values)
    b = torch.from_numpy(targets["b"].values)
    kw = {"steps": steps, "batch_size": 4096}
    spd((W[:1], b[:1]), **{**kw, "steps": 2})                          # first-call costs outside the timing
    row = compare("superposition/spd", f"TMS 5-2, {n_seeds} seeds, C=20, batch 4096, {steps} steps",
                  ("spd batched (one program)", lambda: spd((W, b), **kw)),
                  ("loop over seeds", lambda: [spd((W[i:i + 1], b[i:i + 1]), **kw) for i in range(n_seeds)]),
                  repeats=1 if quick else 3, warmup=0)
    row["notes"] = (f"{n_seeds} seeds: batched {1e3 * row['t_candidate_s'] / steps:.0f} ms/step, loop "
                    f"{1e3 * row['t_reference_s'] / steps:.0f} ms/step; one seed ≈ "
                    f"{1e3 * row['t_reference_s'] / steps / n_seeds:.1f} ms/step")
    return [row]
