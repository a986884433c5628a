"""Split a grokking run into memorization / circuit formation / cleanup (Nanda et al. 2023, Sec. 5.3).

Rule (on the run's ``step`` series; thresholds are arguments):

1. **Memorization** ``[first step, t1)``: ``t1`` = first step with ``train_acc ≥ train_threshold``
   (0.99): the training set is fitted.
2. **Circuit formation** ``[t1, t2)``: test loss stays high while the Fourier circuit grows
   (restricted loss falls, excluded loss rises). ``t2`` = first step after the test-loss peak
   (taken at or after ``t1``) at which test loss has fallen by ``drop`` (10 %) of its total
   fall ``peak − final``.
3. **Cleanup** ``[t2, t3)``: test loss collapses as weight decay removes the memorising
   components (weight norm falls). ``t3`` = first step after ``t2`` at which test loss has made
   ``1 − drop`` (90 %) of its fall.

Circuit formation and cleanup are only reported for a run that **grokked**: its test accuracy
reached ``test_threshold`` (0.9) at some step (without ``test_acc``: its test loss made the whole
fall to ``t3``). A run that fitted its training set but never generalised may still see its test
loss drift down by a nat or two; that is not cleanup, so such a run gets ``t2 = t3 = None`` and
``grokked: False``. Boundaries not reached are ``None``. The paper's run (p = 113) gives about
1.4k / 9.4k / 14k steps.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from workbench.validation import check_range

PHASES = ("memorization", "circuit_formation", "cleanup")


def detect_phases(metrics: xr.Dataset, *, train_threshold: float = 0.99, drop: float = 0.1,
                  min_fall: float = 0.5, test_threshold: float = 0.9) -> dict:
    """Phase boundaries of a grokking run from ``train_acc`` and ``test_loss`` (rule: module docstring).

    Parameters
    ----------
    metrics : Dataset over ``step`` with ``train_acc`` and ``test_loss`` (NaNs are skipped).
    train_threshold : training accuracy that ends memorization.
    drop : fraction of the test-loss fall that starts cleanup; ``1 − drop`` ends it.
    min_fall : test loss must fall by at least this much (nats) from its peak for circuit formation
        to end at all; otherwise ``t2 = t3 = None``.
    test_threshold : test accuracy a run must reach to count as grokked (used when ``test_acc``
        is recorded).

    Returns
    -------
    dict, JSON-serialisable: ``{"boundaries": {"t1": int|None, "t2": ..., "t3": ...},
    "phases": {name: [start, end|None] | None}, "grokked": bool, "rule": str}``.
    """
    for var in ("train_acc", "test_loss"):
        if var not in metrics:
            raise ValueError(f"metrics must contain {var!r} over 'step'; has {sorted(metrics.data_vars)}")
    check_range(train_threshold, "train_threshold", 0.0, 1.0)
    check_range(drop, "drop", 0.0, 0.5, low_open=True)
    check_range(test_threshold, "test_threshold", 0.0, 1.0)
    ds = metrics[["train_acc", "test_loss"]].dropna("step", how="any").sortby("step")
    steps = ds.step.values.astype(int)
    if len(steps) == 0:
        raise ValueError("metrics have no step with both train_acc and test_loss")
    acc, loss = ds.train_acc.values, ds.test_loss.values
    t1 = t2 = t3 = None
    hit = np.flatnonzero(acc >= train_threshold)
    if len(hit):
        i1 = int(hit[0])
        t1 = int(steps[i1])
        i_peak = i1 + int(np.argmax(loss[i1:]))
        peak, final = float(loss[i_peak]), float(loss[-1])
        fall = peak - final
        if fall >= min_fall:
            after = np.arange(i_peak, len(loss))
            i2 = after[loss[after] <= peak - drop * fall]
            if len(i2):
                t2 = int(steps[i2[0]])
                i3 = after[(after >= i2[0]) & (loss[after] <= peak - (1 - drop) * fall)]
                t3 = int(steps[i3[0]]) if len(i3) else None
    grokked = _grokked(metrics, test_threshold, t3)
    if not grokked:
        t2 = t3 = None
    start = int(steps[0])
    return {"boundaries": {"t1": t1, "t2": t2, "t3": t3},
            "phases": {"memorization": [start, t1],
                       "circuit_formation": [t1, t2] if grokked and t1 is not None else None,
                       "cleanup": [t2, t3] if t2 is not None else None},
            "grokked": grokked,
            "rule": f"t1: train_acc>={train_threshold}; t2/t3: test loss fell {drop:.0%}/{1 - drop:.0%} "
                    f"of peak-to-final after t1, only once test_acc>={test_threshold} "
                    "(Nanda et al. 2023 Sec. 5.3)"}


def current_phases(stored: dict | None, metrics: Callable[[], xr.Dataset]) -> dict | None:
    """``stored`` phases, re-detected from ``metrics()`` (read only then) when they were recorded
    before runs said whether they grokked (such phases may name a cleanup a run that never
    generalised did not have)."""
    if not stored or "grokked" in stored:
        return stored
    return {**detect_phases(metrics()), "note": "re-detected from the metrics: stored before runs recorded "
                                              "whether they grokked"}


def _grokked(metrics: xr.Dataset, test_threshold: float, t3: int | None) -> bool:
    """Did the run generalise: test accuracy reached ``test_threshold`` (else: test loss fell to t3)?"""
    if "test_acc" in metrics:
        acc = metrics["test_acc"].values
        acc = acc[np.isfinite(acc)]
        return bool(acc.size) and float(acc.max()) >= test_threshold
    return t3 is not None
