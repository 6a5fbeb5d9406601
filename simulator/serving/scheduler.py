"""Continuous batching over a request stream, one iteration at a time (the way vLLM's scheduler works).

Each iteration (Yu et al., Orca, OSDI 2022; Kwon et al., vLLM, SOSP 2023):

1. swapped-out requests come back first, when their KV blocks fit (swap-in time from ``context_switch``);
2. prefill: waiting requests are admitted in arrival order while the iteration's token budget
   (``max_num_batched_tokens``), the sequence limit (``max_num_seqs``) and the free KV blocks allow. Without
   chunked prefill an iteration that admits prompts is a prefill-only iteration (vLLM's default before
   chunking); with chunked prefill (Agrawal et al., Sarathi-Serve, OSDI 2024) every decoding sequence
   gets its token first and prompt chunks fill the rest of the budget;
3. decode: every running sequence gains one token; its KV grows by a block every ``block_tokens`` tokens.
   When the blocks run out, the most recently admitted sequence is preempted — by recompute (its KV is
   dropped; it re-enters the queue at the front and re-prefills prompt + generated tokens) or by swap
   (its KV goes to host memory over the host link and waits in the swapped queue).

The first output token comes out of the iteration that finishes a request's prefill; a request with T
output tokens then needs T − 1 decode iterations. Times come from ``StepTable`` (no engine call here).
KV capacity (blocks) is the caller's: ``simulator.memory`` gives it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from simulator.serving.arrivals import Requests

PREEMPTION_MODES = ("recompute", "swap")
TIMELINE_COLUMNS = ("t_s", "dt_s", "prefill_tokens", "decode_seqs", "waiting", "running", "swapped",
                    "kv_blocks", "gpu_power_w", "energy_j", "clock_hz")


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    chunked_prefill: bool = False
    preemption: str = "recompute"
    block_tokens: int = 16


@dataclass(frozen=True)
class SwapCost:
    """Seconds to move one sequence's KV out to / in from host memory: a + b·tokens (``context_switch``)."""

    out_s: float = 0.0
    out_s_per_token: float = 0.0
    in_s: float = 0.0
    in_s_per_token: float = 0.0


class _Batcher:
    """The scheduler's state; ``run()`` steps it until every request has finished."""

    def __init__(self, req: Requests, table, cfg: SchedulerConfig, capacity_blocks: int, level: int,
                 swap: SwapCost):
        n = len(req)
        self.req, self.table, self.cfg, self.cap, self.level, self.swap = req, table, cfg, capacity_blocks, level, swap
        self.arr, self.P, self.T = req.arrival_s, req.prompt_tokens, req.output_tokens
        self.need = self.P.copy()  # tokens to prefill (prompt, + generated ones after a recompute)
        self.pf = np.zeros(n, np.int64)  # tokens prefilled so far
        self.gen = np.zeros(n, np.int64)  # output tokens produced
        self.blk = np.zeros(n, np.int64)  # KV blocks held
        self.t_first = np.full(n, np.nan)
        self.t_done = np.full(n, np.nan)
        self.n_preempt = np.zeros(n, np.int64)
        self.waiting, self.swapped, self.run_ids = deque(), deque(), []
        self.used, self.now, self.ia, self.rows, self.n_done = 0, 0.0, 0, [], 0
        self.gpus = table.n_gpus

    def blocks(self, tokens):
        return -(-tokens // self.cfg.block_tokens)

    def _arrive(self):
        while self.ia < len(self.arr) and self.arr[self.ia] <= self.now:
            self.waiting.append(self.ia)
            self.ia += 1

    def _resume(self) -> float:
        """Swap sequences back in while their blocks fit; the host-link time it takes."""
        t = 0.0
        while self.swapped and len(self.run_ids) < self.cfg.max_num_seqs:
            i = self.swapped[0]
            b = self.blocks(self.P[i] + self.gen[i] + 1)
            if self.used + b > self.cap:
                break
            self.swapped.popleft()
            self.used += b
            self.blk[i] = b
            self.run_ids.append(i)
            t += self.swap.in_s + self.swap.in_s_per_token * float(self.P[i] + self.gen[i])
        return t

    def _admit(self, budget: int, growth_blocks: int):
        """Prompt chunks for this iteration: [(id, tokens)], continuing partial prefills first."""
        chunks, cfg = [], self.cfg
        for i in self.run_ids:
            if budget <= 0:
                break
            left = self.need[i] - self.pf[i]
            if left > 0:
                take = min(left, budget) if cfg.chunked_prefill else left
                chunks.append((i, take))
                budget -= take
        free = self.cap - self.used - growth_blocks
        while self.waiting and len(self.run_ids) < cfg.max_num_seqs:
            i = self.waiting[0]
            left = self.need[i] - self.pf[i]
            b = self.blocks(self.need[i] + 1)
            fits_budget = left <= budget or cfg.chunked_prefill and budget > 0 or not chunks and not self.run_ids
            if b > free or not fits_budget:
                break
            self.waiting.popleft()
            take = min(left, budget) if cfg.chunked_prefill else left
            if take > 0:  # a request that arrives with its KV (disaggregated decode) needs no prefill
                chunks.append((i, take))
            budget -= take
            free -= b
            self.used += b
            self.blk[i] = b
            self.run_ids.append(i)
        return chunks

    def _preempt_for(self, dec: list) -> float:
        """Free blocks for the decode tokens of ``dec`` by preempting the newest sequences; time spent."""
        t = 0.0
        while dec:
            ids = np.asarray(dec)
            grow = int(np.sum(self.blocks(self.P[ids] + self.gen[ids] + 1) - self.blk[ids]))
            if self.used + grow <= self.cap:
                return t
            v = self.run_ids.pop()
            if v in dec:
                dec.remove(v)
            self.used -= int(self.blk[v])
            self.blk[v] = 0
            self.n_preempt[v] += 1
            if self.cfg.preemption == "swap" and self.pf[v] >= self.need[v]:
                t += self.swap.out_s + self.swap.out_s_per_token * float(self.P[v] + self.gen[v])
                self.swapped.append(v)
            else:  # recompute: prefill prompt and generated tokens again
                self.need[v], self.pf[v] = self.P[v] + self.gen[v], 0
                self.waiting.appendleft(v)
        return t

    def step(self) -> None:
        self._arrive()
        host_s = self._resume()
        dec = [i for i in self.run_ids if self.pf[i] >= self.need[i]]
        budget = self.cfg.max_num_batched_tokens - (len(dec) if self.cfg.chunked_prefill else 0)
        growth = 0
        if dec:
            ids = np.asarray(dec)
            growth = int(np.sum(self.blocks(self.P[ids] + self.gen[ids] + 1) - self.blk[ids]))
        chunks = self._admit(budget, growth if self.cfg.chunked_prefill else 0)
        if chunks and not self.cfg.chunked_prefill:
            dec = []
        elif not chunks:  # prefilled arrivals admitted just now decode in this iteration
            dec = [i for i in self.run_ids if self.pf[i] >= self.need[i]]
        host_s += self._preempt_for(dec)
        if not chunks and not dec:
            self._idle()
            return
        self._iterate(chunks, dec, host_s)

    def _iterate(self, chunks, dec, host_s):
        n_pf = sum(t for _, t in chunks)
        ctx = float(np.mean(self.P[dec] + self.gen[dec])) if dec else 0.0
        dt, e, clock = self.table.mixed(self.level, len(chunks), n_pf, len(dec), ctx)
        dt, e = dt + host_s, e + self.table.idle_w * host_s
        self.now += dt
        for i, take in chunks:
            self.pf[i] += take
            if self.pf[i] >= self.need[i] and self.gen[i] == 0:
                self.gen[i] = 1
                self.t_first[i] = self.now
        if dec:
            ids = np.asarray(dec)
            self.gen[ids] += 1
            nb = self.blocks(self.P[ids] + self.gen[ids])
            self.used += int(np.sum(nb - self.blk[ids]))
            self.blk[ids] = nb
        done = [i for i in self.run_ids if self.gen[i] >= self.T[i] and self.pf[i] >= self.need[i]]
        self.n_done += len(done)
        for i in done:
            self.t_done[i] = self.now
            self.used -= int(self.blk[i])
            self.blk[i] = 0
            self.run_ids.remove(i)
        self.rows.append((self.now, dt, n_pf, len(dec), len(self.waiting), len(self.run_ids), len(self.swapped),
                          self.used, e / dt, e * self.gpus, clock))

    def _idle(self):
        """Nothing to run: the GPUs idle until the next arrival."""
        if self.ia >= len(self.arr):
            raise RuntimeError("scheduler stalled with requests left (a request larger than the KV capacity?)")
        dt = float(self.arr[self.ia]) - self.now
        self.now = float(self.arr[self.ia])
        if dt > 0:
            self.rows.append((self.now, dt, 0, 0, 0, 0, len(self.swapped), self.used, self.table.idle_w,
                              self.table.idle_w * dt * self.gpus, np.nan))


def run(req: Requests, table, cfg: SchedulerConfig, capacity_blocks: int, level: int = 0,
        swap: SwapCost = SwapCost(), first_token_s=None):
    """Serve ``req``; returns (per-request dict of arrays, timeline rows as a tuple of tuples).
    ``first_token_s``: requests arrive prefilled (their KV and first token made elsewhere, at these times)."""
    b = _Batcher(req, table, cfg, capacity_blocks, level, swap)
    if first_token_s is not None:
        b.pf[:], b.gen[:], b.t_first[:] = b.P, 1, first_token_s
    while b.n_done < len(req):
        b.step()
    per_req = {"arrival_s": req.arrival_s, "prompt_tokens": req.prompt_tokens, "output_tokens": req.output_tokens,
               "first_token_s": b.t_first, "finish_s": b.t_done, "n_preemptions": b.n_preempt}
    return per_req, b.rows
