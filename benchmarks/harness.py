"""Side-by-side timing: candidates and their reference timed in one process, same inputs.

Each ``benchmarks/bench_*.py`` module exposes ``run(quick: bool) -> list[dict]``; each row comes from
:func:`compare` (or has the same keys). ``benchmarks/run.py`` collects all rows and writes
``benchmarks/results/<device>.json`` and ``.md``. Threads are pinned (threadpoolctl + torch) and
the 1-minute load average is recorded, because on 2 shared cores BLAS threads thrash.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_callable(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; return median/min/all seconds."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def compare(
    benchmark: str,
    workload: str,
    candidate: tuple[str, Callable[[], Any]],
    reference: tuple[str, Callable[[], Any]],
    *,
    warmup: int = 1,
    repeats: int = 5,
    interleave: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Time ``candidate`` against ``reference`` on the same workload; ratio = t_ref / t_cand.

    With ``interleave`` the two are timed alternately (one repeat each, in turns) so a burst of
    background load hits both rather than one.
    """
    (cand_name, cand_fn), (ref_name, ref_fn) = candidate, reference
    for _ in range(warmup):
        cand_fn()
        ref_fn()
    if interleave:
        cand_t, ref_t = [], []
        for _ in range(repeats):
            cand_t.append(time_callable(cand_fn, warmup=0, repeats=1)["min_s"])
            ref_t.append(time_callable(ref_fn, warmup=0, repeats=1)["min_s"])
    else:
        cand_t = time_callable(cand_fn, warmup=0, repeats=repeats)["times_s"]
        ref_t = time_callable(ref_fn, warmup=0, repeats=repeats)["times_s"]
    t_cand, t_ref = statistics.median(cand_t), statistics.median(ref_t)
    return {
        "benchmark": benchmark,
        "workload": workload,
        "candidate": cand_name,
        "reference": ref_name,
        "t_candidate_s": t_cand,
        "t_reference_s": t_ref,
        "ratio": t_ref / t_cand,
        "repeats": repeats,
        "loadavg_1m": os.getloadavg()[0],
        **extra,
    }
