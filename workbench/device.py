"""Device, dtype and seeding choices shared by every module.

``resolve_device("auto")`` picks CUDA when it is available, else the CPU. Models and runs draw
from their own ``torch.Generator`` (:func:`init_generator`), never from the global RNG, so runs in
threads of one process do not disturb each other; :func:`seed_everything` is for scripts and
notebooks that want the global RNGs seeded too.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

DeviceLike = str | torch.device | None


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """Return a concrete ``torch.device``; ``"auto"``/``None`` → CUDA if available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded with ``seed``."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def init_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """The generator a model draws its initial weights from: ``generator``, or a fresh one seeded
    with ``seed``, or ``None`` (torch's global RNG, as any ``nn.Module``)."""
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator, not both")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return torch.Generator().manual_seed(seed) if seed is not None else generator


def set_deterministic(threads: int | None = None) -> None:
    """Make CPU runs bit-reproducible: deterministic algorithms and an optional fixed thread count."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is None:
        threads = int(os.environ.get("WORKBENCH_THREADS", "0")) or None
    if threads:
        torch.set_num_threads(threads)
