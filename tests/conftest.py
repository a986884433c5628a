"""Test set-up. Without CUDA, Triton kernels run in Triton's CPU interpreter: the variable must be
set before ``triton`` decorates any kernel (``workbench.kernels`` import time), so it is set here,
before any test module (of any folder) is imported. It only affects Triton."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
