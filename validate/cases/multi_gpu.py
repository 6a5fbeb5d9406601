"""Multi-GPU cases: collective buffer sizes and the tensor-parallel layer shapes.

Collectives: all-reduce, all-gather, reduce-scatter and all-to-all over 1 KiB … 1 GiB per rank (every
factor of 4; ``--quick`` keeps every 4th), the sizes nccl-tests sweeps. Layers: a stack of Llama-3-8B-
shaped decoder layers (hidden 4096, 32 query / 8 KV heads of 128, FFN 14336) split tensor-parallel over
all ranks, prefill and decode steps.
"""

from __future__ import annotations

from dataclasses import dataclass

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
SIZES_BYTES = tuple(1 << s for s in range(10, 31, 2))  # 1 KiB, 4 KiB, …, 1 GiB
QUICK_SIZES_BYTES = SIZES_BYTES[::4]  # 1 KiB, 256 KiB, 64 MiB
# (batch, seq) prefill and (batch, context) decode steps of the layer stack
PREFILL_SHAPES = ((1, 512), (1, 2048), (4, 2048), (8, 4096))
DECODE_SHAPES = ((1, 1024), (8, 2048), (32, 4096), (128, 2048))
LAYERS_IN_STACK = 4


@dataclass(frozen=True)
class LayerDims:
    hidden: int = 4096
    n_q_heads: int = 32
    n_kv_heads: int = 8
    head_dim: int = 128
    ffn_hidden: int = 14336
    model: str = "llama-3-8b"


LLAMA3_8B = LayerDims()
TINY = LayerDims(hidden=64, n_q_heads=4, n_kv_heads=2, head_dim=16, ffn_hidden=96, model="tiny")
