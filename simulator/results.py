"""What the API returns: typed headline figures plus a tidy per-op DataFrame (SI units, unit-suffixed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workloads.scenario import Scenario

OP_COLUMNS = ["phase", "op", "kind", "scope", "n_repeats", "flops", "weight_bytes", "act_read_bytes",
              "act_write_bytes", "kv_read_bytes", "kv_write_bytes", "hbm_bytes", "compute_s", "memory_s",
              "latency_s", "link_s", "time_s", "total_time_s", "bound", "intensity_flops_per_byte"]


def ops_frame(phase: str, pairs) -> pd.DataFrame:
    """One row per op of a pass: counts per execution, times per execution, ``total_time_s`` × n_repeats."""
    rows = []
    for op, t in pairs:
        hbm = float(op.hbm_bytes)
        rows.append((phase, op.name, op.kind, op.scope, op.n_repeats, float(op.flops), float(op.weight_bytes),
                     float(op.act_read_bytes), float(op.act_write_bytes), float(op.kv_read_bytes),
                     float(op.kv_write_bytes), hbm, t.compute_s, t.memory_s, t.latency_s, t.link_s, t.time_s,
                     t.time_s * op.n_repeats, t.bound, float(op.flops) / hbm if hbm else math.inf))
    return pd.DataFrame(rows, columns=OP_COLUMNS)


@dataclass(frozen=True)
class StepPrediction:
    """One forward pass. ``ops``: one row per op (per execution times; ``total_time_s`` = × n_repeats).
    ``gpu_s``: the kernels' own time (``time_s`` adds the launch rule); ``clock_frac``: mean SM clock
    as a fraction of boost over the pass."""

    time_s: float
    hbm_bytes: float
    flops: float
    bound: str
    _pairs: Any = field(repr=False, default=None)
    _phase: str = field(repr=False, default="")
    gpu_s: float = 0.0
    clock_frac: float = 1.0

    @classmethod
    def of(cls, r) -> "StepPrediction":
        """From an engine ``PhaseResult``."""
        return cls(float(r.time_s), float(r.hbm_bytes), float(r.flops), r.bound, r.pairs, r.phase, float(r.gpu_s),
                   float(r.clock_frac))

    @property
    def ops(self) -> pd.DataFrame:
        return ops_frame(self._phase, self._pairs)


@dataclass(frozen=True)
class Prediction:
    """Headline figures of serving one scenario (per GPU for memory; tensor-parallel groups act as one).

    ttft_s: prefill of the batch; tpot_s: mean decode step; e2e_s: ttft + all decode steps;
    decode_tokens_per_s: batch × decode steps / decode time; hbm_bytes: HBM traffic of the whole
    request batch (prefill + decode); peak_memory_bytes: weights + KV at the final context + activations
    + runtime reserve; max_concurrency: requests of this context that fit at once.
    """

    hardware_id: str
    model_id: str
    scenario: Scenario
    ttft_s: float
    tpot_s: float
    e2e_s: float
    decode_tokens_per_s: float
    hbm_bytes: float
    flops: float
    peak_memory_bytes: float
    max_concurrency: int
    memory: dict
    prefill_bound: str
    decode_bound: str
    calibration: str
    _prefill_pairs: Any = field(repr=False, default=None)
    _decode_pairs: Any = field(repr=False, default=None)

    @property
    def ops(self) -> pd.DataFrame:
        """Per-op table: prefill ops, then decode ops at the mid-decode context."""
        return pd.concat([ops_frame("prefill", self._prefill_pairs), ops_frame("decode", self._decode_pairs)],
                         ignore_index=True)

    def summary(self) -> dict:
        return {"hardware": self.hardware_id, "model": self.model_id, **self.scenario.model_dump(),
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
                "decode_tokens_per_s": self.decode_tokens_per_s, "hbm_bytes": self.hbm_bytes,
                "flops": self.flops, "peak_memory_bytes": self.peak_memory_bytes,
                "max_concurrency": self.max_concurrency, "prefill_bound": self.prefill_bound,
                "decode_bound": self.decode_bound, "calibration": self.calibration, **self.memory}


@dataclass(frozen=True)
class KernelPrediction:
    time_s: float
    flops: float
    hbm_bytes: float
    bound: str
    compute_s: float = 0.0
    memory_s: float = 0.0
    latency_s: float = 0.0
    link_s: float = 0.0
