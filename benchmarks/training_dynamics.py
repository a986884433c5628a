"""Training-dynamics measurements: the gradual-rank toy, and ΔW / compressibility / pDMD on a grokking run.

``python -m benchmarks.training_dynamics --data /tmp/dyn/runs`` writes
``benchmarks/results/training_dynamics.md`` (+ ``.json`` and ``gradual_rank_toy.png``) with the exact
command line:

1. :func:`workbench.spectrum.gradual_rank_toy` for α ∈ {1e-2, 1e-3} (Boix-Adsera et al. 2023):
   where the loss crosses 0.5 and 0.1 in t / log(1/α) and in t, and every change of the ΔW ranks.
2. The modular-addition MLP (p = 97, d_embed 128, d_hidden 256, frac 0.5, AdamW lr 1e-3 wd 1,
   full batch, 3000 steps, every parameter recorded every 10 steps; reused if ``--data`` holds it):
   :func:`detect_phases`, :func:`delta_spectrum` and :func:`compressibility` at the phase
   boundaries, and :func:`workbench.koopman.piecewise_dmd`'s window errors next to the boundaries.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from benchmarks.results_io import RESULTS, command_line, write_results
from workbench.grokking.phases import detect_phases
from workbench.koopman import piecewise_dmd
from workbench.registry import build_model
from workbench.spectrum import compressibility, delta_spectrum, gradual_rank_toy
from workbench.store import RunStore
from workbench.tasks.modular import build_task
from workbench.train import default_optimizer, fit
from workbench.trajectory import ParameterRecorder

CONFIG = {"kind": "dyn-grok", "task": {"name": "modular", "p": 97, "op": "add", "frac": 0.5, "seed": 0},
          "model": {"name": "mlp", "p": 97, "d_embed": 128, "d_hidden": 256, "seed": 0},
          "train": {"wd": 1.0, "steps": 3000, "lr": 1e-3, "every": 10}}


def toy_section(lr: float, horizon: float, n_samples: int) -> tuple[dict, list[str]]:
    runs, out = {}, {}
    for alpha in (1e-2, 1e-3):
        runs[alpha] = ds = gradual_rank_toy(alpha, steps=math.ceil(horizon * math.log(1 / alpha) / lr), lr=lr,
                                            every=10, n_samples=n_samples)
        ranks, loss, rt = ds.numerical_rank.values, ds.loss.values, ds.rescaled_time.values
        events = np.flatnonzero(np.any(np.diff(ranks, axis=0) != 0, axis=1)) + 1
        out[alpha] = {"cross": {c: float(rt[np.argmax(loss < c)]) for c in (0.5, 0.1)},
                      "events": [(round(float(rt[i]), 2), ranks[i].tolist()) for i in events],
                      "max_increment": int(np.diff(ranks, axis=0).max()), "final": ranks[-1].tolist()}
    _toy_png(runs)
    lines = [("| α | t/log(1/α) at loss < 0.5 | at loss < 0.1 | t at loss < 0.1 | largest rank step | final ranks "
             "(W_Q W_K W_V W_O) |"), "|---|---|---|---|---|---|"]
    for alpha, r in out.items():
        lines.append(f"| {alpha:g} | {r['cross'][0.5]:.2f} | {r['cross'][0.1]:.2f} | "
                     f"{r['cross'][0.1] * math.log(1 / alpha):.0f} | {r['max_increment']} | {r['final']} |")
    lines += ["", "Rank changes (t/log(1/α), ranks):", ""]
    lines += [f"- α = {alpha:g}: " + ", ".join(f"{t} {rk}" for t, rk in r["events"]) for alpha, r in out.items()]
    return {str(k): v for k, v in out.items()}, lines


def _toy_png(runs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for (alpha, ds), color in zip(runs.items(), ("tab:blue", "tab:red")):
        x = ds.rescaled_time.values
        a1.semilogy(x, ds.loss.values, color=color, label=f"α = {alpha:g}")
        for name, style in zip(ds.layer.values, ("-", ":", "--", "-.")):
            a2.step(x, ds.numerical_rank.sel(layer=name).values, style, color=color, where="post",
                    label=f"{name}" if alpha == 1e-2 else None)
    a1.set_ylabel("loss")
    a1.legend()
    a2.set_ylabel("numerical rank of ΔW")
    a2.set_xlabel("t / log(1/α)")
    a2.legend(ncol=4, fontsize=8)
    fig.suptitle("Diagonal attention toy: stages line up in t / log(1/α)")
    fig.tight_layout()
    fig.savefig(RESULTS / "gradual_rank_toy.png", dpi=110)


def grok_run(store: RunStore):
    run = store.create(CONFIG)
    steps, every = CONFIG["train"]["steps"], CONFIG["train"]["every"]
    if run.state.get("step", 0) < steps:
        model, task = build_model(CONFIG["model"]), build_task(CONFIG["task"])
        fit(model, task, default_optimizer(model, lr=1e-3, weight_decay=1.0), steps, run=run, eval_every=every,
            checkpoint_every=steps, trajectory_every=every, trajectory=ParameterRecorder(model, project_dim=None),
            seed=0, progress=False)
    return run


def pdmd_table(pd, boundaries: dict, rank: int) -> tuple[dict, list[str]]:
    """:func:`piecewise_dmd`'s error indicators as N grows, with the window holding each phase boundary."""
    lines = [(f"piecewise DMD (rank {rank} per window): global error, the largest and smallest window errors, "
              "and the error of the window holding each phase boundary with its rank among the N windows "
              "(1 = worst):"), "",
             "| N | ‖X − X̂‖/‖X‖ | worst window (steps): error | best window error | "
             + " | ".join(boundaries) + " |", "|---|---|---|---|" + "---|" * len(boundaries)]
    out = {}
    for n in pd.n_windows.values:
        we = pd.window_error.sel(n_windows=n).values[:n]
        starts = pd.window_start.sel(n_windows=n).values[:n]
        j = int(np.nanargmax(we))
        s0, s1 = int(starts[j]), int(pd.window_end.sel(n_windows=n)[j])
        holding = {k: int(np.searchsorted(starts, v, side="right") - 1) for k, v in boundaries.items() if v is not None}
        out[int(n)] = {"error": float(pd.error.sel(n_windows=n)), "window_error": we.tolist(),
                       "window_start": starts.tolist(), "boundary_window": holding}
        cells = [f"{we[w]:.1e} ({int((we > we[w]).sum()) + 1}/{n})" if k in holding else "—"
                 for k, w in ((k, holding.get(k)) for k in boundaries)]
        lines.append(f"| {n} | {float(pd.error.sel(n_windows=n)):.2e} | {s0}–{s1}: {we[j]:.1e} | {np.nanmin(we):.1e} | "
                     + " | ".join(cells) + " |")
    return out, lines


def grok_section(store: RunStore) -> tuple[dict, list[str]]:
    t0 = time.perf_counter()
    run = grok_run(store)
    t_train = time.perf_counter() - t0
    phases = detect_phases(run.metrics())
    b = phases["boundaries"]
    t0 = time.perf_counter()
    delta = delta_spectrum(run)
    t_delta = time.perf_counter() - t0
    marks = [0, 10, 50, b["t1"], (b["t1"] + b["t2"]) // 2 // 10 * 10, b["t2"], (b["t2"] + b["t3"]) // 2 // 10 * 10,
             b["t3"], 3000]
    t0 = time.perf_counter()
    comp = compressibility(run, steps=marks)
    sign = compressibility(run, steps=marks, payload="sign", codecs=("gzip",))
    t_comp = time.perf_counter() - t0
    t0 = time.perf_counter()
    pd = piecewise_dmd(run, n_windows=[1, 2, 4, 8, 16, 32], rank=10)
    t_pdmd = time.perf_counter() - t0
    names = delta.layer.values.tolist()
    lines = [(f"Run `{run.id}`: phases (detect_phases) memorization 0–{b['t1']}, circuit formation {b['t1']}–{b['t2']}, "
             f"cleanup {b['t2']}–{b['t3']}; final test accuracy {float(run.metrics().test_acc[-1]):.3f}. "
             f"Seconds: training {t_train:.0f} (0 = reused), delta_spectrum {t_delta:.1f} (301 steps), "
             f"compressibility {t_comp:.1f} ({len(marks)} steps, 4 codec runs), piecewise_dmd {t_pdmd:.1f}."), "",
             "| step | stable rank of ΔW (" + ", ".join(names) + ") | numerical rank (σ > 0.01 σ₁) | ‖ΔW‖_F/‖W₀‖_F | "
             "gzip / bz2 / lzma ratio (float32) | gzip ratio (sign bytes) |", "|---|---|---|---|---|---|"]
    for s in marks:
        d, c = delta.sel(step=s), comp.ratio.sel(step=s).values
        lines.append(f"| {s} | {' / '.join(f'{x:.1f}' for x in d.stable_rank.values)} | "
                     f"{' / '.join(str(int(x)) for x in d.numerical_rank.values)} | "
                     f"{' / '.join(f'{x:.2f}' for x in d.rel_norm.values)} | {' / '.join(f'{x:.4f}' for x in c)} | "
                     f"{float(sign.ratio.sel(step=s, codec='gzip')):.3f} |")
    pdmd, pdmd_lines = pdmd_table(pd, b, rank=10)
    lines += ["", *pdmd_lines]
    res = {"run_id": run.id, "phases": b, "marks": marks, "layers": names,
           "stable_rank": delta.stable_rank.sel(step=marks).values.tolist(),
           "numerical_rank": delta.numerical_rank.sel(step=marks).values.tolist(),
           "ratio": comp.ratio.values.tolist(), "sign_ratio": sign.ratio.values.tolist(), "pdmd": pdmd}
    return res, lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/runs", help="run store holding (or to hold) the grokking run")
    ap.add_argument("--toy-lr", type=float, default=0.05)
    ap.add_argument("--toy-horizon", type=float, default=26.0)
    ap.add_argument("--toy-samples", type=int, default=256)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    command = command_line("training_dynamics", argv)
    toy, toy_lines = toy_section(args.toy_lr, args.toy_horizon, args.toy_samples)
    grok, grok_lines = grok_section(RunStore(args.data))
    text = ["# Training dynamics: gradual rank increase, ΔW, compressibility, pDMD", "",
            f"`{command}` — torch {torch.__version__}, 1 thread.", "",
            "## Diagonal attention toy (Boix-Adsera et al. 2023)", "", "![toy](gradual_rank_toy.png)", "",
            *toy_lines, "", "## Modular-addition MLP that groks (p = 97, 3000 steps)", "", *grok_lines, ""]
    write_results("training_dynamics", text, {"command": command, "toy": toy, "grokking": grok})


if __name__ == "__main__":
    main()
