"""The atomic work counter: every task is claimed exactly once, whatever the threads do."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from workbench.parallel import WorkerPool
from workbench.superposition.work_queue import claim, new_counter


@numba.njit(nogil=True)
def _claim_all(counter, taken, spin):
    """Claim tasks until none is left; mark each claimed task; busy-work ``spin`` per task."""
    acc = 0.0
    while True:
        j = claim(counter)
        if j >= taken.size:
            return acc
        for k in range(spin):
            acc += np.sqrt(k + j)
        taken[j] += 1


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_each_task_claimed_exactly_once(workers):
    taken = np.zeros(5000, np.int64)
    counter = new_counter()
    with WorkerPool(workers - 1) as pool:
        pool.run(lambda: _claim_all(counter, taken, 50), workers)
    assert taken.min() == 1 and taken.max() == 1
    assert counter[0] == taken.size + workers  # each worker's last claim found nothing left


def test_claim_returns_previous_value_and_rejects_other_dtypes():
    counter = np.array([41], np.int64)

    @numba.njit
    def twice(c):
        return claim(c), claim(c)

    assert twice(counter) == (41, 42) and counter[0] == 43
    with pytest.raises(TypeError, match="int64 array"):
        twice(np.zeros(1, np.int32))
