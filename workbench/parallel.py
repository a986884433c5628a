"""Thread-level parallelism on the CPU: pools of helper threads with an owner, and torch's thread count.

The lenses split independent work (one eigensolve per layer, one chunk of toy-model instances)
over a few Python threads, each running single-threaded BLAS/torch kernels that release the GIL.
On small operands this beats torch's or BLAS's own threading, whose per-op synchronisation costs
more than the op (and collapses on a loaded machine).

torch's thread count (OpenMP's ``nthreads`` setting) belongs to the calling thread: setting it in
one thread changes neither the threads that already run nor, once they have run torch, later calls.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

__all__ = ["WorkerPool", "flush_denormals", "flushing_denormals", "torch_threads"]

T = TypeVar("T")
R = TypeVar("R")


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


def flushing_denormals() -> bool:
    """Whether the calling thread treats subnormal floats as zero (a subnormal times one gives 0)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero on the CPU inside the block (as before it, after).

    Weight decay drives weights, gradients and Adam's second moments towards zero; once values are
    subnormal (|x| < 1.2e-38 in float32) every operation on them takes the CPU's slow path. The
    paper's grokking run trained 5x slower after its cleanup for it: 3.2 vs 16 steps/s on one
    thread from its step-5000 checkpoint (2026-12-06). Values that small are zero to training.

    The setting belongs to a thread, and threads inherit it when they start: torch's intra-op
    threads that already run keep theirs. The ``workbench`` command sets it before torch starts
    them (:func:`workbench.cli.main`); a script training on several threads can call
    ``torch.set_flush_denormal(True)`` before its first torch operation.
    """
    if flushing_denormals() or not torch.set_flush_denormal(True):  # already on, or this CPU cannot
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _single_threaded_torch() -> None:
    """Make this thread's torch ops single-threaded. torch sets a thread's count lazily, on its
    first use, from the last count set by any thread, so that first use comes before the setting."""
    torch.get_num_threads()
    torch.set_num_threads(1)


class WorkerPool:
    """``workers`` helper threads whose torch ops run single-threaded, owned by whoever made it.

    A training loop or an analysis call creates one (``with WorkerPool(n) as pool:``) and reuses
    it for every step: starting threads per step costs up to 0.1 s on a loaded machine. The threads
    end with :meth:`close`, the ``with`` block, or when the owner drops the pool.
    """

    def __init__(self, workers: int):
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a non-negative int, got {workers!r}")
        self.workers = workers
        self._executor = (ThreadPoolExecutor(workers, thread_name_prefix="workbench",
                                             initializer=_single_threaded_torch) if workers else None)
        self._close = weakref.finalize(self, _shutdown, self._executor)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let the threads finish their work and end."""
        self._close()

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` over ``items`` on the helper threads (in order; on the caller without helpers)."""
        return self._executor.map(fn, items) if self._executor else map(fn, items)

    def run(self, fn: Callable[[], object], threads: int) -> None:
        """Run ``fn()`` on ``threads`` threads at once and wait for all: one on the calling thread
        (it would only wait; waking one more helper costs ~0.3 ms), the others on helpers (at most
        ``workers``). The calls share their work themselves (e.g. claiming tasks from a
        :mod:`workbench.superposition.work_queue` counter); ``fn`` must release the GIL to run in
        parallel (compiled kernels, BLAS)."""
        helpers = min(threads - 1, self.workers)
        others = [self._executor.submit(fn) for _ in range(helpers)] if helpers > 0 else []
        fn()
        for future in others:
            future.result()


def _shutdown(executor: ThreadPoolExecutor | None) -> None:
    if executor is not None:
        executor.shutdown(wait=True)
