"""Fit checks: what a deployment must satisfy before its times mean anything.

- storage dtypes that exist: weights and KV are stored as fp32, bf16, fp16, fp8, int8 or int4 (tf32 is a
  tensor-core math mode on fp32 storage, not a storage format);
- the model's context limit (``max_context_tokens``, its position table or trained RoPE range);
- tensor parallelism as vLLM shards attention (vllm/config: ``verify_with_parallel_config`` and
  ``get_num_kv_heads``): the query heads must divide evenly over the ranks; KV heads split evenly when
  there are at least as many as ranks, else each is replicated, which needs ranks to be a multiple of
  the KV heads; and a system spec (e.g. ``dgx-h100``) has only so many GPUs.
Memory (weights, KV, activations within the engine's share) is ``simulator.memory``.
"""

from __future__ import annotations

import os

import hwspecs
from hwspecs.schema import DTYPES

STORAGE_DTYPES = tuple(d for d in DTYPES if d != "tf32")


def check_storage_dtype(name: str, value) -> str:
    """A weight or KV storage dtype; tf32 and unknown names are rejected by name."""
    if value not in STORAGE_DTYPES:
        why = " (tf32 is a math mode on fp32 storage)" if value == "tf32" else ""
        raise ValueError(f"{name} must be one of {', '.join(STORAGE_DTYPES)}{why}, got {value!r}")
    return value


def check_context(model, context_tokens: int) -> None:
    """prompt + output tokens must stay within the model's context window."""
    if context_tokens > model.max_context_tokens:
        raise ValueError(f"prompt_tokens + output_tokens = {context_tokens:,} exceeds {model.id}'s "
                         f"max_context_tokens ({model.max_context_tokens:,})")


def check_tensor_parallel(model, tp: int) -> None:
    """vLLM's sharding rule for attention heads (see the module docstring)."""
    if model.n_q_heads % tp:
        raise ValueError(f"tensor_parallel={tp} must divide {model.id}'s {model.n_q_heads} query heads "
                         f"(allowed: {', '.join(str(d) for d in divisors(model.n_q_heads))})")
    kv = model.n_kv_heads
    if (tp <= kv and kv % tp) or (tp > kv and tp % kv):
        raise ValueError(f"tensor_parallel={tp} must divide {model.id}'s {kv} KV heads or be a multiple of "
                         f"them (each KV head then replicated); allowed: "
                         f"{', '.join(str(d) for d in divisors(model.n_q_heads) if d % kv == 0 or kv % d == 0)}")


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def gpu_count(hardware) -> int | None:
    """GPUs in a system spec (id or path), None for a single GPU spec (any number of them)."""
    if not isinstance(hardware, (str, os.PathLike)):
        return hardware.n_accelerators if isinstance(hardware, hwspecs.System) else None
    spec = hwspecs.load(hardware)
    return spec.n_accelerators if isinstance(spec, hwspecs.System) else None


def check_gpu_count(hardware, tp: int) -> None:
    n = gpu_count(hardware)
    if n is not None and tp > n:
        raise ValueError(f"tensor_parallel={tp} exceeds the {n} GPUs of {hardware}")
