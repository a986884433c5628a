"""compressibility: constant weights compress a lot, i.i.d. Gaussian floats barely, fair signs at most 8x."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.spectrum import compressibility, compression_ratio


def model_with(weight: torch.Tensor) -> nn.Module:
    m = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        m.weight.copy_(weight)
    return m


def test_constant_vs_random_weights():
    gen = torch.Generator().manual_seed(0)
    const = compressibility(model_with(torch.full((64, 64), 0.37)))
    rand = compressibility(model_with(torch.randn(64, 64, generator=gen)))
    assert const.codec.values.tolist() == ["gzip", "bz2", "lzma"] and int(const.n_bytes) == 64 * 64 * 4
    assert (const.ratio > 50).all()  # 16 KiB of one repeated float
    assert ((rand.ratio > 0.95) & (rand.ratio < 1.2)).all()  # random mantissas are incompressible
    signs = compressibility(model_with(torch.randn(64, 64, generator=gen)), payload="sign")
    assert ((signs.ratio > 4) & (signs.ratio <= 8)).all()  # one bit of entropy per byte: at most 8x
    assert int(signs.n_bytes) == 64 * 64


def test_over_steps_from_a_mapping():
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(32, 32, generator=gen)
    states = {s: {"w.weight": torch.where(torch.arange(32 * 32).reshape(32, 32) < 32 * s, 0.0, noise),
                  "w.bias": torch.zeros(32)} for s in (0, 8, 16, 24)}
    ds = compressibility(states, codecs=("gzip",))
    r = ds.ratio.sel(codec="gzip").values
    assert ds.step.values.tolist() == [0, 8, 16, 24] and np.all(np.diff(r) > 0)  # more zeros, more compressible
    assert compressibility(states, codecs=("gzip",), layers="bias", steps=[8]).ratio.values[0, 0] > 5


def test_bad_input():
    with pytest.raises(ValueError, match="codecs"):
        compressibility(nn.Linear(2, 2), codecs=("zip",))
    with pytest.raises(ValueError, match="payload"):
        compressibility(nn.Linear(2, 2), payload="int8")
    with pytest.raises(ValueError, match="no floating tensor"):
        compressibility(nn.Linear(2, 2), layers="nothing")
    with pytest.raises(ValueError, match="nothing to compress"):
        compression_ratio(b"", "gzip")
