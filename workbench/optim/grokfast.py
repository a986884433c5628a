"""Grokfast: amplify the slow (low-frequency) component of the gradients (Lee et al. 2024).

Treating each parameter's gradient sequence ``g_t`` as a signal over training steps, Grokfast adds a
low-pass filtered copy before the optimizer step ([1], Alg. 1 and 2):

- EMA: ``μ_t = α μ_{t-1} + (1 − α) g_t`` (``μ_0 = g_0``), ``ĝ_t = g_t + λ μ_t``; paper defaults
  ``α = 0.98, λ = 2``.
- MA: ``ĝ_t = g_t + λ · mean(g_{t-w+1..t})`` once ``w`` gradients are buffered (warm-up: no
  change before); paper defaults ``w = 100, λ = 5``.

:class:`Grokfast` wraps any ``torch.optim.Optimizer``; its ``state_dict`` holds the inner
optimizer's state and the filter buffers as tensors, so it checkpoints and resumes exactly.

References
----------
.. [1] Lee, Kang, Lee, Kim, Lee (2024). Grokfast: Accelerated Grokking by Amplifying Slow Gradients.
   arXiv:2405.20233. Code: https://github.com/ironjr/grokfast (``gradfilter_ema``, ``gradfilter_ma``).
"""
from __future__ import annotations

from typing import Any

import torch

from workbench.validation import check_range


class Grokfast:
    """Gradient filter wrapper: ``Grokfast(torch.optim.AdamW(...), mode="ema")``.

    Parameters
    ----------
    optimizer : the inner optimizer; exposed as ``.optimizer`` (``train.fit`` schedules it).
    mode : ``"ema"`` or ``"ma"``.
    alpha : EMA momentum (``mode="ema"``), in [0, 1).
    lamb : amplification λ; default 2.0 for EMA and 5.0 for MA (paper defaults).
    window : MA window length (``mode="ma"``).
    warmup : MA only: apply the filter only once the window is full (as the reference code).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, mode: str = "ema", *, alpha: float = 0.98,
                 lamb: float | None = None, window: int = 100, warmup: bool = True):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if mode not in ("ema", "ma"):
            raise ValueError(f"mode must be 'ema' or 'ma', got {mode!r}")
        check_range(alpha, "alpha", 0.0, 1.0, high_open=True)
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        self.optimizer, self.mode, self.alpha, self.window, self.warmup = optimizer, mode, alpha, window, warmup
        self.lamb = float(lamb if lamb is not None else (2.0 if mode == "ema" else 5.0))
        check_range(self.lamb, "lamb", 0.0)
        self._ema: dict[int, torch.Tensor] = {}
        self._buf: dict[int, torch.Tensor] = {}  # (window, *shape) ring buffers
        self._sum: dict[int, torch.Tensor] = {}
        self._count = 0  # gradients seen (MA)

    def __repr__(self) -> str:
        return f"Grokfast({type(self.optimizer).__name__}, mode={self.mode!r}, lamb={self.lamb})"

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def _params(self) -> list[torch.Tensor]:
        return [q for g in self.optimizer.param_groups for q in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def filter_gradients(self) -> None:
        """Replace each ``.grad`` by ``g + λ · lowpass(g)`` (EMA or MA, module docstring)."""
        params = self._params()
        slot = self._count % self.window
        for i, q in enumerate(params):
            if q.grad is None:
                continue
            g = q.grad
            if self.mode == "ema":
                if i not in self._ema:
                    self._ema[i] = g.detach().clone()
                else:
                    self._ema[i].mul_(self.alpha).add_(g, alpha=1 - self.alpha)
                g.add_(self._ema[i], alpha=self.lamb)
            else:
                if i not in self._buf:
                    self._buf[i] = torch.zeros((self.window, *g.shape), dtype=g.dtype, device=g.device)
                    self._sum[i] = torch.zeros_like(g)
                buf = self._buf[i]
                self._sum[i].sub_(buf[slot]).add_(g)
                buf[slot].copy_(g)
                if slot == self.window - 1:  # re-sum exactly once per window: no float drift
                    torch.sum(buf, 0, out=self._sum[i])
                n = min(self._count + 1, self.window)
                if not self.warmup or n == self.window:
                    g.add_(self._sum[i], alpha=self.lamb / n)
        self._count += 1

    def step(self, closure: Any = None) -> Any:
        """Filter the gradients, then step the inner optimizer."""
        if closure is not None:
            raise ValueError("Grokfast does not support closures (needs the gradients of one backward)")
        self.filter_gradients()
        return self.optimizer.step()

    def state_dict(self) -> dict:
        """Inner optimizer state + filter buffers (tensors and scalars only; safetensors-friendly)."""
        return {"optimizer": self.optimizer.state_dict(),
                "grokfast": {"mode": self.mode, "alpha": self.alpha, "lamb": self.lamb, "window": self.window,
                             "warmup": self.warmup, "count": self._count,
                             "ema": {int(k): v for k, v in self._ema.items()},
                             "buf": {int(k): v for k, v in self._buf.items()},
                             "sum": {int(k): v for k, v in self._sum.items()}}}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; refuses a state saved with another mode/window."""
        if not isinstance(state, dict) or "grokfast" not in state or "optimizer" not in state:
            raise ValueError("state is not a Grokfast state_dict (needs 'optimizer' and 'grokfast' keys)")
        gf = state["grokfast"]
        if gf["mode"] != self.mode or int(gf["window"]) != self.window:
            raise ValueError(f"state was saved with mode={gf['mode']!r}, window={gf['window']}; this wrapper has "
                             f"mode={self.mode!r}, window={self.window}")
        self.optimizer.load_state_dict(state["optimizer"])
        params = self._params()

        def place(d: dict) -> dict[int, torch.Tensor]:
            return {int(k): v.to(device=params[int(k)].device, dtype=params[int(k)].dtype).clone() for k, v in d.items()}
        self._ema, self._buf, self._sum = place(gf["ema"]), place(gf["buf"]), place(gf["sum"])
        self._count = int(gf["count"])
        self.alpha, self.lamb, self.warmup = float(gf["alpha"]), float(gf["lamb"]), bool(gf["warmup"])
