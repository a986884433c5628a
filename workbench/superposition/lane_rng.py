"""Uniform random numbers from 16 interleaved SFC64 streams, drawn in SIMD lanes (Numba).

SFC64 (Chris Doty-Humphrey's Small Fast Chaotic generator, numpy's ``SFC64``) advances a state
(a, b, c, w) by additions, shifts and one rotation::

    out = a + b + w;  w += 1;  a = b ^ (b >> 11);  b = c + (c << 3);  c = rotl(c, 24) + out

which vectorises across independent streams: 16 lanes step together, and each 64-bit output gives
two 24-bit float32 uniforms (bits 40–63 and 16–39), k·2⁻²⁴ with k uniform on 0..2²⁴−1, as
``torch.rand``'s. That is ~0.3 ns a uniform on one core here, against ~1.4 ns for numpy's float64
draws split in two and ~2.4 ns for its float32 ones. Every lane's 64-bit words are exactly numpy's
``SFC64`` from that lane's state (tested), so the streams are numpy's generator, interleaved.

Draws go by rows: a row of n values (the last axis of the array filled) takes ⌈n/32⌉ steps of
all lanes, value j of block k being lane j mod 16 of step k, its high half for j < 16 and its low
half after; the unused values of a partial last block are dropped. So a kernel that draws a batch
row by row, as :func:`workbench.superposition.cpu_step.draw_features` does, draws what a fill of the
whole array draws.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["LANES", "LaneStream", "fill_rows", "seed_lanes"]

LANES = 16                 # 4 AVX2 vectors of 64-bit words per step (8 lanes ran 3x slower)
WARMUP_STEPS = 12          # outputs numpy's SFC64 discards after seeding
STEPS = 4                  # steps per lane a row takes at a time (draw_row)
_JIT = {"nogil": True, "cache": True, "boundscheck": False}
_U11, _U3, _U24, _U40, _U16 = np.uint64(11), np.uint64(3), np.uint64(24), np.uint64(40), np.uint64(16)
_ONE, _MASK24 = np.uint64(1), np.uint64(0xFFFFFF)
_SCALE = np.float32(2.0 ** -24)


@numba.njit(inline="always", **_JIT)
def _next(a: np.uint64, b: np.uint64, c: np.uint64, w: np.uint64) -> tuple:
    """One SFC64 step of the state (a, b, c, w): its 64-bit output and the next state."""
    out = a + b + w
    return out, b ^ (b >> _U11), c + (c << _U3), ((c << _U24) | (c >> _U40)) + out, w + _ONE


@numba.njit(inline="always", **_JIT)
def _step(a: np.ndarray, b: np.ndarray, c: np.ndarray, w: np.ndarray, lane: int) -> np.uint64:
    """One SFC64 step of ``lane`` of the state arrays; returns its 64-bit output."""
    out, a[lane], b[lane], c[lane], w[lane] = _next(a[lane], b[lane], c[lane], w[lane])
    return out


@numba.njit(inline="always", **_JIT)
def _halves(x: np.uint64) -> tuple:
    """The two 24-bit uniforms of a word: bits 40–63 and 16–39, times 2⁻²⁴."""
    return (np.float32(np.int32(x >> _U40)) * _SCALE, np.float32(np.int32((x >> _U16) & _MASK24)) * _SCALE)


@numba.njit(inline="always", **_JIT)
def draw_row(a: np.ndarray, b: np.ndarray, c: np.ndarray, w: np.ndarray, row: np.ndarray,
             spare: np.ndarray) -> None:
    """Fill ``row`` (float32, 1-D) with uniforms from the lane states a, b, c, w (each (LANES,),
    updated); ``spare`` is a (2·LANES,) float32 scratch for a partial last block. Blocks go
    ``STEPS`` at a time, so a lane's state stays in registers for that many steps (~13 % faster
    than one step per pass), then one at a time."""
    n, L = row.shape[0], LANES
    full = n // (2 * L)
    k0 = 0
    while k0 + STEPS <= full:
        for lane in range(L):
            A, Bs, C, Wc = a[lane], b[lane], c[lane], w[lane]
            for s in range(STEPS):
                x, A, Bs, C, Wc = _next(A, Bs, C, Wc)
                base = 2 * L * (k0 + s)
                row[base + lane], row[base + L + lane] = _halves(x)
            a[lane], b[lane], c[lane], w[lane] = A, Bs, C, Wc
        k0 += STEPS
    for k in range(k0, full):
        base = 2 * L * k
        for lane in range(L):
            row[base + lane], row[base + L + lane] = _halves(_step(a, b, c, w, lane))
    rest = n - 2 * L * full
    if rest:
        for lane in range(L):
            spare[lane], spare[L + lane] = _halves(_step(a, b, c, w, lane))
        for j in range(rest):
            row[2 * L * full + j] = spare[j]


@numba.njit(**_JIT)
def fill_rows(state: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (float32, (rows, n)) row by row from ``state`` ((4, LANES) uint64: a, b, c, w
    of each lane), which is advanced in place."""
    a, b, c, w = state[0].copy(), state[1].copy(), state[2].copy(), state[3].copy()
    spare = np.empty(2 * LANES, np.float32)
    for r in range(out.shape[0]):
        draw_row(a, b, c, w, out[r], spare)
    state[0], state[1], state[2], state[3] = a, b, c, w


@numba.njit(**_JIT)
def seed_lanes(abc: np.ndarray) -> np.ndarray:
    """Lane states (n, 4, LANES) from random words ``abc`` (n, 3, LANES): a, b, c as given, w = 1,
    then the 12 warm-up steps numpy's SFC64 takes after seeding."""
    n = abc.shape[0]
    out = np.empty((n, 4, LANES), np.uint64)
    out[:, :3] = abc
    out[:, 3] = 1
    for i in range(n):  # in place: views, no allocation per state
        a, b, c, w = out[i, 0], out[i, 1], out[i, 2], out[i, 3]
        for _ in range(WARMUP_STEPS):
            for lane in range(LANES):
                _step(a, b, c, w, lane)
    return out


class LaneStream:
    """A random source of 16 interleaved SFC64 streams (see the module docstring).

    ``LaneStream.spawn(generator, n)`` draws ``n`` independent lane states from a
    ``numpy.random.Generator`` (192 random bits a lane); :meth:`fill` draws uniforms and advances
    the state, so successive fills continue the stream.
    """

    def __init__(self, state: np.ndarray) -> None:
        state = np.asarray(state)
        if state.shape != (4, LANES) or state.dtype != np.uint64:
            raise ValueError(f"a lane state is a (4, {LANES}) uint64 array, got {state.shape} {state.dtype}")
        self.state = state

    @staticmethod
    def spawn_states(generator: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent lane states (n, 4, LANES) seeded from ``generator``."""
        abc = generator.bit_generator.random_raw(3 * LANES * n).reshape(n, 3, LANES)
        return seed_lanes(abc)

    @classmethod
    def spawn(cls, generator: np.random.Generator) -> LaneStream:
        """One stream seeded from ``generator``."""
        return cls(cls.spawn_states(generator, 1)[0])

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (contiguous float32, any shape; rows are its last axis) with U[0, 1)."""
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError("LaneStream.fill needs a C-contiguous float32 array")
        if out.size:
            fill_rows(self.state, out.reshape(-1, out.shape[-1]) if out.ndim else out.reshape(1, 1))
        return out
