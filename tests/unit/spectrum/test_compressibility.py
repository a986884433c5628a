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


def test_motif_projection_known_answers():
    from workbench.spectrum import motif_project, project_model_

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(50, 8, generator=gen)  # 100 blocks of 4
    p, stats = motif_project(w, 4, 5, generator=torch.Generator().manual_seed(1))
    blocks = p.reshape(-1, 4)
    assert p.shape == w.shape and len(torch.unique(blocks, dim=0)) <= 5
    assert (blocks == 0).all(1).any()  # the zero motif
    # every block went to its nearest motif: no motif is closer than the one chosen
    motifs = torch.unique(blocks, dim=0)
    d = torch.cdist(w.reshape(-1, 4), motifs, compute_mode="donot_use_mm_for_euclid_dist")  # exact, not ‖a‖²+‖b‖²−2ab
    np.testing.assert_allclose(((w.reshape(-1, 4) - blocks) ** 2).sum(1).sqrt(), d.min(1).values, rtol=1e-6)
    np.testing.assert_allclose(stats["distortion"], float(((w - p) ** 2).sum()), rtol=1e-6)
    assert torch.equal(motif_project(w, 4, 100, force_zero=False)[0], w)  # k = n_blocks: every block is a motif
    odd, _ = motif_project(torch.arange(1.0, 8.0), 4, 1)  # one motif (zero), 7 values padded to 8
    assert torch.equal(odd, torch.zeros(7))
    model = nn.Linear(64, 64)
    before = compressibility(model, codecs=("gzip",)).ratio.item()
    out = project_model_(model, 4, capacity=0.01, generator=gen)
    assert out["k"] == 10 and compressibility(model, codecs=("gzip",)).ratio.item() > 3 * before
