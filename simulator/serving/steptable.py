"""Per-iteration cost of a serving engine, precomputed once so a simulated hour takes seconds.

The serving loop never calls the engine per iteration. At set-up, the engine (``simulator.engine`` /
``simulator.decode``) is evaluated once, vectorised, on grids of

- decode steps: batch b × context c (attention over c tokens per sequence), and
- prefill passes: sequences k × tokens in the pass N (k prompts of N/k tokens each),

for every SM-clock level the caller needs (a POLCA clock cap locks the clock: ``sm_clock_hz``; the step
then settles at the lower of that and what the power limit allows). Each node stores time_s and energy_j
per GPU (``PhaseResult``). Between nodes, time and energy are interpolated linearly in b, c, k and p:
decode time is affine in c (attention's bytes are linear in c) and close to piecewise linear in b; prefill
time steps with the GEMMs' M tiles in N, so N is rounded up to a grid of multiples of 32/128 tokens.
The tests check the table against the engine at off-grid points (within 2-3%).

A mixed iteration (chunked prefill: decode tokens ride along a prefill chunk) is priced as one prefill
pass over all of its new tokens (the decode tokens join the GEMMs as k_dec one-token sequences) plus the
context-dependent part of a decode step, decode(b, c̄) − decode(b, c_min): the attention over the cached
context that a prefill pass over fresh tokens does not do.

Engine host overheads (``workloads.EngineProfile``): per-iteration fixed time and per-sequence time are
added to every iteration; the GPU idles during them (idle power).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from simulator import decode, engine

DECODE_BATCH_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
CONTEXT_GRID = (1, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
PREFILL_SEQ_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
# Prefill time steps with GEMM tile and wave quantization in the token count (M): a dense grid where the
# steps are a large share of the time (linear interpolation across a step is up to 15% off at 300 tokens).
PREFILL_TOKEN_GRID = ((1, 16) + tuple(range(32, 2048, 32)) + tuple(range(2048, 8192, 128))
                      + (8192, 12288, 16384, 24576, 32768, 49152, 65536, 98304, 131072))
# Up to here prompt lengths are rounded up to the next grid point (a multiple of 32 or 128 tokens: the
# GEMM tiles' M steps, so the step is kept exactly); beyond, interpolated linearly.
SNAP_TOKENS = 8192


@dataclass(frozen=True)
class Level:
    """One clock level's grids: time_s / energy_j arrays, shape (len(rows), len(cols)), per GPU."""

    clock_hz: float
    decode_time_s: np.ndarray
    decode_energy_j: np.ndarray
    prefill_time_s: np.ndarray
    prefill_energy_j: np.ndarray
    decode_clock_hz: np.ndarray
    prefill_clock_hz: np.ndarray


def _cut(grid, limit):
    """The grid points ≤ limit, plus the limit itself when it falls between points."""
    pts = [g for g in grid if g <= limit]
    return tuple(pts if pts[-1] == limit else pts + [limit])


class StepTable:
    """Iteration time (s) and GPU energy (J, per GPU) of a serving instance at each clock level.

    ``setups``: one ``engine.Setup`` per clock level (level 0 = uncapped). ``max_batch`` / ``max_context``
    bound the grids (beyond them the edge value is extrapolated linearly, never needed when the scheduler
    keeps to its limits). ``fixed_s`` / ``per_seq_s``: host time per iteration / per sequence.
    """

    def __init__(self, setups, max_batch: int, max_context: int, fixed_s=0.0, per_seq_s=0.0, cuda_graph=True,
                 max_pass_tokens: int = 0):
        self.b = _cut(DECODE_BATCH_GRID, max(max_batch, 2))
        self.c = _cut(CONTEXT_GRID, max(max_context, 2))
        self.k = _cut(PREFILL_SEQ_GRID, max(min(max_batch, 256), 2))
        self.p = _cut(PREFILL_TOKEN_GRID, max(max_context, max_pass_tokens, 2))
        self.fixed_s, self.per_seq_s = float(fixed_s), float(per_seq_s)
        self.setups = tuple(setups)
        self.n_gpus = self.setups[0].tp
        self.idle_w = self.setups[0].pm.idle_w
        self.levels = tuple(self._level(s, cuda_graph) for s in self.setups)

    def _level(self, s, cuda_graph) -> Level:
        b = np.asarray(self.b, float)[:, None]
        c = np.asarray(self.c, float)[None, :]
        co = decode.decode_coeffs(s, b, with_bound=False)
        d = decode.decode_step_at(s, co, c, cuda_graph)
        k = np.asarray(self.k, float)[:, None]
        # rows: k prompts; columns: tokens in the pass (N = k·p; N < k is never looked up: p = 1 there)
        pf = engine.prefill(s, k, np.maximum(np.asarray(self.p, float)[None, :] / k, 1.0), with_bound=False)
        full = lambda x, shape: np.broadcast_to(np.asarray(x, float), shape).copy()  # noqa: E731
        ds, ps = (len(self.b), len(self.c)), (len(self.k), len(self.p))
        return Level(s.pm.phi_max * s.pm.boost_clock_hz, full(d.time_s, ds), full(d.energy_j, ds),
                     full(pf.time_s, ps), full(pf.energy_j, ps), full(d.clock_hz, ds), full(pf.clock_hz, ps))

    # --- scalar lookups for the event loop (plain floats: numpy on 0-d values costs ~1 µs a call) ---
    @staticmethod
    def _bilinear(rows, cols, table, r, c):
        i = min(max(bisect_right(rows, r) - 1, 0), len(rows) - 2)
        j = min(max(bisect_right(cols, c) - 1, 0), len(cols) - 2)
        u = (r - rows[i]) / (rows[i + 1] - rows[i])
        v = (c - cols[j]) / (cols[j + 1] - cols[j])
        return ((1 - u) * ((1 - v) * table[i][j] + v * table[i][j + 1])
                + u * ((1 - v) * table[i + 1][j] + v * table[i + 1][j + 1]))

    def decode(self, level: int, batch: float, mean_context: float):
        """(time_s, energy_j per GPU, settled clock_hz) of one decode iteration, host overheads included."""
        lv = self._lists[level]
        t = self._bilinear(self.b, self.c, lv[0], batch, mean_context)
        e = self._bilinear(self.b, self.c, lv[1], batch, mean_context)
        return self._host(t, e, batch, self._bilinear(self.b, self.c, lv[4], batch, mean_context))

    def prefill(self, level: int, n_seqs: float, n_tokens: float):
        """(time_s, energy_j per GPU, clock_hz) of a prefill pass over ``n_seqs`` prompts of ``n_tokens`` in all."""
        lv = self._lists[level]
        p = self._snap(n_tokens)
        t = self._bilinear(self.k, self.p, lv[2], n_seqs, p)
        e = self._bilinear(self.k, self.p, lv[3], n_seqs, p)
        return self._host(t, e, n_seqs, self._bilinear(self.k, self.p, lv[5], n_seqs, p))

    def _snap(self, p):
        """Tokens in a pass, rounded up to the grid below SNAP_TOKENS (the GEMM M steps)."""
        return self.p[bisect_left(self.p, p)] if p <= SNAP_TOKENS and p <= self.p[-1] else p

    def mixed(self, level: int, n_pf_seqs: float, n_pf_tokens: float, n_dec: float, mean_context: float):
        """A chunked-prefill iteration: ``n_pf_tokens`` prompt tokens of ``n_pf_seqs`` sequences plus one
        token for each of ``n_dec`` decoding sequences at ``mean_context`` (see the module docstring)."""
        if n_dec <= 0:
            return self.prefill(level, n_pf_seqs, n_pf_tokens)
        if n_pf_tokens <= 0:
            return self.decode(level, n_dec, mean_context)
        lv = self._lists[level]
        k = n_pf_seqs + n_dec
        kk = min(k, self.k[-1])
        pp = self._snap(n_pf_tokens + n_dec)
        t = self._bilinear(self.k, self.p, lv[2], kk, pp)
        e = self._bilinear(self.k, self.p, lv[3], kk, pp)
        c0 = self.c[0]
        t += (self._bilinear(self.b, self.c, lv[0], n_dec, mean_context)
              - self._bilinear(self.b, self.c, lv[0], n_dec, c0))
        e += (self._bilinear(self.b, self.c, lv[1], n_dec, mean_context)
              - self._bilinear(self.b, self.c, lv[1], n_dec, c0))
        return self._host(t, e, k, self._bilinear(self.k, self.p, lv[5], kk, pp))

    def _host(self, t, e, n_seqs, clock_hz):
        """(time_s, energy_j per GPU, clock_hz): the GPU idles while the host schedules and samples."""
        host = self.fixed_s + self.per_seq_s * n_seqs
        return t + host, e + self.idle_w * host, clock_hz

    @property
    def _lists(self):
        cached = self.__dict__.get("_lists_cache")
        if cached is None:
            cached = [tuple(x.tolist() for x in (lv.decode_time_s, lv.decode_energy_j, lv.prefill_time_s,
                                                 lv.prefill_energy_j, lv.decode_clock_hz, lv.prefill_clock_hz)) for lv in self.levels]
            self.__dict__["_lists_cache"] = cached
        return cached

    @property
    def clock_hz(self) -> tuple:
        return tuple(lv.clock_hz for lv in self.levels)
