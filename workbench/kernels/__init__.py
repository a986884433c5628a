"""GPU kernels for the lenses' hot paths, each with the plain-torch reference it must match.

Every dispatcher takes ``device=`` (None keeps the input's device, "auto" → CUDA if available) and
``backend="auto" | "triton" | "torch"``. ``auto`` runs Triton on CUDA and the torch reference on
the CPU; ``triton`` on the CPU runs Triton's interpreter (needs ``TRITON_INTERPRET=1`` before
``triton`` is imported: tests only). Without ``triton`` installed everything uses torch.

=====================  ===========================================  ==============================
dispatcher             hot path                                     implementation on CUDA
=====================  ===========================================  ==============================
``power_law_fit``      spectrum: alpha/KS over all xmin, all layers Triton (float64), one launch
``toy_loss_grad``      superposition: fused fwd+bwd of ReLU(WᵀWx+b) Triton (float32), one launch
``gram_eigvalsh``      spectrum: ESDs of same-shaped layers         batched cuSOLVER eigvalsh
``snapshot_gram``      koopman: float64 X Xᵀ over feature chunks    cuBLAS float64 GEMM
=====================  ===========================================  ==============================

Two CPU kernel modules (Numba) sit beside them: :mod:`workbench.kernels.toy_cpu`, the whole
toy-model step that ``ToyModels`` runs on the CPU (checked against the torch code it replaces), and
:mod:`workbench.kernels.lane_rng`, the SIMD-lane SFC64 uniforms it draws from. They are imported
where used, not here.
"""
from workbench.kernels._dispatch import HAS_TRITON, interpreter_enabled, triton_status
from workbench.kernels.gram_eigvalsh import gram_eigvalsh
from workbench.kernels.power_law import power_law_fit
from workbench.kernels.snapshot_gram import snapshot_gram
from workbench.kernels.toy_step import toy_loss_grad

__all__ = [
           "HAS_TRITON",
           "gram_eigvalsh",
           "interpreter_enabled",
           "power_law_fit",
           "snapshot_gram",
           "toy_loss_grad",
           "triton_status",
]
