"""Device memory per GPU — one model for peak memory and for how many requests fit at once.

A serving engine claims a fraction of the device (``memory_utilization_frac``; vLLM's
``gpu_memory_utilization`` defaults to 0.9, https://docs.vllm.ai/en/latest/configuration/engine_args.html)
and fits weights, the peak activations of a forward pass and the paged KV cache inside it; the rest
(CUDA context, NCCL and library workspaces, fragmentation) is the reserve. One function, ``usage_bytes``,
gives the memory of ``n`` requests; the peak of a batch and the largest batch that fits both read it, so
"needs X GB" and "at most N fit" cannot disagree.

Prefill activations: without chunking the whole batch's prompts run in one pass (as ``ttft_s`` times it),
so activations grow with batch × prompt; with ``prefill_chunk_tokens`` (vLLM's chunked prefill,
``max_num_batched_tokens``) a pass holds at most that many tokens. Chunking changes memory only here:
the prefill time is still one pass over the batch's prompts.
"""

from __future__ import annotations

import numpy as np

from hwspecs.schema import DTYPE_BYTES
from simulator import parallel
from simulator.engine import Setup
from simulator.quant import weight_storage_bytes
from simulator.kv_compression import resident_frac

DEFAULT_MEMORY_UTILIZATION_FRAC = 0.9


class DoesNotFitError(ValueError):
    """The model (or the requested batch) does not fit in device memory; the message gives the sizes."""


def weight_bytes_per_gpu(s: Setup) -> float:
    """Stored weights per GPU (quantization scales and 16-bit embedding/LM head: simulator.quant)."""
    if s.par is not None and not s.par.plain_tensor_parallel:  # the heaviest stage's GPU (PP / EP)
        return parallel.weight_bytes_per_gpu(s.model, s.par, s.weight_dtype)
    return weight_storage_bytes(s.model, s.weight_dtype) / s.tp


def kv_bytes_per_sequence(s: Setup, context_tokens, block_tokens=16):
    """KV of one sequence on one GPU, in whole paged blocks (the last block is partly empty); a
    sliding-window layer holds at most its window's blocks (``ModelSpec.kv_layout``); compressed by the
    setup's KV method when it has one (data + scales/zero-points + residual window)."""
    ctx = np.asarray(context_tokens, dtype=float)
    if all(w is None for _, _, w in s.model.kv_layout()):
        blocks = np.ceil(ctx / block_tokens)
        dense = blocks * block_tokens * s.model.kv_bytes_per_token(s.kv_dtype, tensor_parallel=s.tp)
    else:
        dense = DTYPE_BYTES[s.kv_dtype] * sum(
            n * e * np.ceil((ctx if w is None else np.minimum(ctx, w)) / block_tokens) * block_tokens
            for n, e, w in s.model.kv_layout(s.tp))
    # under pipeline / data-parallel attention a GPU holds its stage's layers of its own sequences
    return dense * resident_frac(s, ctx) * parallel.kv_share(s)


def activation_bytes(s: Setup, n_tokens, n_sequences):
    """Peak transient activations of one forward pass over n_tokens (per GPU): the residual stream and its
    normalised copy (2·h) plus the widest intermediate (QKV, or MLP up-projection output + activation),
    plus fp32 logits for one token per sequence."""
    m = s.model
    n_up = 2 if m.gated_mlp else 1
    widest = max((m.n_q_heads + 2 * m.n_kv_heads) * m.head_dim, (n_up + 1) * m.ffn_hidden * m.top_k) / s.tp
    return parallel.activation_share(s) * (np.asarray(n_tokens, dtype=float) * DTYPE_BYTES[s.stream_dtype]
                                           * (2 * m.hidden + widest)
                                           + np.asarray(n_sequences, dtype=float) * m.vocab_size / s.tp * 4.0)


def usable_bytes(s: Setup, memory_utilization_frac=DEFAULT_MEMORY_UTILIZATION_FRAC) -> float:
    """What the serving engine may use for weights, activations and KV on one GPU."""
    return memory_utilization_frac * s.hw.memory_bytes


def pass_tokens(batch, prompt_tokens, prefill_chunk_tokens=None):
    """Tokens in the largest forward pass: the whole batch's prompts, or one prefill chunk."""
    total = np.asarray(batch, dtype=float) * np.asarray(prompt_tokens, dtype=float)
    return total if prefill_chunk_tokens is None else np.minimum(total, float(prefill_chunk_tokens))


def usage_bytes(s: Setup, batch, prompt_tokens, output_tokens, block_tokens=16, prefill_chunk_tokens=None) -> dict:
    """Memory per GPU of ``batch`` requests of prompt + output tokens, by use (within the usable part)."""
    kv = np.asarray(batch, dtype=float) * kv_bytes_per_sequence(
        s, np.asarray(prompt_tokens) + np.asarray(output_tokens), block_tokens)
    act = activation_bytes(s, pass_tokens(batch, prompt_tokens, prefill_chunk_tokens), batch)
    return {"weights_bytes": weight_bytes_per_gpu(s), "kv_cache_bytes": kv, "activation_bytes": act}


def memory_breakdown(s: Setup, batch, prompt_tokens, output_tokens, block_tokens=16,
                     memory_utilization_frac=DEFAULT_MEMORY_UTILIZATION_FRAC, prefill_chunk_tokens=None) -> dict:
    """Peak device memory (per GPU) of running ``batch`` requests to completion. ``workspace_bytes`` is
    the reserve outside the engine's share, (1 − memory_utilization_frac) × device memory; a batch fits
    when ``peak_memory_bytes`` ≤ the device memory."""
    use = usage_bytes(s, batch, prompt_tokens, output_tokens, block_tokens, prefill_chunk_tokens)
    reserve = s.hw.memory_bytes - usable_bytes(s, memory_utilization_frac)
    total = use["weights_bytes"] + use["kv_cache_bytes"] + use["activation_bytes"] + reserve
    return {**use, "workspace_bytes": reserve, "peak_memory_bytes": total}


def check_weights_fit(s: Setup, memory_utilization_frac=DEFAULT_MEMORY_UTILIZATION_FRAC) -> None:
    need, have = weight_bytes_per_gpu(s), usable_bytes(s, memory_utilization_frac)
    if need > have:
        raise DoesNotFitError(
            f"{s.model.id} weights in {s.weight_dtype} need {need / 1e9:.2f} GB per GPU but {s.hw.id} offers "
            f"{have / 1e9:.2f} GB ({memory_utilization_frac:g} × {s.hw.memory_bytes / 1e9:.2f} GB, "
            f"memory_utilization_frac); use more GPUs (tensor_parallel), a smaller weight_dtype, or a bigger device")


def check_step_fits(s: Setup, what: str, batch, pass_tokens, context_tokens,
                    memory_utilization_frac=DEFAULT_MEMORY_UTILIZATION_FRAC) -> None:
    """The fit check ``predict`` makes, for one pass: the weights, ``batch`` sequences' KV cache of
    ``context_tokens`` each, and the activations of a pass over ``pass_tokens`` tokens per sequence, within
    the usable memory. ``what`` names the call in the error (prefill, decode_step, context_switch)."""
    check_weights_fit(s, memory_utilization_frac)
    # usage_bytes' request of prompt P + output T: KV of P + T tokens, a pass over P tokens per sequence
    need = float(sum(usage_bytes(s, batch, pass_tokens, context_tokens - pass_tokens).values()))
    have = usable_bytes(s, memory_utilization_frac)
    if need > have:
        raise DoesNotFitError(
            f"{what}: batch={batch} of {context_tokens}-token sequences needs {need / 1e9:.1f} GB per GPU of "
            f"{s.hw.id}'s {have / 1e9:.1f} GB usable (memory_utilization_frac {memory_utilization_frac:g}); "
            f"pass check_fit=False to time it anyway")


def max_concurrency(s: Setup, prompt_tokens, output_tokens, block_tokens=16,
                    memory_utilization_frac=DEFAULT_MEMORY_UTILIZATION_FRAC, prefill_chunk_tokens=None):
    """The largest n whose ``usage_bytes`` (n requests of P + T tokens, admitted as one batch) fits in the
    usable memory. Memory is linear in n piecewise (activations stop growing once n·P reaches the chunk),
    so n is the larger of the two pieces' solutions, each of which is feasible."""
    free = usable_bytes(s, memory_utilization_frac) - weight_bytes_per_gpu(s)
    kv = kv_bytes_per_sequence(s, np.asarray(prompt_tokens) + np.asarray(output_tokens), block_tokens)
    a_tok, a_seq = activation_bytes(s, 1.0, 0.0), activation_bytes(s, 0.0, 1.0)
    p = np.asarray(prompt_tokens, dtype=float)
    n = np.floor(np.maximum(free, 0.0) / (kv + a_seq + a_tok * p))
    if prefill_chunk_tokens is not None:
        n = np.maximum(n, np.floor(np.maximum(free - a_tok * prefill_chunk_tokens, 0.0) / (kv + a_seq)))
    return n.astype(np.int64)
