"""workbench.parallel: the pool's threads run torch single-threaded; the caller's count is restored."""
from __future__ import annotations

import numpy as np
import torch

from workbench.parallel import thread_pool, torch_threads
from workbench.superposition import ToyModels


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_pool_threads_are_single_threaded_and_leave_the_caller_alone():
    before = torch.get_num_threads()
    pool = thread_pool(2)
    assert pool is thread_pool(2)
    assert list(pool.map(lambda _: torch.get_num_threads(), range(4))) == [1] * 4
    assert sorted(pool.map(lambda x: x * x, range(4))) == [0, 1, 4, 9]
    assert torch.get_num_threads() == before


def test_pool_threads_stay_single_threaded_after_a_pooled_toy_step():
    # torch gives a thread its count on its first torch call, from the last count any thread
    # set; a pooled toy step (the caller inside torch_threads(1) while the pool's threads start,
    # no torch calls in them) once left them at the caller's count
    m = ToyModels(40, 8, 3, feature_probability=torch.logspace(0, -2, 40), seed=0)
    m.sample_loss_and_grad(64, np.random.default_rng(5), chunk_elements=2 * 64 * 8, threads=4)
    assert list(thread_pool(3).map(lambda _: torch.get_num_threads(), range(6))) == [1] * 6
