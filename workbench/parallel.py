"""Thread-level parallelism on the CPU: a persistent pool and torch's intra-op thread count.

The lenses split independent work (one eigensolve per layer, one chunk of toy-model instances)
over a few Python threads, each running single-threaded BLAS/torch kernels that release the GIL.
On small operands this beats torch's or BLAS's own threading, whose per-op synchronisation costs
more than the op (and collapses on a loaded machine).

torch's thread count (OpenMP's ``nthreads`` setting) belongs to the calling thread: setting it in
one thread changes neither the threads that already run nor, once they have run torch, later calls.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache

import torch

__all__ = ["run_on_threads", "thread_pool", "torch_threads"]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the calling thread's torch CPU ops on ``n`` threads inside the block (restored after)."""
    old = torch.get_num_threads()
    if n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _single_threaded_torch() -> None:
    """Make this thread's torch ops single-threaded. torch sets a thread's count lazily, on its
    first use, from the last count set by any thread, so that first use comes before the setting."""
    torch.get_num_threads()
    torch.set_num_threads(1)


@cache
def thread_pool(workers: int) -> ThreadPoolExecutor:
    """A persistent pool of ``workers`` threads whose torch ops run single-threaded (the pool is
    the parallelism); starting threads per call costs up to 0.1 s under load."""
    return ThreadPoolExecutor(workers, thread_name_prefix="workbench", initializer=_single_threaded_torch)


def run_on_threads(fn: Callable[[], object], workers: int) -> None:
    """Run ``fn()`` on ``workers`` threads at once and wait for all: one on the calling thread (it
    would only wait; waking one more pool thread costs ~0.3 ms), the others on :func:`thread_pool`.
    The calls share their work themselves (e.g. claiming tasks from a
    :mod:`workbench.superposition.work_queue` counter); ``fn`` must release the GIL to run in parallel
    (compiled kernels, BLAS)."""
    others = [thread_pool(workers - 1).submit(fn) for _ in range(1, workers)]
    fn()
    for future in others:
        future.result()
