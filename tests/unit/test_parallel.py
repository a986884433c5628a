"""workbench.parallel: a pool's threads run torch single-threaded, end with their owner; the caller's count is restored."""
from __future__ import annotations

import threading

import numpy as np
import torch

from workbench.parallel import WorkerPool, flush_denormals, flushing_denormals, torch_threads
from workbench.superposition import ToyModels


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_pool_threads_are_single_threaded_and_leave_the_caller_alone():
    before = torch.get_num_threads()
    with WorkerPool(2) as pool:
        assert list(pool.map(lambda _: torch.get_num_threads(), range(4))) == [1] * 4
        assert list(pool.map(lambda x: x * x, range(4))) == [0, 1, 4, 9]
    assert torch.get_num_threads() == before


def _workbench_threads() -> int:
    return sum(t.name.startswith("workbench") for t in threading.enumerate())


def test_pool_threads_end_with_close_and_with_their_owner():
    start = _workbench_threads()
    pool = WorkerPool(2)
    list(pool.map(lambda x: x, range(4)))
    assert _workbench_threads() == start + 2
    pool.close()
    assert _workbench_threads() == start
    pool = WorkerPool(2)
    list(pool.map(lambda x: x, range(4)))
    del pool  # the owner drops it: the finalizer shuts the threads down
    assert _workbench_threads() == start


def test_run_uses_the_caller_and_at_most_the_helpers():
    seen = set()
    with WorkerPool(1) as pool:
        pool.run(lambda: seen.add(threading.get_ident()), threads=4)
    assert len(seen) <= 2 and threading.get_ident() in seen
    with WorkerPool(0) as pool:
        pool.run(lambda: seen.add("caller only"), threads=3)
    assert "caller only" in seen


def test_pool_threads_stay_single_threaded_after_a_pooled_toy_step():
    # torch gives a thread its count on its first torch call, from the last count any thread
    # set; a pooled toy step (the caller inside torch_threads(1) while the pool's threads start,
    # no torch calls in them) once left them at the caller's count
    m = ToyModels(40, 8, 3, feature_probability=torch.logspace(0, -2, 40), seed=0)
    with WorkerPool(3) as pool:
        m.sample_loss_and_grad(64, np.random.default_rng(5), chunk_elements=2 * 64 * 8, threads=4, pool=pool)
        assert list(pool.map(lambda _: torch.get_num_threads(), range(6))) == [1] * 6


def test_flush_denormals_zeroes_subnormals_inside_and_restores_what_it_found():
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal in float32
    assert float(tiny * 1.0) != 0.0 and not flushing_denormals()
    with flush_denormals():
        assert float(tiny * 1.0) == 0.0 and flushing_denormals()
    assert float(tiny * 1.0) != 0.0
    torch.set_flush_denormal(True)  # set by the caller (the workbench command): left on
    try:
        with flush_denormals():
            pass
        assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
