"""workbench.parallel: the pool's threads run torch single-threaded; the caller's count is restored."""
from __future__ import annotations

import torch

from workbench.parallel import thread_pool, torch_threads


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
