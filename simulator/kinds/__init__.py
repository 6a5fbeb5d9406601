"""The op-kind registry: every kind of kernel the model times, each declared once in its own module.

``KINDS[name]`` is an ``OpKind`` (see ``base.py``): its shape vocabulary, FLOP/byte formulas, time
function, fit stage and measurement codec. The API (``predict_kernel``), the CLI (``hwperf kernel``),
calibration, comparison and the measurement harness all read this table. Registry order is the order
calibration fits the stages in: copies first (the latency floor and HBM ceiling every other kind leans
on), then host links, GEMM, prefill and decode attention.
"""

from __future__ import annotations

from simulator.kinds import (attention_decode, attention_decode_quant, attention_prefill, collective, copy, elementwise,
                             gemm, gemm_w4a16, host_transfer)
from simulator.kinds.base import Op, OpKind, ShapeField, xp_for

_MODULES = (copy, host_transfer, gemm, gemm_w4a16, attention_prefill, attention_decode, attention_decode_quant,
            elementwise, collective)
KINDS: dict[str, OpKind] = {k.name: k for mod in _MODULES for k in mod.KINDS}


def get(name: str) -> OpKind:
    if not isinstance(name, str) or name not in KINDS:  # (a list or dict is unhashable: no TypeError)
        raise ValueError(f"kernel must be one of {', '.join(KINDS)}, got {name!r}")
    return KINDS[name]


def shape_columns() -> tuple[str, ...]:
    """Every shape field of every kind, once, in registry order: the shape columns of a measurement row."""
    return tuple(dict.fromkeys(f.name for k in KINDS.values() for f in k.shape))


__all__ = ["KINDS", "Op", "OpKind", "ShapeField", "get", "shape_columns", "xp_for"]
