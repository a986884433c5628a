"""Layers as Dask tasks: each worker reads its layer from the weights file and returns the ESD.

``analyze(path, scheduler=...)`` sends one task per layer to a Dask ``distributed`` scheduler (an
address such as ``tcp://host:8786``, or a ``Client``; a ``LocalCluster`` in the tests). A task
carries the file reader (paths only, a few hundred bytes) and the layer's description, never the
weights: the worker memory-maps the file and reads the one tensor itself, so the files must be
reachable under the same path from every worker (a shared or replicated filesystem). Each task
runs single-threaded BLAS and torch, as the local path does, so the eigenvalues — and so every
metric — are identical to a local run.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch

from workbench.parallel import torch_threads
from workbench.spectrum.eigen import (
    LayerEvals,
    NonFiniteWeights,
    exact_layer_evals,
    layer_evals_or_skip,
    single_threaded_blas,
)
from workbench.spectrum.layers import LayerMatrices
from workbench.spectrum.weights import TensorReader

__all__ = ["client_for", "dask_exact_evals", "dask_layers_evals"]


@contextmanager
def client_for(scheduler):
    """A ``distributed.Client`` for ``scheduler`` (an address, or a Client used as is and left
    open); a client made here is closed on exit."""
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be a Dask scheduler address or a distributed.Client, "
                        f"got {type(scheduler).__name__}")
    client = Client(scheduler)
    try:
        yield client
    finally:
        client.close()


def _task(reader: TensorReader, lay: LayerMatrices, precision: str, skip_nonfinite: bool
          ) -> LayerEvals | NonFiniteWeights:
    with single_threaded_blas(), torch_threads(1):
        return layer_evals_or_skip(reader, lay, precision, skip_nonfinite)


def _exact_task(reader: TensorReader, lay: LayerMatrices) -> torch.Tensor:
    with single_threaded_blas(), torch_threads(1):
        return exact_layer_evals(reader, lay)


def _run(client, fn: Callable, reader: TensorReader, lays: list[LayerMatrices], *args,
         on_done: Callable[[], object] = lambda: None) -> list:
    shared = client.scatter(reader, broadcast=True)
    order = sorted(range(len(lays)), key=lambda k: -lays[k].cost)  # largest first
    futures = [client.submit(fn, shared, lays[k], *args, pure=False, priority=-i) for i, k in enumerate(order)]
    out: list = [None] * len(lays)
    for k, future in zip(order, futures):
        out[k] = future.result()
        on_done()
    return out


def dask_layers_evals(reader: TensorReader, lays: list[LayerMatrices], precision: str, client,
                      skip_nonfinite: bool = False, on_done: Callable[[], object] = lambda: None
                      ) -> list[LayerEvals | NonFiniteWeights]:
    """:func:`workbench.spectrum.eigen.layers_evals` with one Dask task per layer on ``client``."""
    return _run(client, _task, reader, lays, precision, skip_nonfinite, on_done=on_done)


def dask_exact_evals(reader: TensorReader, lays: list[LayerMatrices], client) -> list[torch.Tensor]:
    """:func:`workbench.spectrum.eigen.exact_layer_evals` with one Dask task per layer on ``client``."""
    return _run(client, _exact_task, reader, lays)
