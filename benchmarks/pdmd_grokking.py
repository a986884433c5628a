"""Piecewise DMD of the paper's grokking run: do the window errors jump at the phase boundaries?

``python -m benchmarks.pdmd_grokking --data /tmp/grok40k`` reads the newest grokking run of a
store (``workbench train grokking``: Nanda et al.'s 40k-step configuration, trajectory sketch every
100 steps) and writes ``benchmarks/results/pdmd_grokking_40k.md`` (+ ``.json`` and a ``.png`` of
the window errors against the step with :func:`detect_phases`' boundaries marked).

For each window count N, :func:`workbench.koopman.piecewise_dmd` fits an exact DMD of rank
``--rank`` per window (Alla, Monti & Sgura); a phase boundary "shows" when the window holding it
has one of the largest errors among the N windows.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.results_io import RESULTS, command_line, write_results
from benchmarks.training_dynamics import pdmd_table
from workbench.grokking.phases import detect_phases
from workbench.koopman import piecewise_dmd
from workbench.store import RunStore

NAME = "pdmd_grokking_40k"


def newest_grokking_run(store: RunStore, run_id: str | None):
    if run_id is not None:
        return store.open(run_id)
    runs = [r for r in store if r.config.get("kind") == "grokking"]
    if not runs:
        raise SystemExit(f"no grokking run in {store.root}: train one with `workbench train grokking --data {store.root}`")
    return max(runs, key=lambda r: r.state.get("created", ""))


def figure(pd, boundaries: dict, counts: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for n in counts:
        we = pd.window_error.sel(n_windows=n).values[:n]
        lo, hi = pd.window_start.sel(n_windows=n).values[:n], pd.window_end.sel(n_windows=n).values[:n]
        ax.step(np.append(lo, hi[-1]), np.append(we, we[-1]), where="post", label=f"N = {n}")
    for name, step in boundaries.items():
        if step is not None:
            ax.axvline(step, color="k", ls=":", lw=1)
            ax.text(step, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.set_xscale("symlog", linthresh=100)
    ax.set(xlim=(0, float(pd.window_end.max())), xlabel="step (linear to 100, log beyond)", yscale="log",
           ylabel="window error ‖X_j − X̂_j‖/‖X_j‖")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="run store holding the grokking run")
    ap.add_argument("--run", default=None, help="run id (default: the newest grokking run)")
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--windows", default="1,2,4,8,16,32,64")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = newest_grokking_run(RunStore(args.data), args.run)
    metrics, traj = run.metrics(), run.trajectory()
    phases = detect_phases(metrics)
    b = phases["boundaries"]
    counts = [int(n) for n in args.windows.split(",")]
    pd = piecewise_dmd(traj, n_windows=counts, rank=args.rank)
    table, lines = pdmd_table(pd, b, rank=args.rank)
    RESULTS.mkdir(exist_ok=True)
    figure(pd, b, [n for n in counts if n >= 8], RESULTS / f"{NAME}.png")
    command = command_line("pdmd_grokking", argv)
    steps = traj["step"].values
    text = [f"# Piecewise DMD of the grokking run `{run.id}`", "", f"`{command}` — torch {torch.__version__}.", "",
            (f"Run: {run.config.get('train', {}).get('steps', '?')} steps configured, {int(run.state.get('step', 0))} "
            f"trained, status `{run.status}`; trajectory: {traj.sizes['step']} snapshots (steps {int(steps[0])}–"
            f"{int(steps[-1])}) of the {traj.sizes['param']}-dimensional sketch. Phases (`detect_phases`): "
            f"memorization 0–{b['t1']}, circuit formation {b['t1']}–{b['t2']}, cleanup {b['t2']}–{b['t3']}; "
            f"grokked: {phases['grokked']}."), "", f"![window errors]({NAME}.png)", "", *lines, ""]
    write_results(NAME, text, {"command": command, "run_id": run.id, "phases": b, "rank": args.rank,
                               "pdmd": table})


if __name__ == "__main__":
    main()
