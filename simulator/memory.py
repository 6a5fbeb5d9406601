"""Device memory per GPU: weights, KV cache in paged blocks, transient activations, the runtime reserve,
and how many requests fit at once."""

from __future__ import annotations

import numpy as np

from hwspecs.schema import DTYPE_BYTES
from simulator.engine import Setup

# CUDA context + cuBLAS/attention workspaces + allocator slack held by a serving process (vLLM
# profiles ~1-2 GB outside weights and KV on H100); not available to KV blocks.
RUNTIME_RESERVED_BYTES = 1.5e9


class DoesNotFitError(ValueError):
    """The model (or the requested batch) does not fit in device memory; the message gives the sizes."""


def weight_bytes_per_gpu(s: Setup) -> float:
    return s.model.total_params * DTYPE_BYTES[s.weight_dtype] / s.tp


def kv_bytes_per_sequence(s: Setup, context_tokens, block_tokens=16):
    """KV of one sequence on one GPU, in whole paged blocks (the last block is partly empty)."""
    blocks = np.ceil(np.asarray(context_tokens, dtype=float) / block_tokens)
    return blocks * block_tokens * s.model.kv_bytes_per_token(s.kv_dtype, s.model.kv_heads_per_gpu(s.tp))


def activation_bytes(s: Setup, n_tokens, n_sequences):
    """Peak transient activations of one forward pass over n_tokens (per GPU): the residual stream and its
    normalised copy (2·h) plus the widest intermediate (QKV, or MLP up-projection output + activation),
    plus fp32 logits for one token per sequence."""
    m = s.model
    n_up = 2 if m.gated_mlp else 1
    widest = max((m.n_q_heads + 2 * m.n_kv_heads) * m.head_dim, (n_up + 1) * m.ffn_hidden * m.top_k) / s.tp
    return (np.asarray(n_tokens, dtype=float) * DTYPE_BYTES[s.act_dtype] * (2 * m.hidden + widest)
            + np.asarray(n_sequences, dtype=float) * m.vocab_size / s.tp * 4.0)


def check_weights_fit(s: Setup) -> None:
    need = weight_bytes_per_gpu(s) + RUNTIME_RESERVED_BYTES
    if need > s.hw.memory_bytes:
        raise DoesNotFitError(
            f"{s.model.id} weights in {s.weight_dtype} need {weight_bytes_per_gpu(s) / 1e9:.1f} GB per GPU "
            f"(+{RUNTIME_RESERVED_BYTES / 1e9:.1f} GB runtime) but {s.hw.id} has {s.hw.memory_bytes / 1e9:.1f} GB; "
            f"use more GPUs (tensor_parallel), a smaller weight_dtype, or a bigger device")


def max_concurrency(s: Setup, prompt_tokens, output_tokens, block_tokens=16):
    """Sequences of P+T tokens whose KV fits next to the weights, the runtime reserve and the activations
    of one prompt's prefill (chunked admission). Paged blocks waste up to block_tokens−1 slots each."""
    free = (s.hw.memory_bytes - weight_bytes_per_gpu(s) - RUNTIME_RESERVED_BYTES
            - activation_bytes(s, prompt_tokens, 1))
    per_seq = kv_bytes_per_sequence(s, np.asarray(prompt_tokens) + np.asarray(output_tokens), block_tokens)
    return np.floor(np.maximum(free, 0.0) / per_seq).astype(np.int64)


def memory_breakdown(s: Setup, batch, prompt_tokens, output_tokens, block_tokens=16) -> dict:
    """Peak device memory (per GPU) of running ``batch`` requests to completion."""
    weights = weight_bytes_per_gpu(s)
    kv = np.asarray(batch) * kv_bytes_per_sequence(s, np.asarray(prompt_tokens) + np.asarray(output_tokens),
                                                   block_tokens)
    act = activation_bytes(s, np.asarray(batch) * np.asarray(prompt_tokens), batch)
    total = weights + kv + act + RUNTIME_RESERVED_BYTES
    return {"weights_bytes": weights, "kv_cache_bytes": kv, "activation_bytes": act,
            "workspace_bytes": RUNTIME_RESERVED_BYTES, "peak_memory_bytes": total}
