"""Koopman lens benchmarks: our exact DMD vs PyDMD on the same snapshots, and trajectory memory.

``python -m benchmarks.run [--quick] --only koopman`` times DMD on a 20,000 × 400 snapshot matrix
(features × snapshots; ours takes it transposed, rows = time) with rank 10, and checks that the
eigenvalues agree. ``python -m benchmarks.bench_koopman --memory 10000000`` measures the peak
resident memory of :func:`trajectory_spectrum` on a lazy (dask) trajectory of that many parameters.
``python -m benchmarks.bench_koopman --cmd`` trains a modular-addition MLP and compares CMD, DMD and
POD reconstructions of its trajectory at equal stored numbers, with pDMD's error as N grows.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks.harness import compare
from workbench.koopman import DMD, cmd, piecewise_dmd, trajectory_spectrum


def snapshots(n_features: int, n_time: int, rank: int = 10, noise: float = 1e-3, seed: int = 0) -> np.ndarray:
    """(n_time, n_features): ``rank`` planted modes (|λ| in [0.9, 1]) in a random basis, plus noise."""
    rng = np.random.default_rng(seed)
    k = rank // 2
    radii, angles = np.linspace(0.9, 1.0, k), np.linspace(0.2, 2.5, k)
    t = np.arange(n_time)[:, None]
    latent = np.concatenate([radii**t * np.cos(angles * t), radii**t * np.sin(angles * t)], axis=1)
    basis = rng.standard_normal((rank, n_features)) / np.sqrt(n_features)
    return latent @ basis + noise * rng.standard_normal((n_time, n_features)) / np.sqrt(n_features)


def eig_difference(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.abs(a[:, None] - b[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max())


def run(quick: bool = False) -> list[dict]:
    import pydmd

    n_features, n_time = (2000, 100) if quick else (20_000, 400)
    X = snapshots(n_features, n_time)
    XT = np.ascontiguousarray(X.T)  # PyDMD: columns = time
    ours = DMD(10, device="cpu").fit(X)
    ref = pydmd.DMD(svd_rank=10, exact=True).fit(XT)
    diff = eig_difference(ours.eigs_, ref.eigs)
    if diff > 1e-8:
        raise AssertionError(f"eigenvalues differ from PyDMD by {diff:.3g}")
    row = compare("dmd_exact_rank10", f"{n_features}x{n_time} (features x snapshots)",
                  ("workbench DMD (gram)", lambda: DMD(10, device="cpu").fit(X)),
                  (f"pydmd {pydmd.__version__ if hasattr(pydmd, '__version__') else ''} DMD".replace("  ", " "),
                   lambda: pydmd.DMD(svd_rank=10, exact=True).fit(XT)),
                  repeats=3 if quick else 5, max_eig_difference=diff,
                  notes=f"same data, rank 10 explicit; max |λ_ours − λ_pydmd| = {diff:.1e}")
    return [row]


def measure_memory(n_params: int, n_steps: int = 100, window: int = 40, rank: int = 10) -> dict:
    """Peak RSS of ``trajectory_spectrum`` on a lazy float32 trajectory (step, param) of ``n_params``."""
    import dask.array as da
    import xarray as xr

    chunk = 250_000
    latent = snapshots(rank, n_steps).astype(np.float32)  # (step, rank)
    basis = da.random.default_rng(0).standard_normal((rank, n_params), chunks=(rank, chunk), dtype=np.float32)
    lazy = da.from_array(latent, chunks=(n_steps, rank)) @ basis
    traj = xr.DataArray(lazy, dims=("step", "param"), coords={"step": np.arange(n_steps)})
    t0 = time.perf_counter()
    ds = trajectory_spectrum(traj, window=window, stride=window // 2, rank=rank, device="cpu",
                             chunk_bytes=n_steps * chunk * 8)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n_params": n_params, "n_steps": n_steps, "windows": ds.sizes["window"],
            "full_float32_gb": n_params * n_steps * 4 / 1e9, "peak_rss_mb": peak_mb, "seconds": seconds}


def compare_cmd(p: int = 23, steps: int = 3000, every: int = 25, modes=(2, 5, 10, 20)) -> dict:
    """CMD vs DMD vs POD at equal stored numbers on a recorded MLP trajectory (issue 21's check).

    CMD keeps ``M·T + 2N`` numbers; a rank-r linear model keeps about ``r·N``, so each M is compared
    with ``r = round((M·T + 2N)/N)``. Errors are ``‖W − Ŵ‖_F/‖W‖_F`` over the whole trajectory.
    """
    import tempfile

    import torch

    from workbench.registry import build_model
    from workbench.store import RunStore
    from workbench.tasks.modular import ModularTask
    from workbench.train import default_optimizer, fit
    from workbench.trajectory import ParameterRecorder

    task = ModularTask(p=p, frac=0.5, seed=0)
    config = {"task": task.config(), "model": {"name": "mlp", "p": p, "d_embed": 32, "d_hidden": 64}}
    run = RunStore(tempfile.mkdtemp()).create(config)
    torch.manual_seed(0)
    model = build_model(config["model"])
    fit(model, task, default_optimizer(model, lr=1e-2), steps, run=run, eval_every=every, checkpoint_every=steps,
        trajectory_every=every, trajectory=ParameterRecorder(model, project_dim=None), progress=False)
    W = run.trajectory().values.astype(np.float64)
    n_param, norm = W.shape[1], np.linalg.norm(W)
    step_norms = np.linalg.norm(W, axis=1)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    rows = []
    for M in modes:
        ds, online = cmd(W, M), cmd(W, M, online=True, warmup=20)
        r = max(1, round(ds.attrs["stored_numbers"] / n_param))
        rows.append({"modes": M, "stored": ds.attrs["stored_numbers"], "rank": r,
                     "cmd": float(np.linalg.norm(ds.relative_error.values * step_norms) / norm),
                     "cmd_online": float(np.linalg.norm(online.relative_error.values * step_norms) / norm),
                     "dmd": float(np.linalg.norm(W - DMD(r, method="svd").fit(W).reconstruct()) / norm),
                     "pod": float(np.linalg.norm(W - (U[:, :r] * s[:r]) @ Vt[:r]) / norm)})
    pd = piecewise_dmd(W, n_windows=[1, 2, 4, 8], rank=4)
    return {"shape": W.shape, "test_acc": float(run.metrics().test_acc[-1]), "rows": rows,
            "pdmd_error": dict(zip(pd.n_windows.values.tolist(), pd.error.values.tolist()))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory", type=int, default=0, help="measure trajectory_spectrum memory for N params")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cmd", action="store_true", help="CMD vs DMD vs POD on a recorded MLP trajectory")
    args = parser.parse_args()
    if args.memory:
        print(measure_memory(args.memory))
    elif args.cmd:
        print(compare_cmd())
    else:
        for r in run(args.quick):
            print(r)
