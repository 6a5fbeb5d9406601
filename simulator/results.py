"""What the API returns: typed headline figures plus a tidy per-op DataFrame (SI units, unit-suffixed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from simulator.power import op_power_w
from workloads.scenario import Scenario

OP_COLUMNS = ["phase", "op", "kind", "scope", "n_repeats", "flops", "weight_bytes", "act_read_bytes",
              "act_write_bytes", "kv_read_bytes", "kv_write_bytes", "hbm_bytes", "compute_s", "memory_s",
              "latency_s", "link_s", "time_s", "total_time_s", "bound", "intensity_flops_per_byte", "clock_hz",
              "power_w", "energy_j"]


def ops_frame(phase: str, pairs, pm=None, clock_frac=1.0):
    """One row per op of a pass: counts per execution, times per execution, ``total_time_s`` × n_repeats;
    the pass's clock, and the board power while the op runs (its energy: × n_repeats)."""
    rows = []
    for op, t in pairs:
        hbm = float(op.hbm_bytes)
        power = float(op_power_w(pm, op, t, clock_frac)) if pm is not None else math.nan
        rows.append((phase, op.name, op.kind, op.scope, op.n_repeats, float(op.flops), float(op.weight_bytes),
                     float(op.act_read_bytes), float(op.act_write_bytes), float(op.kv_read_bytes),
                     float(op.kv_write_bytes), hbm, t.compute_s, t.memory_s, t.latency_s, t.link_s, t.time_s,
                     t.time_s * op.n_repeats, t.bound, float(op.flops) / hbm if hbm else math.inf,
                     clock_frac * pm.boost_clock_hz if pm is not None else math.nan, power,
                     power * t.time_s * op.n_repeats))
    import pandas as pd  # on first use: a prediction's headline figures do not need pandas

    return pd.DataFrame(rows, columns=OP_COLUMNS)


@dataclass(frozen=True)
class StepPrediction:
    """One forward pass. ``ops``: one row per op (per execution times; ``total_time_s`` = × n_repeats).
    ``gpu_s``: the kernels' own time (``time_s`` adds the launch rule); ``clock_frac``: the settled SM
    clock as a fraction of boost (``clock_hz`` in Hz); ``power_w`` mean board power over the pass,
    ``energy_j`` = power × time."""

    time_s: float
    hbm_bytes: float
    flops: float
    bound: str
    _pairs: Any = field(repr=False, default=None)
    _phase: str = field(repr=False, default="")
    gpu_s: float = 0.0
    clock_frac: float = 1.0
    clock_hz: float = 0.0
    power_w: float = 0.0
    energy_j: float = 0.0
    _pm: Any = field(repr=False, default=None)

    @classmethod
    def of(cls, r, pm=None) -> "StepPrediction":
        """From an engine ``PhaseResult`` (and the power model it ran under, for the per-op table)."""
        return cls(float(r.time_s), float(r.hbm_bytes), float(r.flops), r.bound, r.pairs, r.phase, float(r.gpu_s),
                   float(r.clock_frac), float(r.clock_hz), float(r.power_w), float(r.energy_j), pm)

    @property
    def ops(self):
        return ops_frame(self._phase, self._pairs, self._pm, self.clock_frac)


@dataclass(frozen=True)
class Prediction:
    """Headline figures of serving one scenario (per GPU for memory; tensor-parallel groups act as one).

    ttft_s: prefill of the batch; tpot_s: mean decode step; e2e_s: ttft + all decode steps;
    decode_tokens_per_s: batch × decode steps / decode time; hbm_bytes: HBM traffic of the whole
    request batch (prefill + decode); peak_memory_bytes: weights + KV at the final context + activations
    + runtime reserve; max_concurrency: requests of this context that fit at once. state: the operating
    state (sustained / burst); prefill/decode_power_w: mean board power of each phase; *_clock_hz: the
    settled SM clock (decode: time-weighted over the steps); energy_j: prefill + all decode steps of the
    batch; energy_per_request_j, energy_per_output_token_j (J/token) and output_tokens_per_j follow.
    trust: where the effect parameters came from (fitted / transferred from which devices / datasheet-only)
    and the held-out error measured for predictions made that way (``simulator.trust``).
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
    calibration: str
    _prefill_pairs: Any = field(repr=False, default=None)
    _decode_mid: Any = field(repr=False, default=None)  # () → PhaseResult of the mid-decode step
    state: str = "sustained"
    prefill_power_w: float = 0.0
    decode_power_w: float = 0.0
    prefill_clock_hz: float = 0.0
    decode_clock_hz: float = 0.0
    energy_j: float = 0.0
    energy_per_request_j: float = 0.0
    energy_per_output_token_j: float = 0.0
    _prefill_clock_frac: float = field(repr=False, default=1.0)
    _pm: Any = field(repr=False, default=None)
    trust: Any = None  # simulator.trust.Trust: calibration source and its measured error band

    @cached_property
    def _mid(self):
        """The decode step at the mid-decode context, built on first use (bound, per-op table)."""
        return self._decode_mid()

    @property
    def decode_bound(self) -> str:
        """The bound of the decode step at the mid-decode context."""
        return self._mid.bound

    @property
    def output_tokens_per_j(self) -> float:
        return 1.0 / self.energy_per_output_token_j if self.energy_per_output_token_j else math.inf

    @property
    def ops(self):
        """Per-op table (pandas DataFrame): prefill ops, then decode ops at the mid-decode context (each at its pass's clock)."""
        import pandas as pd

        return pd.concat([ops_frame("prefill", self._prefill_pairs, self._pm, self._prefill_clock_frac),
                          ops_frame("decode", self._mid.pairs, self._pm, self._mid.clock_frac)],
                         ignore_index=True)

    @property
    def pass_times_s(self) -> dict:
        """Each pass as the user sees it: {"prefill": ttft_s, "decode": the mid-decode step} (s); the per-op
        table's ``total_time_s`` sums to less — the difference is launch overhead and gaps between kernels."""
        return {"prefill": self.ttft_s, "decode": float(self._mid.time_s)}

    def summary(self) -> dict:
        return {"hardware": self.hardware_id, "model": self.model_id, **self.scenario.model_dump(),
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
                "decode_tokens_per_s": self.decode_tokens_per_s, "hbm_bytes": self.hbm_bytes,
                "flops": self.flops, "peak_memory_bytes": self.peak_memory_bytes,
                "max_concurrency": self.max_concurrency, "prefill_bound": self.prefill_bound,
                "decode_bound": self.decode_bound, "calibration": self.calibration,
                "prefill_power_w": self.prefill_power_w, "decode_power_w": self.decode_power_w,
                "prefill_clock_hz": self.prefill_clock_hz, "decode_clock_hz": self.decode_clock_hz,
                "energy_j": self.energy_j, "energy_per_request_j": self.energy_per_request_j,
                "energy_per_output_token_j": self.energy_per_output_token_j,
                "output_tokens_per_j": self.output_tokens_per_j, **self.memory, **self.trust_summary()}

    def trust_summary(self) -> dict:
        t = self.trust
        if t is None:
            return {}
        return {"calibration_source": t.source, "calibration_from": ",".join(t.from_ids),
                "ttft_error_frac": t.ttft_error_frac, "tpot_error_frac": t.tpot_error_frac,
                "error_basis": t.basis}


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
    power_w: float = 0.0
    energy_j: float = 0.0
    clock_hz: float = 0.0
    state: str = "sustained"
    launch: str = "graph"
    gpu_s: float = 0.0
    dram_bytes: float = 0.0  # as the memory controller sees them (tile re-reads past L2); hbm_bytes: minimum
