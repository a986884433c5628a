"""A shared work counter for compiled kernels: threads claim task indices one at a time.

Kernels that several threads run over one list of independent tasks (chunks of toy-model
instances, :mod:`workbench.superposition.cpu_step`) take the next task from a counter with an atomic
fetch-and-add instead of a fixed share each: a thread that starts late (a pool thread waking up)
or runs slow (a vCPU the host is busy with) simply takes fewer tasks, so a step ends when the
work is done, not when the slowest share is. Which thread runs a task never changes its numbers
(each task writes its own outputs).

Numba has no atomics on the CPU; :func:`claim` is LLVM's ``atomicrmw add`` (sequentially
consistent) on an int64 array element, as an ``@intrinsic``.
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["claim", "new_counter"]


@intrinsic
def claim(typingctx, counter):
    """``claim(counter)``: atomically add 1 to ``counter[0]`` (int64 array) and return its old value."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        raise TypeError("claim needs an int64 array as its counter")

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", ptr, context.get_constant(types.int64, 1), "seq_cst")

    return types.int64(counter), codegen


def new_counter() -> np.ndarray:
    """A fresh counter (the next task is 0) to hand to every thread of one run."""
    return np.zeros(1, np.int64)
