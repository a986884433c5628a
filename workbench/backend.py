"""Backend choice shared by every kernel: Triton on CUDA when importable, else the torch reference.

``backend="auto"`` picks Triton only for CUDA tensors; on the CPU the plain-torch reference always
runs. ``backend="triton"`` forces the Triton kernel: on a CUDA device it is compiled, on the CPU it
runs in Triton's interpreter, which needs ``TRITON_INTERPRET=1`` in the environment **before**
``triton`` is first imported (``triton.jit`` reads it at decoration time). ``backend="torch"``
forces the reference.
"""
from __future__ import annotations

import importlib.util
import os

import torch

from workbench.device import resolve_device

BACKENDS = ("auto", "triton", "torch")

try:  # triton is the optional ``[gpu]`` extra (also in ``[dev]`` so tests run the interpreter)
    import triton
    import triton.language as tl
    HAS_TRITON = True
except Exception:  # noqa: BLE001  # pragma: no cover - exercised only where triton is absent or broken
    triton = None  # type: ignore[assignment]
    tl = None  # type: ignore[assignment]
    HAS_TRITON = False


def interpreter_enabled() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def triton_status() -> str:
    """One line saying whether Triton kernels can run here, and how."""
    if not HAS_TRITON:
        found = importlib.util.find_spec("triton") is not None
        return "triton is installed but failed to import" if found else "triton is not installed"
    if torch.cuda.is_available():
        return "triton kernels compile for CUDA"
    if interpreter_enabled():
        return "triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)"
    return "no CUDA and TRITON_INTERPRET is not set: only the torch reference runs"


def target_device(device, x=None) -> torch.device:
    """``device=None`` keeps the input's device (CPU for non-tensors); else ``resolve_device``."""
    if device is None:
        if isinstance(x, torch.Tensor):
            return x.device
        if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
            return x[0].device
        return torch.device("cpu")
    return resolve_device(device)


def choose_backend(backend: str, device: torch.device) -> str:
    """Resolve ``backend`` to ``"triton"`` or ``"torch"`` for tensors on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    usable = HAS_TRITON and (device.type == "cuda" or (device.type == "cpu" and interpreter_enabled()))
    if backend == "auto":
        return "triton" if HAS_TRITON and device.type == "cuda" else "torch"
    if not usable:
        hint = (" Set TRITON_INTERPRET=1 before importing triton to run kernels on the CPU."
                if HAS_TRITON else " Install the [gpu] extra, or use backend='torch'.")
        raise RuntimeError(f"backend='triton' on device {device}: {triton_status()}.{hint}")
    return "triton"


def check_runnable(kernel, device: torch.device) -> None:
    """Raise a clear error if ``kernel`` was compiled for the GPU but is asked to run on the CPU
    (``workbench.kernels`` was imported before ``TRITON_INTERPRET=1`` was set)."""
    if device.type != "cuda" and type(kernel).__name__ != "InterpretedFunction":
        raise RuntimeError("this Triton kernel was decorated without TRITON_INTERPRET=1, so it cannot "
                           f"run on {device}; set TRITON_INTERPRET=1 before importing workbench.kernels")
