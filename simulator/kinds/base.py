"""What every op kind declares, and the Op record the graph is made of.

An op kind (one module each under ``simulator/kinds/``) declares once:
- its standalone shape (``ShapeField``s): the keyword arguments of ``predict_kernel``, the CLI's
  ``hwperf kernel -s key=value``, and the columns of a measurement row;
- its FLOP and byte formulas and the builder that turns a shape into an ``Op``;
- its time, ``time(op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s)`` → (compute_s at
  the boost clock, memory_s, latency_s, link_s), reading only the effect groups it owns;
- its fit ``stage``: the effect-parameter stage its measured cases fit (``hwspecs.effects``);
- how a measurement row reads back (``shape_from_row``) and which class it is scored in (``case_class``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from workloads.scenario import check_count, check_dtype, check_flag


@dataclass(frozen=True)
class Op:
    """One kernel of the forward pass (per GPU). Counts are per execution; ``n_repeats`` executions per pass.

    ``shape`` holds what the kind's time function needs beyond counts (gemm: m, n, k; attention: batch,
    q_tokens, kv_tokens, heads, head_dim, causal, paged; links: link_bytes, n_ranks, pinned).
    """

    name: str
    kind: str
    scope: str  # "layer" (repeated per decoder layer) or "model"
    n_repeats: int
    flops: Any
    weight_bytes: Any = 0.0
    act_read_bytes: Any = 0.0
    act_write_bytes: Any = 0.0
    kv_read_bytes: Any = 0.0
    kv_write_bytes: Any = 0.0
    compute_dtype: str = "bf16"
    shape: dict = field(default_factory=dict)

    @property
    def hbm_bytes(self):
        return (self.weight_bytes + self.act_read_bytes + self.act_write_bytes + self.kv_read_bytes
                + self.kv_write_bytes)


@dataclass(frozen=True)
class ShapeField:
    """One argument of a standalone kernel: ``type`` "int" (a count ≥ 1), "bool" or "dtype"; ``default``
    None means required."""

    name: str
    type: str
    default: Any = None
    help: str = ""

    def check(self, value):
        if self.type == "dtype":
            return check_dtype(self.name, value)
        if self.type == "bool":
            return check_flag(self.name, value)
        return check_count(self.name, value)

    def from_cell(self, value):
        """A CSV cell (float, string, NaN) as this field's Python value; None for an empty cell."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.type == "dtype":
            return str(value)
        if self.type == "bool":
            return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "1.0")
        return int(value)


def _default_class(kind: "OpKind", row: dict) -> str:
    return kind.name


@dataclass(frozen=True)
class OpKind:
    name: str
    help: str
    shape: tuple[ShapeField, ...]
    build: Callable[..., Op]  # checked shape keyword arguments → the Op a standalone benchmark runs
    time: Callable  # (op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s) → 4 terms
    stage: str  # the effect-parameter fit stage its measured cases fit
    case_class: Callable[["OpKind", dict], str] = _default_class  # scoring class of a measurement row
    check: Callable[[dict], None] | None = None  # cross-field checks of a shape (e.g. head counts)
    library: str = "copy"  # the vendor library that launches it eagerly: "cublas", "sdpa" or "copy"
    # DRAM bytes as the memory controller sees them, (op, hw) → bytes, where tiles re-read operands past
    # L2; None: the op's minimum (each operand once). They set the DRAM energy, not the time.
    dram: Callable | None = None
    # The share of its compute time that scales with 1/clock, from its effect group: prm → β (None: 1).
    clock_bound_frac: Callable | None = None
    # Whether β applies only to the compute time its DRAM bytes leave (``dram_paced``): GEMMs.
    dram_paced: bool = False

    def clock_bound(self, prm, op: Op | None = None, hw=None, compute_s=None, xp=np):
        """β of ``op`` whose compute time at boost is ``compute_s`` (op None: the group's β)."""
        beta = 1.0 if self.clock_bound_frac is None else self.clock_bound_frac(prm)
        if not self.dram_paced or op is None:
            return beta
        return dram_paced(beta, self.dram_bytes(op, hw) / hw.memory_bandwidth_bytes_per_s, compute_s, xp)

    def dram_bytes(self, op: Op, hw):
        return op.hbm_bytes if self.dram is None else self.dram(op, hw)

    @property
    def shape_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.shape)

    def check_shape(self, shape: dict) -> dict:
        """Every field named, known and valid; defaults filled. Errors name the field and what is allowed."""
        allowed = self.shape_names
        extra = sorted(set(shape) - set(allowed))
        if extra:
            raise ValueError(f"{self.name} takes {', '.join(allowed)}; unexpected: {', '.join(extra)}")
        args = {f.name: shape.get(f.name, f.default) for f in self.shape}
        missing = [n for n, v in args.items() if v is None]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(missing)}")
        args = {f.name: f.check(args[f.name]) for f in self.shape}
        if self.check is not None:
            self.check(args)
        return args

    def op(self, **shape) -> Op:
        return self.build(**self.check_shape(shape))

    def shape_from_row(self, row: dict) -> dict:
        """``predict_kernel`` keyword arguments from a measurement row (empty cells take the defaults)."""
        out = {}
        for f in self.shape:
            v = f.from_cell(row.get(f.name))
            if v is not None:
                out[f.name] = v
        return out


# ---- array-or-scalar arithmetic ----------------------------------------------------------------------

def dram_paced(clock_bound_frac, dram_s, compute_s, xp=np):
    """β of a kernel whose DRAM traffic alone would take ``dram_s`` of its ``compute_s`` (both at boost):
    for that share its SMs wait on DRAM, whatever their clock, so β applies to the rest:
    β·max(0, 1 − dram_s / compute_s). H200 cuBLAS GEMMs (hwperf measurement 2026-12-01, states.csv; modelled
    DRAM share, then β_i measured from burst vs sustained): 8192³ 23%, 0.63; 512×28672×4096 38%, 0.45;
    256×14336×4096 63%, 0.45; 128×4096×14336 over 100% (memory-bound), 0.19."""
    share = dram_s / xp.maximum(compute_s, 1e-30)
    return clock_bound_frac * xp.maximum(0.0, 1.0 - share)


class _Scalar:
    """numpy's ufunc names over Python floats: a single predict() evaluates ~100 scalar ops, where each
    numpy call on a 0-d value costs ~1 µs. Sweeps pass arrays and use numpy itself."""

    maximum = staticmethod(max)
    minimum = staticmethod(min)
    ceil = staticmethod(math.ceil)
    floor = staticmethod(math.floor)
    log2 = staticmethod(math.log2)
    exp = staticmethod(math.exp)

    @staticmethod
    def where(cond, a, b):
        return a if cond else b


def xp_for(*values):
    """numpy for arrays, the scalar shim for plain numbers."""
    return np if any(isinstance(v, np.ndarray) for v in values) else _Scalar


def past_l2(nbytes, times, hw, xp):
    """``nbytes`` read ``times`` times where they exceed half of ``hw``'s L2 (they do not stay resident
    between passes), once where they fit: the DRAM re-read rule of GEMM operands
    (``simulator.kinds.gemm.dram_bytes``) and of eager elementwise temporaries (``simulator.power``)."""
    return nbytes * xp.where(nbytes > hw.l2_bytes / 2, times, 1.0)


def need(value, what: str):
    """A required rate (a link), or a clear error naming what is missing."""
    if value is None:
        raise ValueError(what)
    return value
